/**
 * What the bounce code needs from memory, and the DMA API's wire values. The bounce code stays
 * memory-agnostic behind these interfaces; `pool.ts` implements them over the `@ivm/memory` MMU (so
 * every bounce copy obeys the alias rules), and the phase-1 tests over plain arrays.
 */

/**
 * Byte access by guest-physical address. Implementations copy in bulk (one `Uint8Array.set` per
 * backing run), never byte by byte.
 */
export interface PhysAccess {
  /** Fill `dst` with the `dst.length` bytes at `addr`. */
  readPhys(addr: number, dst: Uint8Array): void;
  /** Store `src` at `addr`. */
  writePhys(addr: number, src: Uint8Array): void;
}

/**
 * The two sides of every bounce copy, as swiotlb_bounce sees them.
 *
 * - `pool` is how the guest reaches the bounce slots. In the 5.16–6.3 address-bit era that is
 *   io_tlb_mem.vaddr, the memremap of `start + vTOM` that swiotlb_update_mem_attributes sets up, so a
 *   slot at pool address `a` is accessed at `poolAlias + (a - start)`. In the pte-bit era the alias is
 *   the pool itself (`poolAlias === start`).
 * - `orig` is the original buffer side: phys_to_virt(orig_addr), the private direct map.
 */
export interface BounceMemory {
  readonly pool: PhysAccess;
  /** Address in `pool`'s address space where slot 0 starts. */
  readonly poolAlias: number;
  readonly orig: PhysAccess;
}

/** enum dma_data_direction (include/linux/dma-direction.h). */
export const DMA_BIDIRECTIONAL = 0 as const;
export const DMA_TO_DEVICE = 1 as const;
export const DMA_FROM_DEVICE = 2 as const;
export const DMA_NONE = 3 as const;

export const DmaDirection = {
  DMA_BIDIRECTIONAL: 0,
  DMA_TO_DEVICE: 1,
  DMA_FROM_DEVICE: 2,
  DMA_NONE: 3,
} as const;
/** A DMA direction. Callers may pass any number (the kernel BUG()s on unknown values; the model throws). */
export type DmaDirection = (typeof DmaDirection)[keyof typeof DmaDirection];

/** DMA attribute bits (include/linux/dma-mapping.h). */
export const DMA_ATTR_SKIP_CPU_SYNC: number = 1 << 5;
export const DMA_ATTR_NO_WARN: number = 1 << 8;
/** The only attribute dma_alloc_noncontiguous accepts. */
export const DMA_ATTR_ALLOC_SINGLE_PAGES: number = 1 << 7;

/**
 * The device properties swiotlb reads: dma_get_min_align_mask (netvsc sets 0xFFF, HV_HYP_PAGE_SIZE - 1)
 * and dma_get_seg_boundary (absent means ULONG_MAX: no boundary). The DMA API's `DmaDevice` extends it.
 */
export interface SwiotlbDevice {
  readonly minAlignMask: number;
  /** A 2^k − 1 mask with k ≥ 11, below 2^53; omitted means no boundary (the kernel's ULONG_MAX). */
  readonly segBoundaryMask?: number;
}

/**
 * DMA_MAPPING_ERROR is ~(dma_addr_t)0 in the kernel; that u64 does not fit a JS number, and no valid
 * address is negative, so the model uses −1.
 */
export const DMA_MAPPING_ERROR = -1 as const;
