export type { BounceStats, SwiotlbBounceOptions, SyncForDeviceRule } from "./bounce.js";
export { SwiotlbBounce } from "./bounce.js";
export type { BounceMemory, PhysAccess, SwiotlbDevice } from "./bounce-types.js";
export {
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_NONE,
  DMA_TO_DEVICE,
  DmaDirection,
} from "./bounce-types.js";
export type { SwiotlbErrorCode, SwiotlbFault } from "./errors.js";
export { SWIOTLB_ERRNO, SwiotlbError } from "./errors.js";
export type {
  FindSlotsOptions,
  IoTlbMapping,
  IoTlbMemOptions,
  IoTlbStats,
  SearchTermination,
} from "./io-tlb.js";
export { INVALID_PHYS_ADDR, IoTlbMem } from "./io-tlb.js";
export type { Clock, RateLimitOptions } from "./ratelimit.js";
export {
  DEFAULT_RATELIMIT_BURST,
  DEFAULT_RATELIMIT_INTERVAL_MS,
  monotonicCounterClock,
  RateLimit,
} from "./ratelimit.js";
export type { AreaSizing, AreaSizingRules, IvmSwiotlbSizingInput } from "./sizing.js";
export {
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
