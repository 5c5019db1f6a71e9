import { bootPlatform } from "@ivm/hypercall";
import { type AllocSite, ageMemory, type GuestMemory, PAGE_SIZE } from "@ivm/memory";
import {
  bootDma,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  dmaAllocNoncontiguous,
  dmaMapSingle,
  dmaUnmapSingle,
  type SgTable,
  sgChunkLayout,
} from "@ivm/swiotlb";
import { describe, expect, it } from "vitest";
import { dmaNoncontiguous } from "./dma-noncontiguous.js";
import { hypervNoncontiguousDmaOps, HV_NONCONTIG_TAGS as TAGS } from "./hyperv-iommu.js";

const MiB = 2 ** 20;

function boot(type: "snp" | "vbs" = "snp") {
  const { memory, hyperv } = bootPlatform({ bytes: 256 * MiB, isolation: type });
  const layer = bootDma(memory, hyperv, { nslabs: 1024 });
  const ops = hypervNoncontiguousDmaOps(layer.ops, hyperv);
  const dma = layer.createDevice({ name: "netvsc", minAlignMask: 0xfff, ops });
  return { memory, hyperv, layer, dma, strategy: dmaNoncontiguous.create({ memory, hyperv, dma }) };
}

function live(memory: GuestMemory, tag: string): number {
  return memory.kmalloc.statsFor(tag).live;
}

/** What a failed allocation must not keep: kmalloc bytes, vmalloc areas, pages of the buffer's owner. */
function held(memory: GuestMemory, owner: string) {
  let kmalloc = 0;
  for (const s of memory.kmalloc.stats().values()) kmalloc += s.live;
  return { kmalloc, areas: memory.vmalloc.areas().length, pages: memory.buddy.pagesOwnedBy(owner) };
}

describe("strategy (3): dma_alloc_noncontiguous + dma_vmap_noncontiguous with Hyper-V ops", () => {
  it("keeps a 24 B handle, a 32 KiB page array and a one-chunk sg table for the receive buffer on a fresh guest", () => {
    const { memory, hyperv, dma, strategy } = boot();
    const walks = memory.vmalloc.pageWalks;
    const buf = strategy.allocate(16 * MiB, "netvsc-rx")!;
    expect(memory.vmalloc.pageWalks - walks).toBe(4096); // vmalloc_to_page, once, at allocation
    expect(memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(4096);
    expect(memory.vmalloc.findArea(buf.gpadlVa)?.tag).toBe("netvsc-rx"); // the GPADL goes over the vmalloc VA
    expect(live(memory, TAGS.handle)).toBe(24);
    expect(memory.kmalloc.statsFor(TAGS.pages)).toMatchObject({ live: 32768, liveFootprint: 32768 });
    const { sgt } = buf as typeof buf & { sgt: SgTable };
    // Runs break where the buddy handed out another block: the leftovers of boot first, then 4 MiB blocks
    // top-down (13 entries here); the wrapper sets nents to 1.
    expect([sgt.nents, sgt.chunks]).toEqual([1, 1]);
    expect(sgt.origNents).toBeLessThanOrEqual(16);
    expect(live(memory, TAGS.sgTable)).toBe(sgt.origNents * 32);
    expect(dma.counters.noncontiguousAllocs).toBe(1);

    hyperv.setMemory.decrypted(buf.gpadlVa, buf.pages); // what the GPADL does
    const mapWalks = memory.vmalloc.pageWalks;
    const alias = strategy.map(buf)!.va;
    expect(memory.vmalloc.pageWalks).toBe(mapWalks); // the vmap hook reads the kept pages
    expect(alias % (16 * MiB)).toBe(0);
    const areas = memory.vmalloc.areas().filter((a) => a.tag.startsWith("netvsc-rx"));
    expect(areas.map((a) => [a.tag, a.kind])).toEqual([
      ["netvsc-rx", "vmalloc"],
      ["netvsc-rx-alias", "ioremap"],
    ]);
    expect(memory.kmalloc.statsFor(TAGS.vmapPfns)).toMatchObject({ live: 0, peak: 32768, allocations: 1 });
    // The guest writes through the alias; the host reads the same bytes at the GPADL's PFNs.
    memory.mmu.write(alias + 1234 * PAGE_SIZE + 5, new Uint8Array([4, 5, 6]));
    const seen = new Uint8Array(3);
    hyperv.hostView.read(memory.virtToPfn(buf.gpadlVa + 1234 * PAGE_SIZE) * PAGE_SIZE + 5, seen);
    expect([...seen]).toEqual([4, 5, 6]);

    strategy.unmap(buf);
    expect(memory.vmalloc.areas().filter((a) => a.tag.startsWith("netvsc-rx"))).toHaveLength(1);
    hyperv.setMemory.encrypted(buf.gpadlVa, buf.pages);
    strategy.free(buf);
    expect(memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
    for (const tag of Object.values(TAGS)) expect(live(memory, tag)).toBe(0);
    expect(dma.counters.noncontiguousFrees).toBe(1);
    expect(memory.checkInvariants()).toEqual([]);
  });

  it("needs many sg entries and chunks on an aged guest, and frees them even when the pages must leak", () => {
    const { memory, hyperv, strategy } = boot();
    ageMemory(memory.buddy, 3, "heavy");
    const buf = strategy.allocate(16 * MiB, "netvsc-rx")!;
    const { sgt } = buf as typeof buf & { sgt: SgTable };
    expect(sgt.origNents).toBeGreaterThan(127);
    expect(sgt.chunks).toBe(sgChunkLayout(sgt.origNents).length); // at most 33: no two pages adjacent
    expect(live(memory, TAGS.sgTable)).toBe(sgt.chunkBytes);
    expect(sgt.totalLength).toBe(16 * MiB);
    hyperv.setMemory.decrypted(buf.gpadlVa, buf.pages);
    strategy.map(buf);
    strategy.unmap(buf);
    hyperv.hypervisor.faults.failCall(1); // the teardown's re-encryption fails
    expect(() => hyperv.setMemory.encrypted(buf.gpadlVa, buf.pages)).toThrow();
    strategy.leak(buf);
    // Private metadata goes back; the data pages and their vmalloc area stay, counted.
    for (const tag of Object.values(TAGS)) expect(live(memory, tag)).toBe(0);
    expect(memory.leakedPages).toBe(4096);
    expect(memory.vmalloc.findArea(buf.gpadlVa)?.tag).toBe("netvsc-rx");
    expect(memory.checkInvariants()).toEqual([]);
  });

  it("merges adjacent pages: one entry per buddy block the vmalloc pages came from", () => {
    const { memory, strategy } = boot();
    const buf = strategy.allocate(255 * PAGE_SIZE, "netvsc-tx")!;
    expect(live(memory, TAGS.pages)).toBe(2040);
    const { sgt } = buf as typeof buf & { sgt: SgTable };
    let runs = 1;
    for (let i = 1; i < 255; i++) if (sgt.pages![i] !== sgt.pages![i - 1]! + 1) runs++;
    expect(sgt.origNents).toBe(runs);
    expect(sgt.totalLength).toBe(255 * PAGE_SIZE);
  });

  it("falls back to vmalloc for the page array when the order-3 kmalloc fails (kvmalloc_array)", () => {
    const { memory, strategy } = boot();
    // kmalloc calls: the handle, the data area's nested page-array area, then the 32 KiB page array.
    memory.faults.failCall("kmalloc", 3);
    const buf = strategy.allocate(16 * MiB, "netvsc-rx")!;
    expect(memory.vmalloc.areas().find((a) => a.tag === TAGS.pages)?.size).toBe(32768);
    strategy.free(buf);
    expect(memory.vmalloc.areas().find((a) => a.tag === TAGS.pages)).toBeUndefined();
  });

  it("keeps the swiotlb streaming path of the same device (dma_ops_bypass in the patch)", () => {
    const { memory, layer, dma } = boot();
    const skb = memory.kmalloc.kmalloc(64, { tag: "skb" })!;
    const addr = dmaMapSingle(dma, skb, 64, DMA_TO_DEVICE);
    expect(layer.pool!.contains(addr)).toBe(true);
    dmaUnmapSingle(dma, addr, 64, DMA_TO_DEVICE);
  });

  it.each<AllocSite>(["vmalloc", "kmalloc", "pages"])(
    "holds nothing when %s fails at any call of allocate",
    (site) => {
      const { memory, strategy } = boot();
      const before = held(memory, "netvsc-tx");
      let failures = 0;
      for (let k = 1; ; k++) {
        memory.faults.failCall(site, k);
        const buf = strategy.allocate(8 * PAGE_SIZE, "netvsc-tx");
        memory.faults.clear();
        if (buf !== null) {
          strategy.free(buf);
          break;
        }
        failures++;
        expect(held(memory, "netvsc-tx")).toEqual(before);
      }
      expect(failures).toBeGreaterThan(0);
      expect(held(memory, "netvsc-tx")).toEqual(before);
    },
  );

  it("returns null from map, with nothing kept, when the PFN array cannot be allocated; a retry works", () => {
    const { memory, hyperv, strategy } = boot();
    const buf = strategy.allocate(255 * PAGE_SIZE, "netvsc-tx")!;
    hyperv.setMemory.decrypted(buf.gpadlVa, buf.pages);
    memory.faults.failCall("kmalloc", 1);
    expect(strategy.map(buf)).toBeNull();
    expect(strategy.state(buf)).toBe("allocated");
    expect(memory.kmalloc.statsFor(TAGS.vmapPfns).live).toBe(0);
    expect(memory.vmalloc.areas().filter((a) => a.tag.startsWith("netvsc-tx"))).toHaveLength(1);
    expect(strategy.map(buf)).not.toBeNull();
  });

  it("refuses a device without the noncontiguous hooks; the hooks allocate nothing outside an SNP guest", () => {
    const { memory, hyperv, layer } = boot();
    const plain = layer.createDevice({ name: "netvsc" });
    expect(() => dmaNoncontiguous.create({ memory, hyperv, dma: plain })).toThrowError(/dma-ops/);
    const vbs = boot("vbs");
    expect(dmaAllocNoncontiguous(vbs.dma, 16 * MiB, DMA_FROM_DEVICE)).toBeNull();
    expect(vbs.dma.counters.noncontiguousFailures).toBe(1);
  });
});
