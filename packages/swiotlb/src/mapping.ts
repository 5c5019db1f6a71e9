import { getOrder, MAX_ORDER, PAGE_SIZE } from "@ivm/memory";
import { DMA_ATTR_ALLOC_SINGLE_PAGES, DMA_MAPPING_ERROR } from "./bounce-types.js";
import { checkDmaDirection } from "./dma-direct.js";
import type { DmaDevice } from "./dma-ops.js";
import { badCaller } from "./errors.js";
import { SG_TABLE_SIZE, SG_TABLE_TAG, SgTable } from "./scatterlist.js";

/** Owner tag of alloc_single_sgt's pages and struct sg_table. */
export const DMA_NONCONTIG_TAG = "dma-noncontig" as const;
/** Owner tag of the generic vmap of a noncontiguous allocation. */
export const DMA_VMAP_TAG = "dma-vmap" as const;

/**
 * Live streaming mappings per device, by DMA address (what CONFIG_DMA_API_DEBUG keeps): the model uses
 * it to refuse an unmap of an address the device never got, before anything is copied or freed.
 */
const liveByDevice = new WeakMap<DmaDevice, Map<number, number>>();

function liveOf(dev: DmaDevice): Map<number, number> {
  let live = liveByDevice.get(dev);
  if (live === undefined) {
    live = new Map();
    liveByDevice.set(dev, live);
  }
  return live;
}

/** dma_mapping_error(). */
export function dmaMappingError(_dev: DmaDevice, dmaAddr: number): boolean {
  return dmaAddr === DMA_MAPPING_ERROR;
}

/**
 * Mirrors dma_map_single_attrs → dma_map_page_attrs: a linear-map buffer of `size` bytes at the kernel
 * address `va` becomes a device address through the device's ops. A vmalloc (or any non-linear-map)
 * address is rejected with DMA_MAPPING_ERROR, as the kernel's dev_WARN_ONCE does; so is a mapping the
 * ops cannot make (pool full). Both are counted, neither changes memory.
 */
export function dmaMapSingle(dev: DmaDevice, va: number, size: number, dir: number, attrs = 0): number {
  checkDmaDirection(dir);
  const { memory, counters } = dev;
  if (!memory.isDirectMap(va)) {
    counters.vmallocRejected++;
    counters.mapErrors++;
    return DMA_MAPPING_ERROR;
  }
  const dmaAddr = dev.ops.mapPage(dev, memory.virtToPhys(va), size, dir, attrs);
  if (dmaAddr === DMA_MAPPING_ERROR) {
    counters.mapErrors++;
    return DMA_MAPPING_ERROR;
  }
  counters.maps++;
  counters.liveMappings++;
  const live = liveOf(dev);
  live.set(dmaAddr, (live.get(dmaAddr) ?? 0) + 1);
  return dmaAddr;
}

/** Mirrors dma_unmap_single_attrs / dma_unmap_page_attrs. */
export function dmaUnmapSingle(dev: DmaDevice, dmaAddr: number, size: number, dir: number, attrs = 0): void {
  checkDmaDirection(dir);
  const live = liveOf(dev);
  const count = live.get(dmaAddr) ?? 0;
  if (count === 0) {
    throw badCaller("unmap-unknown", `${dev.name}: unmap of 0x${dmaAddr.toString(16)}, which is not mapped`);
  }
  dev.ops.unmapPage(dev, dmaAddr, size, dir, attrs);
  if (count === 1) live.delete(dmaAddr);
  else live.set(dmaAddr, count - 1);
  dev.counters.unmaps++;
  dev.counters.liveMappings--;
}

/** Mirrors dma_sync_single_for_cpu: the device's bytes become visible to the CPU. */
export function dmaSyncSingleForCpu(dev: DmaDevice, dmaAddr: number, size: number, dir: number): void {
  checkDmaDirection(dir);
  dev.ops.syncSingleForCpu(dev, dmaAddr, size, dir);
  dev.counters.syncsForCpu++;
}

/** Mirrors dma_sync_single_for_device: the CPU's bytes become visible to the device. */
export function dmaSyncSingleForDevice(dev: DmaDevice, dmaAddr: number, size: number, dir: number): void {
  checkDmaDirection(dir);
  dev.ops.syncSingleForDevice(dev, dmaAddr, size, dir);
  dev.counters.syncsForDevice++;
}

/**
 * Approach 2's dma_map_decrypted (proposed, never merged): the ops' mapDecrypted, or, for ops without
 * one, `va` unchanged (nothing to convert or remap). Returns null when the op fails.
 */
export function dmaMapDecrypted(dev: DmaDevice, va: number, size: number): number | null {
  const op = dev.ops.mapDecrypted;
  return op === undefined ? va : op(dev, va, size);
}

/** Approach 2's dma_unmap_encrypted: the ops' unmapEncrypted, or nothing for ops without one. */
export function dmaUnmapEncrypted(dev: DmaDevice, va: number, size: number): void {
  dev.ops.unmapEncrypted?.(dev, va, size);
}

/**
 * Mirrors dma_alloc_noncontiguous: only DMA_ATTR_ALLOC_SINGLE_PAGES is accepted (anything else:
 * WARN_ON_ONCE and null); the ops' allocNoncontiguous if there is one, else alloc_single_sgt (one
 * physically contiguous block in a one-entry table). The wrapper then sets nents to 1.
 */
export function dmaAllocNoncontiguous(
  dev: DmaDevice,
  size: number,
  dir: number,
  gfp = 0,
  attrs = 0,
): SgTable | null {
  if (!Number.isSafeInteger(size) || size <= 0)
    throw badCaller("bad-size", `noncontiguous allocation of ${size}`);
  if ((attrs & ~DMA_ATTR_ALLOC_SINGLE_PAGES) !== 0) {
    dev.counters.badAttrs++;
    dev.counters.noncontiguousFailures++;
    return null;
  }
  const op = dev.ops.allocNoncontiguous;
  const sgt = op === undefined ? allocSingleSgt(dev, size, gfp) : op(dev, size, dir, gfp, attrs);
  if (sgt === null) {
    dev.counters.noncontiguousFailures++;
    return null;
  }
  sgt.nents = 1;
  dev.counters.noncontiguousAllocs++;
  return sgt;
}

/**
 * Mirrors alloc_single_sgt over dma-direct's page allocation: a kmalloc'd struct sg_table, a one-entry
 * table, and one buddy block of get_order(size) pages, zeroed. There is no CMA in the model, so a block
 * above order 10 (4 MiB) fails as alloc_pages does (a 16 MiB request returns null).
 */
function allocSingleSgt(dev: DmaDevice, size: number, gfp: number): SgTable | null {
  const { memory } = dev;
  const structVa = memory.kmalloc.kmalloc(SG_TABLE_SIZE, { tag: DMA_NONCONTIG_TAG, gfp });
  if (structVa === null) return null;
  const table = SgTable.alloc(memory, 1, { tag: SG_TABLE_TAG, gfp });
  if (table === null) {
    memory.kmalloc.kfree(structVa);
    return null;
  }
  const bytes = Math.ceil(size / PAGE_SIZE) * PAGE_SIZE;
  const order = getOrder(bytes);
  const pfn = order >= MAX_ORDER ? null : memory.buddy.allocPages(order, { tag: DMA_NONCONTIG_TAG, gfp });
  if (pfn === null) {
    table.free(memory);
    memory.kmalloc.kfree(structVa);
    return null;
  }
  // dma_direct_alloc_pages clears the buffer
  memory.mmu.fill(memory.pageToVirt(pfn), bytes, 0);
  table.pfn[0] = pfn;
  table.offset[0] = 0;
  table.length[0] = bytes;
  table.dmaAddress[0] = pfn * PAGE_SIZE;
  table.dmaLength[0] = bytes;
  table.structVa = structVa;
  return table;
}

/** Mirrors dma_free_noncontiguous: the ops' freeNoncontiguous, or free_single_sgt. */
export function dmaFreeNoncontiguous(dev: DmaDevice, size: number, sgt: SgTable, dir: number): void {
  const op = dev.ops.freeNoncontiguous;
  if (op !== undefined) {
    op(dev, size, sgt, dir);
  } else {
    const { memory } = dev;
    const pfn = sgt.pfn[0];
    if (pfn === undefined || sgt.origNents !== 1) {
      throw badCaller("bad-sgt", `${dev.name}: not a single-entry table from alloc_single_sgt`);
    }
    memory.buddy.freePages(pfn, getOrder(Math.ceil(size / PAGE_SIZE) * PAGE_SIZE));
    sgt.free(memory);
    if (sgt.structVa !== null) memory.kmalloc.kfree(sgt.structVa);
    sgt.structVa = null;
  }
  dev.counters.noncontiguousFrees++;
}

/**
 * Mirrors dma_vmap_noncontiguous: with ops that allocate noncontiguously, their vmapNoncontiguous hook
 * (the proposed Hyper-V one maps pfn + vTOM) or else vmap of the handle's page list; without such ops,
 * the linear address of the single block. Returns null when the mapping fails.
 */
export function dmaVmapNoncontiguous(dev: DmaDevice, size: number, sgt: SgTable): number | null {
  const { ops, memory } = dev;
  if (ops.vmapNoncontiguous !== undefined) return ops.vmapNoncontiguous(dev, size, sgt);
  if (ops.allocNoncontiguous !== undefined) {
    const count = Math.ceil(size / PAGE_SIZE);
    if (sgt.pages === null || sgt.pages.length < count) {
      throw badCaller("bad-sgt", `${dev.name}: the table has no page list of ${count} pages to vmap`);
    }
    return memory.vmalloc.vmap(sgt.pages.subarray(0, count), { tag: DMA_VMAP_TAG });
  }
  const pfn = sgt.pfn[0];
  if (pfn === undefined) throw badCaller("bad-sgt", `${dev.name}: empty table`);
  return memory.pageToVirt(pfn);
}

/** Mirrors dma_vunmap_noncontiguous: only a real vmap (ops that allocate noncontiguously) is undone. */
export function dmaVunmapNoncontiguous(dev: DmaDevice, va: number): void {
  const { ops } = dev;
  if (ops.vunmapNoncontiguous !== undefined) ops.vunmapNoncontiguous(dev, va);
  else if (ops.allocNoncontiguous !== undefined) dev.memory.vmalloc.vunmap(va);
}
