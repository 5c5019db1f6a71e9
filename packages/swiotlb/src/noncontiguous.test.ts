import { Gfp, PAGE_SIZE } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { DMA_ATTR_ALLOC_SINGLE_PAGES, DMA_ATTR_NO_WARN, DMA_FROM_DEVICE } from "./bounce-types.js";
import { dmaDirectOps } from "./dma-direct.js";
import { createDmaDevice, type DmaOps } from "./dma-ops.js";
import {
  DMA_NONCONTIG_TAG,
  dmaAllocNoncontiguous,
  dmaFreeNoncontiguous,
  dmaMapDecrypted,
  dmaUnmapEncrypted,
  dmaVmapNoncontiguous,
  dmaVunmapNoncontiguous,
} from "./mapping.js";
import { allocDmaSgtHandle, DMA_SGT_HANDLE_SIZE, SG_TABLE_TAG, SgTable } from "./scatterlist.js";
import { bootIsolatedGuest, bootPlainGuest } from "./testing/boot.js";

const MiB = 2 ** 20;

describe("dma_alloc_noncontiguous without ops (alloc_single_sgt)", () => {
  it("fails a 16 MiB request (no CMA, above the order-10 buddy maximum) and succeeds at 1 MiB with one order-8 block", () => {
    const { memory, dma } = bootPlainGuest();
    const dev = dma.createDevice({ name: "nic" });
    expect(dmaAllocNoncontiguous(dev, 16 * MiB, DMA_FROM_DEVICE, Gfp.NoWarn)).toBeNull();
    expect(memory.kmalloc.statsFor(DMA_NONCONTIG_TAG).live).toBe(0);
    expect(memory.kmalloc.statsFor(SG_TABLE_TAG).live).toBe(0);
    expect(dev.counters.noncontiguousFailures).toBe(1);

    const sgt = dmaAllocNoncontiguous(dev, 1 * MiB, DMA_FROM_DEVICE)!;
    expect(sgt.origNents).toBe(1);
    expect(sgt.nents).toBe(1);
    expect(sgt.length[0]).toBe(1 * MiB);
    expect(memory.buddy.blockOf(sgt.pfn[0]!)).toEqual({ head: sgt.pfn[0], order: 8, free: false });
    expect(memory.buddy.pagesOwnedBy(DMA_NONCONTIG_TAG)).toBe(256);
    expect(sgt.dmaAddress[0]).toBe(sgt.pfn[0]! * PAGE_SIZE);
    // the linear address of the block, no second mapping
    const va = dmaVmapNoncontiguous(dev, 1 * MiB, sgt)!;
    expect(va).toBe(memory.pageToVirt(sgt.pfn[0]!));
    dmaVunmapNoncontiguous(dev, va);
    dmaFreeNoncontiguous(dev, 1 * MiB, sgt, DMA_FROM_DEVICE);
    expect(memory.buddy.pagesOwnedBy(DMA_NONCONTIG_TAG)).toBe(0);
    expect(memory.kmalloc.statsFor(DMA_NONCONTIG_TAG).live).toBe(0);
    expect(memory.kmalloc.statsFor(SG_TABLE_TAG).live).toBe(0);
  });

  it("refuses attributes other than DMA_ATTR_ALLOC_SINGLE_PAGES", () => {
    const { dma } = bootPlainGuest();
    const dev = dma.createDevice({ name: "nic" });
    expect(dmaAllocNoncontiguous(dev, 4096, DMA_FROM_DEVICE, 0, DMA_ATTR_NO_WARN)).toBeNull();
    expect(dev.counters.badAttrs).toBe(1);
    const sgt = dmaAllocNoncontiguous(dev, 4096, DMA_FROM_DEVICE, 0, DMA_ATTR_ALLOC_SINGLE_PAGES);
    expect(sgt).not.toBeNull();
  });
});

describe("strategy hooks on DmaOps (a fake op set)", () => {
  it("dispatches noncontiguous alloc/vmap/vunmap/free and the decrypted mapping calls to the ops", () => {
    const { memory } = bootIsolatedGuest("address-bit", 2 ** 28, { nslabs: 128 });
    const calls: string[] = [];
    const vmallocs = new Map<SgTable, number>();
    const fake: DmaOps = {
      ...dmaDirectOps(),
      name: "fake",
      // vmalloc pages kept in an sg table behind a dma_sgt_handle, as approach 3 does
      allocNoncontiguous: (dev, size) => {
        calls.push("alloc");
        const va = dev.memory.vmalloc.vmalloc(size, { tag: "fake-buf" });
        if (va === null) return null;
        const n = Math.ceil(size / PAGE_SIZE);
        const pages = new Float64Array(n);
        for (let i = 0; i < n; i++) pages[i] = dev.memory.virtToPfn(va + i * PAGE_SIZE);
        const sgt = SgTable.fromPages(dev.memory, pages, 0, size, { tag: "fake-sg" });
        const handle = allocDmaSgtHandle(dev.memory, "fake-handle");
        if (sgt === null || handle === null) throw new Error("test setup");
        sgt.structVa = handle;
        sgt.pages = pages;
        vmallocs.set(sgt, va);
        return sgt;
      },
      freeNoncontiguous: (dev, _size, sgt) => {
        calls.push("free");
        sgt.free(dev.memory);
        if (sgt.structVa !== null) dev.memory.kmalloc.kfree(sgt.structVa);
        dev.memory.vmalloc.vfree(vmallocs.get(sgt)!);
      },
      vmapNoncontiguous: (dev, _size, sgt) => {
        calls.push("vmap");
        return dev.memory.vmalloc.vmapPfn(
          Array.from(sgt.pages!, (p) => p + dev.memory.vtomPfn),
          { tag: "fake-alias" },
        );
      },
      vunmapNoncontiguous: (dev, va) => {
        calls.push("vunmap");
        dev.memory.vmalloc.vunmap(va);
      },
      mapDecrypted: (_dev, va) => {
        calls.push("map-decrypted");
        return va + 1;
      },
      unmapEncrypted: () => {
        calls.push("unmap-encrypted");
      },
    };
    const dev = createDmaDevice({ name: "netvsc", memory, ops: fake, minAlignMask: 0xfff });
    const sgt = dmaAllocNoncontiguous(dev, 64 * 1024, DMA_FROM_DEVICE)!;
    expect(sgt.nents).toBe(1); // the 5.15 wrapper's assignment
    expect(memory.kmalloc.statsFor("fake-handle").live).toBe(DMA_SGT_HANDLE_SIZE);
    const va = dmaVmapNoncontiguous(dev, 64 * 1024, sgt)!;
    expect(memory.vmalloc.findArea(va)?.tag).toBe("fake-alias");
    dmaVunmapNoncontiguous(dev, va);
    dmaFreeNoncontiguous(dev, 64 * 1024, sgt, DMA_FROM_DEVICE);
    expect(dmaMapDecrypted(dev, 0x1000, 10)).toBe(0x1001);
    dmaUnmapEncrypted(dev, 0x1001, 10);
    expect(calls).toEqual(["alloc", "vmap", "vunmap", "free", "map-decrypted", "unmap-encrypted"]);
    expect(memory.kmalloc.statsFor("fake-sg").live).toBe(0);
  });

  it("without a vmap hook, ops that allocate noncontiguously get vmap of the handle's pages", () => {
    const { memory } = bootPlainGuest(2 ** 28);
    const fake: DmaOps = {
      ...dmaDirectOps(),
      allocNoncontiguous: (dev, size) => {
        const n = size / PAGE_SIZE;
        const pages = new Float64Array(n);
        for (let i = 0; i < n; i++) pages[i] = dev.memory.buddy.allocPages(0, { tag: "fake" })!;
        const sgt = SgTable.fromPages(dev.memory, pages, 0, size)!;
        sgt.pages = pages;
        return sgt;
      },
    };
    const dev = createDmaDevice({ name: "nic", memory, ops: fake });
    const sgt = dmaAllocNoncontiguous(dev, 8 * PAGE_SIZE, DMA_FROM_DEVICE)!;
    const va = dmaVmapNoncontiguous(dev, 8 * PAGE_SIZE, sgt)!;
    expect(memory.vmalloc.isVmallocAddr(va)).toBe(true);
    expect(memory.virtToPfn(va + 3 * PAGE_SIZE)).toBe(sgt.pages![3]);
    dmaVunmapNoncontiguous(dev, va);
    expect(memory.vmalloc.findArea(va)).toBeUndefined();
    // without the ops, decrypted mapping is the identity
    const plain = createDmaDevice({ name: "plain", memory, ops: dmaDirectOps() });
    expect(dmaMapDecrypted(plain, 0x2000, 10)).toBe(0x2000);
  });
});
