export type { BounceStats, SwiotlbBounceOptions, SyncForDeviceRule } from "./bounce.js";
export { SwiotlbBounce } from "./bounce.js";
export type { BounceMemory, PhysAccess, SwiotlbDevice } from "./bounce-types.js";
export {
  DMA_ATTR_ALLOC_SINGLE_PAGES,
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_NONE,
  DMA_TO_DEVICE,
  DmaDirection,
} from "./bounce-types.js";
export { dmaDirectOps } from "./dma-direct.js";
export { bootDma, type DmaLayer } from "./dma-layer.js";
export {
  type CreateDmaDeviceOptions,
  createDmaDevice,
  type DmaDevice,
  type DmaDeviceCounters,
  type DmaDeviceOptions,
  type DmaOps,
} from "./dma-ops.js";
export type { SwiotlbErrorCode, SwiotlbErrorReason, SwiotlbFault } from "./errors.js";
export { SWIOTLB_ERRNO, SwiotlbError } from "./errors.js";
export type {
  FindSlotsOptions,
  IoTlbMapping,
  IoTlbMemOptions,
  IoTlbStats,
  SearchTermination,
} from "./io-tlb.js";
export { INVALID_PHYS_ADDR, IoTlbMem, SLOT_SEARCH_FINDING } from "./io-tlb.js";
export {
  DMA_NONCONTIG_TAG,
  DMA_VMAP_TAG,
  dmaAllocNoncontiguous,
  dmaFreeNoncontiguous,
  dmaMapDecrypted,
  dmaMappingError,
  dmaMapSingle,
  dmaSyncSingleForCpu,
  dmaSyncSingleForDevice,
  dmaUnmapEncrypted,
  dmaUnmapSingle,
  dmaVmapNoncontiguous,
  dmaVunmapNoncontiguous,
} from "./mapping.js";
export {
  bootSwiotlb,
  IO_TLB_SLOT_STRUCT_SIZE,
  LOW_MEMORY_LIMIT,
  SWIOTLB_REMAP_TAG,
  SWIOTLB_SLOTS_TAG,
  SWIOTLB_TAG,
  type SwiotlbBootOptions,
  type SwiotlbBootReport,
  type SwiotlbPool,
  type SwiotlbPoolStats,
} from "./pool.js";
export type { Clock, RateLimitOptions } from "./ratelimit.js";
export {
  DEFAULT_RATELIMIT_BURST,
  DEFAULT_RATELIMIT_INTERVAL_MS,
  monotonicCounterClock,
  RateLimit,
} from "./ratelimit.js";
export {
  allocDmaSgtHandle,
  DMA_SGT_HANDLE_SIZE,
  SCATTERLIST_SIZE,
  SG_DEFAULT_MAX_SEGMENT,
  SG_MAX_SINGLE_ALLOC,
  SG_TABLE_SIZE,
  SG_TABLE_TAG,
  type SgAllocOptions,
  type SgFromPagesOptions,
  SgTable,
  sgChunkLayout,
} from "./scatterlist.js";
export type { AreaSizing, AreaSizingRules, IvmSwiotlbSizingInput } from "./sizing.js";
export {
  IO_TLB_DEFAULT_NSLABS,
  IO_TLB_DEFAULT_SIZE,
  IO_TLB_MIN_SLABS,
  IO_TLB_SEGSIZE,
  IO_TLB_SHIFT,
  IO_TLB_SIZE,
  ivmSwiotlbNslabs,
  limitNareas,
  PAGE_SHIFT,
  PAGE_SIZE,
  roundUpPowerOfTwo,
  SWIOTLB_SEV_MAX_SIZE,
  sevSwiotlbBytes,
  swiotlbAdjustSize,
  swiotlbAreaSizing,
  swiotlbParamSlabs,
} from "./sizing.js";
export { noPoolDmaOps, swiotlbDmaOps } from "./swiotlb-ops.js";
