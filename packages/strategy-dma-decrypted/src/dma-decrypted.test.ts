import { bootPlatform } from "@ivm/hypercall";
import { type AllocSite, PAGE_SIZE } from "@ivm/memory";
import { bootDma, DMA_TO_DEVICE, dmaMapSingle, dmaUnmapSingle } from "@ivm/swiotlb";
import { describe, expect, it } from "vitest";
import { dmaDecrypted, hypervDecryptedDmaOps } from "./dma-decrypted.js";

const MiB = 2 ** 20;

function boot(type: "snp" | "none" = "snp") {
  const { memory, hyperv } = bootPlatform({ bytes: 256 * MiB, isolation: type });
  const layer = bootDma(memory, hyperv, { nslabs: 1024 });
  const ops = hypervDecryptedDmaOps(layer.ops, hyperv);
  const dma = layer.createDevice({ name: "netvsc", minAlignMask: 0xfff, ops });
  return { memory, hyperv, layer, dma };
}

function bootStrategy() {
  const guest = boot();
  return { ...guest, strategy: dmaDecrypted.create(guest) };
}

describe("strategy (2): dma_map_decrypted / dma_unmap_encrypted with Hyper-V callbacks", () => {
  it("maps the receive buffer a second time above vTOM through the DMA call, freeing the 32 KiB PFN array", () => {
    const { memory, hyperv, strategy } = bootStrategy();
    const buf = strategy.allocate(16 * MiB, "netvsc-rx")!;
    expect(memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(4096);
    hyperv.setMemory.decrypted(buf.gpadlVa, buf.pages); // what the GPADL does
    const walks = memory.vmalloc.pageWalks;
    const alias = strategy.map(buf)!.va;
    expect(memory.vmalloc.pageWalks - walks).toBe(4096); // hv_map_memory: vmalloc_to_pfn per page
    expect(alias % (16 * MiB)).toBe(0);
    const areas = memory.vmalloc.areas().filter((a) => a.tag.startsWith("netvsc-rx"));
    expect(areas.map((a) => [a.tag, a.kind])).toEqual([
      ["netvsc-rx", "vmalloc"],
      ["netvsc-rx-alias", "ioremap"],
    ]);
    expect(memory.kmalloc.statsFor("hv-map-pfns")).toMatchObject({ live: 0, peak: 32768, allocations: 1 });
    // The guest writes through the alias; the host reads the same bytes at the GPADL's PFNs.
    memory.mmu.write(alias + 4095 * PAGE_SIZE + 7, new Uint8Array([9, 8, 7]));
    const seen = new Uint8Array(3);
    hyperv.hostView.read(memory.virtToPfn(buf.gpadlVa + 4095 * PAGE_SIZE) * PAGE_SIZE + 7, seen);
    expect([...seen]).toEqual([9, 8, 7]);
    strategy.unmap(buf);
    expect(memory.vmalloc.areas().filter((a) => a.tag.startsWith("netvsc-rx"))).toHaveLength(1);
    hyperv.setMemory.encrypted(buf.gpadlVa, buf.pages);
    strategy.free(buf);
    expect(memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
    expect(memory.checkInvariants()).toEqual([]);
  });

  it("changes no host visibility itself, and a failed map keeps nothing and can be retried", () => {
    const { memory, hyperv, strategy } = bootStrategy();
    const buf = strategy.allocate(255 * PAGE_SIZE, "netvsc-tx")!;
    hyperv.setMemory.decrypted(buf.gpadlVa, buf.pages); // the GPADL's one conversion
    const { hypercalls } = hyperv.hypervisor.counters;
    memory.faults.failCall("kmalloc", 1); // hv_map_memory's kcalloc
    expect(strategy.map(buf)).toBeNull();
    expect([strategy.state(buf), memory.kmalloc.statsFor("hv-map-pfns").live]).toEqual(["allocated", 0]);
    expect(memory.vmalloc.areas().filter((a) => a.tag === "netvsc-tx-alias")).toEqual([]);
    expect(strategy.map(buf)).not.toBeNull();
    strategy.unmap(buf);
    expect(hyperv.hypervisor.counters.hypercalls).toBe(hypercalls);
  });

  it("bounces the same device's streaming mappings through swiotlb while the buffer is mapped", () => {
    const { memory, hyperv, layer, dma } = boot();
    const strategy = dmaDecrypted.create({ memory, hyperv, dma });
    const buf = strategy.allocate(PAGE_SIZE, "netvsc-tx")!;
    hyperv.setMemory.decrypted(buf.gpadlVa, 1);
    strategy.map(buf);
    const skb = memory.kmalloc.kmalloc(64, { tag: "skb" })!;
    memory.mmu.write(skb, new Uint8Array([1, 2, 3, 4]));
    const addr = dmaMapSingle(dma, skb, 64, DMA_TO_DEVICE);
    expect(layer.pool!.contains(addr)).toBe(true);
    const seen = new Uint8Array(4);
    hyperv.hostView.read(addr, seen);
    expect([...seen]).toEqual([1, 2, 3, 4]);
    dmaUnmapSingle(dma, addr, 64, DMA_TO_DEVICE);
  });

  it("leaks the pages and keeps the vmalloc area when the GPADL teardown could not re-encrypt", () => {
    const { memory, hyperv, strategy } = bootStrategy();
    const buf = strategy.allocate(255 * PAGE_SIZE, "netvsc-tx")!;
    hyperv.setMemory.decrypted(buf.gpadlVa, buf.pages);
    hyperv.hypervisor.faults.failCall(1);
    expect(() => hyperv.setMemory.encrypted(buf.gpadlVa, buf.pages)).toThrow();
    strategy.leak(buf);
    expect([memory.leakedPages, memory.buddy.pagesOwnedBy("netvsc-tx")]).toEqual([255, 255]);
    expect(memory.vmalloc.findArea(buf.gpadlVa)?.tag).toBe("netvsc-tx");
    expect(memory.checkInvariants()).toEqual([]);
  });

  it.each<[AllocSite, number]>([
    ["vmalloc", 1], // the area itself
    ["kmalloc", 1], // the nested page-array area's own array
    ["pages", 2000], // the 2000th data page
  ])("holds nothing when %s call %i of the receive buffer's vzalloc fails", (site, k) => {
    const { memory, strategy } = bootStrategy();
    const kmallocLive = () => [...memory.kmalloc.stats().values()].reduce((sum, t) => sum + t.live, 0);
    const before = [kmallocLive(), memory.vmalloc.areas().length];
    memory.faults.failCall(site, k);
    expect(strategy.allocate(16 * MiB, "netvsc-rx")).toBeNull();
    expect([kmallocLive(), memory.vmalloc.areas().length]).toEqual(before);
    expect(memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
  });

  it("refuses a device whose ops have no decrypted mapping", () => {
    const { memory, hyperv, layer } = boot();
    const plain = layer.createDevice({ name: "netvsc" });
    expect(() => dmaDecrypted.create({ memory, hyperv, dma: plain })).toThrowError(/dma-ops/);
    // Outside an isolated guest hyperv_swiotlb_detect installs nothing: the ops are the base ones.
    const none = boot("none");
    expect(hypervDecryptedDmaOps(none.layer.ops, none.hyperv)).toBe(none.layer.ops);
  });
});
