import { HvIsolationType, type HypervLayer, vmapSharedAlias } from "@ivm/hypercall";
import { Gfp, type GuestMemory, PAGE_SIZE } from "@ivm/memory";
import { allocDmaSgtHandle, type DmaDevice, type DmaOps, SgTable } from "@ivm/swiotlb";

/** kmalloc/kvmalloc owner tags of the ops' private metadata, for reading costs off `kmalloc.statsFor`. */
export const HV_NONCONTIG_TAGS = {
  /** struct dma_sgt_handle (24 B). */
  handle: "hv-sgt-handle",
  /** The kvmalloc_array'd `struct page *` array (8 B a page), kept for the buffer's life. */
  pages: "hv-sgt-pages",
  /** The scatterlist chunks of sg_alloc_table_from_pages, kept for the buffer's life. */
  sgTable: "hv-sg-table",
  /** The temporary PFN array of the vmap hook. */
  vmapPfns: "hv-vmap-pfns",
} as const;

/** Owner of the data pages when no strategy named one. */
const DEFAULT_OWNER = "hv-dma-noncontig";

/**
 * The DMA API has no place for the model's owner tags, so a caller names the owner of the pages for the
 * duration of one dma_alloc_noncontiguous call (accounting only; nothing the kernel does).
 */
const owners = new WeakMap<DmaDevice, string>();

export function withPageOwner<T>(dev: DmaDevice, owner: string, call: () => T): T {
  owners.set(dev, owner);
  try {
    return call();
  } finally {
    owners.delete(dev);
  }
}

/** What dma_sgt_handle holds besides the sg_table: where its page array lives (sh->pages). */
const pageArrays = new WeakMap<SgTable, number>();

/** The vmalloc address the ops stored as the first entry's dma_address. */
export function sgtVaddr(sgt: SgTable): number {
  const va = sgt.dmaAddress[0];
  if (va === undefined || !pageArrays.has(sgt))
    throw new Error("not a table from the Hyper-V noncontiguous ops");
  return va;
}

/**
 * The private half of hyperv_dma_free_noncontiguous: sg_free_table, kvfree(sh->pages), kfree(sh). None of
 * it was ever shared, so the leak path frees it too.
 */
export function releaseSgtHandle(memory: GuestMemory, sgt: SgTable): void {
  const pagesVa = pageArrays.get(sgt);
  if (pagesVa === undefined || sgt.structVa === null) throw new Error("sgt handle released twice");
  sgt.free(memory);
  memory.kvfree(pagesVa);
  memory.kmalloc.kfree(sgt.structVa);
  pageArrays.delete(sgt);
  sgt.structVa = null;
}

/** hyperv_dma_alloc_noncontiguous: handle, vmalloc (not zeroed), page array, sg table; unwound on failure. */
function allocNoncontiguous(dev: DmaDevice, size: number, gfp: number): SgTable | null {
  const { memory } = dev;
  // The patch uses size >> PAGE_SHIFT; rounded up here, as Michael Kelley asked in review.
  const count = Math.ceil(size / PAGE_SIZE);
  const handle = allocDmaSgtHandle(memory, HV_NONCONTIG_TAGS.handle, gfp);
  if (handle === null) return null;
  const vaddr = memory.vmalloc.vmalloc(size, { tag: owners.get(dev) ?? DEFAULT_OWNER });
  const pagesVa =
    vaddr === null ? null : memory.kvmalloc(count * 8, { tag: HV_NONCONTIG_TAGS.pages, gfp: Gfp.Zero });
  if (vaddr !== null && pagesVa !== null) {
    // vmalloc_to_page, page by page: the only page-table walks of this approach.
    const pages = new Float64Array(count);
    for (let i = 0; i < count; i++) pages[i] = memory.vmalloc.vmallocToPfn(vaddr + i * PAGE_SIZE);
    const sgt = SgTable.fromPages(memory, pages, 0, size, { tag: HV_NONCONTIG_TAGS.sgTable });
    if (sgt !== null) {
      sgt.dmaAddress[0] = vaddr;
      sgt.dmaLength[0] = size;
      sgt.pages = pages;
      sgt.structVa = handle;
      pageArrays.set(sgt, pagesVa);
      return sgt;
    }
  }
  // The patch's free_pages / free_mem / free_sgt labels.
  if (pagesVa !== null) memory.kvfree(pagesVa);
  if (vaddr !== null) memory.vmalloc.vfree(vaddr);
  memory.kmalloc.kfree(handle);
  return null;
}

/**
 * The Hyper-V DMA ops of the split-off series V1/V2 (Tianyu Lan, Nov 16/23 2021, "hyperv/IOMMU: Enable
 * swiotlb bounce buffer for Isolation VM", drivers/iommu/hyperv-iommu.c): alloc/free/vmap/vunmap
 * noncontiguous hooks, each a no-op (NULL) outside an SNP guest. The patch set dma_ops_bypass so streaming
 * mappings still go through dma-direct + swiotlb; here the hooks are layered over `base` for the same effect.
 */
export function hypervNoncontiguousDmaOps(base: DmaOps, hyperv: HypervLayer): DmaOps {
  const snp = hyperv.isolation.isolationType === HvIsolationType.Snp;
  return {
    ...base,
    name: `${base.name}+hyperv-iommu`,
    allocNoncontiguous: (dev, size, _dir, gfp) => (snp ? allocNoncontiguous(dev, size, gfp) : null),
    freeNoncontiguous: (dev, _size, sgt) => {
      if (!snp) return;
      // hyperv_dma_free_noncontiguous's order: the buffer first, then the metadata.
      dev.memory.vmalloc.vfree(sgtVaddr(sgt));
      releaseSgtHandle(dev.memory, sgt);
    },
    vmapNoncontiguous: (dev, size, sgt) => {
      const pages = sgt.pages;
      if (!snp || pages === null) return null;
      const count = Math.ceil(size / PAGE_SIZE);
      const owner = dev.memory.vmalloc.findArea(sgtVaddr(sgt))?.tag ?? DEFAULT_OWNER;
      // page_to_pfn of the kept pages, + vTOM, vmap_pfn(PAGE_KERNEL); no page-table walk here.
      return vmapSharedAlias(dev.memory, count, (pfns) => pfns.set(pages.subarray(0, count)), {
        tag: `${owner}-alias`,
        arrayTag: HV_NONCONTIG_TAGS.vmapPfns,
      });
    },
    vunmapNoncontiguous: (dev, va) => {
      if (snp) dev.memory.vmalloc.vunmap(va);
    },
  };
}
