import { bootPlatform } from "@ivm/hypercall";
import { PAGE_SIZE } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { vtomPte } from "./vtom-pte.js";

describe("strategy (5): vTOM as a PTE bit", () => {
  it("serves the guest through the one vmalloc mapping after set_memory_decrypted", () => {
    const { memory, hyperv } = bootPlatform({ bytes: 64 * 2 ** 20, era: "pte-bit" });
    const s = vtomPte.create({ memory });
    const buf = s.allocate(255 * PAGE_SIZE, "netvsc-tx")!;
    hyperv.setMemory.decrypted(buf.gpadlVa, buf.pages);
    expect(s.map(buf)).toEqual({ va: buf.gpadlVa });
    expect(memory.vmalloc.areas().filter((a) => a.tag === "netvsc-tx")).toHaveLength(1);
    memory.mmu.write(buf.gpadlVa, new Uint8Array([5]));
    s.unmap(buf);
    hyperv.setMemory.encrypted(buf.gpadlVa, buf.pages);
    s.free(buf);
    expect(memory.buddy.pagesOwnedBy("netvsc-tx")).toBe(0);
  });
});
