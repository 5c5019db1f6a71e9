import type { GuestMemory } from "@ivm/memory";
import type { SwiotlbDevice } from "./bounce-types.js";
import { badCaller } from "./errors.js";
import type { SgTable } from "./scatterlist.js";

/**
 * struct dma_map_ops as the model needs it: plain objects of functions (so a strategy can extend an
 * existing set with `{ ...swiotlbDmaOps(pool), allocNoncontiguous }`). DMA addresses are numbers;
 * DMA_MAPPING_ERROR (−1) reports a failed mapping.
 */
export interface DmaOps {
  /** Shown in messages and reports ("dma-direct", "swiotlb", a strategy's name). */
  readonly name: string;
  /**
   * map_page, with page_to_phys(page) + offset already computed: `phys` is the private-alias physical
   * address of the buffer. Returns the device address or DMA_MAPPING_ERROR.
   */
  readonly mapPage: (dev: DmaDevice, phys: number, size: number, dir: number, attrs: number) => number;
  readonly unmapPage: (dev: DmaDevice, dmaAddr: number, size: number, dir: number, attrs: number) => void;
  readonly syncSingleForCpu: (dev: DmaDevice, dmaAddr: number, size: number, dir: number) => void;
  readonly syncSingleForDevice: (dev: DmaDevice, dmaAddr: number, size: number, dir: number) => void;
  /**
   * Approach 2 (dma_map_decrypted, proposed, not merged): return the address the guest must use from now
   * on for `size` bytes at the kernel address `va`, or null on failure. In the model it only remaps: the
   * GPADL already made the pages host-visible (patch v3 also converted them here; doing both would
   * convert twice).
   */
  readonly mapDecrypted?: (dev: DmaDevice, va: number, size: number) => number | null;
  /** Approach 2 (dma_unmap_encrypted): undo mapDecrypted; `va` is what mapDecrypted returned. */
  readonly unmapEncrypted?: (dev: DmaDevice, va: number, size: number) => void;
  /** Approach 3: dma_map_ops.alloc_noncontiguous. */
  readonly allocNoncontiguous?: (
    dev: DmaDevice,
    size: number,
    dir: number,
    gfp: number,
    attrs: number,
  ) => SgTable | null;
  readonly freeNoncontiguous?: (dev: DmaDevice, size: number, sgt: SgTable, dir: number) => void;
  /** Approach 3 (Tianyu V1/V2 hooks): the guest-usable mapping of a noncontiguous allocation, or null. */
  readonly vmapNoncontiguous?: (dev: DmaDevice, size: number, sgt: SgTable) => number | null;
  readonly vunmapNoncontiguous?: (dev: DmaDevice, va: number) => void;
}

/** What the DMA API front end counts per device. */
export interface DmaDeviceCounters {
  maps: number;
  unmaps: number;
  /** Mappings that returned DMA_MAPPING_ERROR (vmalloc rejections included). */
  mapErrors: number;
  /** dma_map_single of a non-linear-map address ("rejecting DMA map of vmalloc memory"). */
  vmallocRejected: number;
  /** Mappings made and not yet unmapped. */
  liveMappings: number;
  syncsForCpu: number;
  syncsForDevice: number;
  noncontiguousAllocs: number;
  noncontiguousFailures: number;
  noncontiguousFrees: number;
  /** dma_alloc_noncontiguous calls refused for attributes other than DMA_ATTR_ALLOC_SINGLE_PAGES. */
  badAttrs: number;
}

/**
 * struct device as the DMA API sees it: the swiotlb properties (min_align_mask, segment boundary), the
 * guest it belongs to, and its dma_map_ops. Build one with `createDmaDevice` (or `DmaLayer.createDevice`).
 */
export interface DmaDevice extends SwiotlbDevice {
  readonly name: string;
  readonly memory: GuestMemory;
  /** get_dma_ops(dev). */
  readonly ops: DmaOps;
  readonly counters: DmaDeviceCounters;
}

export interface DmaDeviceOptions {
  readonly name: string;
  /** dma_set_min_align_mask (netvsc: 0xFFF). Default 0, as a device without dma_parms. */
  readonly minAlignMask?: number;
  /** dma_set_seg_boundary: 2^k − 1 with k ≥ 11; omitted means none. */
  readonly segBoundaryMask?: number;
}

export interface CreateDmaDeviceOptions extends DmaDeviceOptions {
  readonly memory: GuestMemory;
  readonly ops: DmaOps;
}

function newCounters(): DmaDeviceCounters {
  return {
    maps: 0,
    unmaps: 0,
    mapErrors: 0,
    vmallocRejected: 0,
    liveMappings: 0,
    syncsForCpu: 0,
    syncsForDevice: 0,
    noncontiguousAllocs: 0,
    noncontiguousFailures: 0,
    noncontiguousFrees: 0,
    badAttrs: 0,
  };
}

/** A DMA device over `memory` with `ops` attached (device_add + set_dma_ops + dma_set_min_align_mask). */
export function createDmaDevice(options: CreateDmaDeviceOptions): DmaDevice {
  const minAlignMask = options.minAlignMask ?? 0;
  if (!Number.isInteger(minAlignMask) || minAlignMask < 0 || minAlignMask > 0xffff_ffff) {
    throw badCaller("bad-mask", `minAlignMask must be a 32-bit unsigned integer, got ${minAlignMask}`);
  }
  return {
    name: options.name,
    memory: options.memory,
    ops: options.ops,
    minAlignMask,
    ...(options.segBoundaryMask === undefined ? {} : { segBoundaryMask: options.segBoundaryMask }),
    counters: newCounters(),
  };
}
