import { bootPlatform } from "@ivm/hypercall";
import { PAGE_SIZE } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { vmallocRemap } from "./vmalloc-remap.js";

const MiB = 2 ** 20;

function boot() {
  const { memory, hyperv } = bootPlatform({ bytes: 256 * MiB });
  return { memory, hyperv, strategy: vmallocRemap.create({ memory }) };
}

describe("strategy (1): vmalloc + hv_map_memory", () => {
  it("gives two mappings of the receive buffer and frees the temporary 32 KiB PFN array", () => {
    const { memory, hyperv, strategy } = boot();
    const buf = strategy.allocate(16 * MiB, "netvsc-rx")!;
    expect(memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(4096);
    hyperv.setMemory.decrypted(buf.gpadlVa, buf.pages); // what the GPADL does
    const alias = strategy.map(buf)!.va;
    expect(alias % (16 * MiB)).toBe(0);
    expect(memory.vmalloc.areas().filter((a) => a.tag.startsWith("netvsc-rx"))).toHaveLength(2);
    expect(memory.kmalloc.statsFor("hv-map-pfns")).toMatchObject({ live: 0, peak: 32768, allocations: 1 });
    // The guest writes through the alias; the host reads the same bytes at the GPADL's PFNs.
    memory.mmu.write(alias + 5 * PAGE_SIZE + 10, new Uint8Array([1, 2, 3]));
    const seen = new Uint8Array(3);
    hyperv.hostView.read(memory.virtToPfn(buf.gpadlVa + 5 * PAGE_SIZE) * PAGE_SIZE + 10, seen);
    expect([...seen]).toEqual([1, 2, 3]);
    // The original mapping reaches the private alias of shared pages: a fault, never a silent read.
    expect(() => memory.mmu.read(buf.gpadlVa, new Uint8Array(1))).toThrowError(
      /private-alias-to-shared-page/,
    );
    strategy.unmap(buf);
    hyperv.setMemory.encrypted(buf.gpadlVa, buf.pages);
    strategy.free(buf);
    expect(memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
    expect(strategy.state(buf)).toBe("freed");
    expect(memory.checkInvariants()).toEqual([]);
  });

  it("leaks the pages, never frees them, when re-encryption failed", () => {
    const { memory, hyperv, strategy } = boot();
    const buf = strategy.allocate(255 * PAGE_SIZE, "netvsc-tx")!;
    hyperv.setMemory.decrypted(buf.gpadlVa, buf.pages);
    strategy.map(buf);
    strategy.unmap(buf);
    hyperv.hypervisor.faults.failCall(1);
    expect(() => hyperv.setMemory.encrypted(buf.gpadlVa, buf.pages)).toThrow();
    strategy.leak(buf);
    expect(memory.leakedPages).toBe(255);
    expect(memory.buddy.pagesOwnedBy("netvsc-tx")).toBe(255);
    expect(() => strategy.free(buf)).toThrowError(/lifecycle/);
    expect(memory.checkInvariants()).toEqual([]);
  });

  it("refuses calls out of the kernel's order", () => {
    const { strategy } = boot();
    const buf = strategy.allocate(PAGE_SIZE, "x")!;
    expect(() => strategy.unmap(buf)).toThrowError(/lifecycle/);
    expect(() => strategy.allocate(0, "x")).toThrowError(/size/);
    strategy.free(buf);
    expect(() => strategy.free(buf)).toThrowError(/lifecycle/);
  });
});
