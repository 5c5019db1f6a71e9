import { bootPlatform } from "@ivm/hypercall";
import { ageMemory, PAGE_SIZE } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { pageBlocks } from "./page-blocks.js";

const MiB = 2 ** 20;

function boot(bytes = 256 * MiB) {
  return bootPlatform({ bytes });
}

describe("strategy (4): page blocks", () => {
  it("gets four 4 MiB blocks for the receive buffer on a fresh guest and order-0 pages for the send buffer", () => {
    const { memory } = boot();
    const s = pageBlocks.create({ memory });
    s.allocate(16 * MiB, "netvsc-rx");
    s.allocate(255 * PAGE_SIZE, "netvsc-tx");
    expect(memory.buddy.blocksByOwner().get("netvsc-rx")![10]).toBe(4);
    expect(memory.buddy.blocksByOwner().get("netvsc-tx")![0]).toBe(255);
    expect(memory.kmalloc.statsFor("page-blocks-list").live).toBe(4 * 8 + 255 * 8);
    expect(memory.kmalloc.statsFor("page-blocks-pages")).toMatchObject({ live: 0, peak: 32768 });
  });

  it("falls back to 4096 order-0 pages on aged memory (v5: all or nothing)", () => {
    const { memory } = boot();
    ageMemory(memory.buddy, 3, "heavy");
    expect(memory.buddyinfo()[10]).toBe(0);
    const s = pageBlocks.create({ memory });
    const buf = s.allocate(16 * MiB, "netvsc-rx")!;
    expect(buf.pages).toBe(4096);
    const byOrder = memory.buddy.blocksByOwner().get("netvsc-rx")!;
    expect(byOrder[0]).toBe(4096);
    expect(byOrder[10]).toBe(0);
    expect(memory.buddy.failuresByOrder[10]).toBeGreaterThan(0);
  });

  it("graded fallback takes the largest free blocks", () => {
    const { memory } = boot();
    ageMemory(memory.buddy, 3, "heavy");
    const s = pageBlocks.create({ memory }, { fallback: "graded" });
    s.allocate(16 * MiB, "netvsc-rx");
    const byOrder = memory.buddy.blocksByOwner().get("netvsc-rx")!;
    expect(byOrder[0]).toBeLessThan(4096);
    expect(byOrder.reduce((sum, n, o) => sum + n * 2 ** o, 0)).toBe(4096);
  });

  it("keeps a size that is not a multiple of 4 MiB whole (the v5 truncation is not reproduced)", () => {
    const { memory } = boot();
    const s = pageBlocks.create({ memory });
    const buf = s.allocate(5 * MiB, "netvsc-rx")!;
    expect(buf.pages).toBe(1280);
    expect(memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(1280);
  });

  it("has one live mapping after map, and frees every block with its own order", () => {
    const { memory, hyperv } = boot();
    const s = pageBlocks.create({ memory });
    const buf = s.allocate(16 * MiB, "netvsc-rx")!;
    hyperv.setMemory.decrypted(buf.gpadlVa, buf.pages);
    const mapped = s.map(buf)!;
    const va = mapped.va;
    // The transient mapping is gone: map says the GPADL must now be walked through the alias.
    expect(mapped.gpadlVa).toBe(va);
    expect(memory.vmalloc.findArea(buf.gpadlVa)).toBeUndefined();
    expect(memory.vmalloc.areas().filter((a) => a.tag.startsWith("netvsc-rx"))).toHaveLength(1);
    memory.mmu.write(va + 4 * MiB, new Uint8Array([1]));
    s.unmap(buf);
    hyperv.setMemory.encrypted(va, buf.pages);
    const free = memory.buddy.nrFreePages;
    s.free(buf);
    expect(memory.buddy.nrFreePages - free).toBeGreaterThanOrEqual(4096);
    expect(memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
    expect(memory.vmalloc.areas().filter((a) => a.tag.startsWith("netvsc-rx"))).toHaveLength(0);
  });
});
