// The lab's one error type, re-exported by the lowest layer so every layer above can name it.
export { ERRNO, type Errno, IvmError, type IvmLayer, isIvmError } from "@ivm/errors";
export { BackingCache, insidePage } from "./backing-cache.js";
export { BuddyAllocator, type BuddyBlock, Gfp, gfpMigratetype, type PageAllocOptions } from "./buddy.js";
export {
  COMPACT_MAX_DEFER_SHIFT,
  CompactionDeferral,
  CompactPriority,
  type CompactResult,
  compactGap,
  EXTFRAG_THRESHOLD,
} from "./compaction.js";
export {
  formatKernelVa,
  getOrder,
  IOREMAP_MAX_ORDER,
  MAX_ORDER,
  PAGE_ALLOC_COSTLY_ORDER,
  PAGE_OFFSET,
  PAGE_SHIFT,
  PAGE_SIZE,
  PAGEBLOCK_ORDER,
  PTRS_PER_TABLE,
  pfnUp,
  VMALLOC_END,
  VMALLOC_START,
} from "./constants.js";
export {
  type FaultKind,
  MemoryError,
  type MemoryErrorCode,
  type MemoryErrorReason,
  MemoryFault,
} from "./errors.js";
export { type AllocSite, FaultInjector } from "./fault-injector.js";
export { extfragIndex, unusableIndex } from "./fragmentation.js";
export { GuestMemory, type GuestMemoryOptions, type PageAttrChange, type VtomMode } from "./guest-memory.js";
export { checkMemoryInvariants, type InvariantViolation } from "./invariants.js";
export {
  KMALLOC_MAX_CACHE_SIZE,
  KMALLOC_SIZES,
  Kmalloc,
  type KmallocOptions,
  type KmallocTagStats,
  kmallocSizeClass,
} from "./kmalloc.js";
export {
  canStealFallback,
  FALLBACKS,
  MIGRATE_TYPES,
  MIGRATETYPE_NAMES,
  Migratetype,
} from "./migratetype.js";
export { Mmu, type Translation } from "./mmu.js";
export { makePte, PageTables, Pte, pteFlags, pteFrame, TABLE_LEVELS, type TableLevel } from "./page-table.js";
export { formatBuddyinfo, formatPagetypeinfo } from "./pagetypeinfo.js";
export { PageFlag, PhysicalMemory, pfnOf } from "./phys.js";
export { PrefixViews } from "./prefix-views.js";
export { TagRegistry } from "./tags.js";
export {
  ageMemory,
  UPTIME_LEVELS,
  UPTIME_TAGS,
  type UptimeLevel,
  type UptimeParams,
  type UptimeReport,
} from "./uptime.js";
export { type VmArea, type VmAreaKind, Vmalloc, type VmallocOptions, type VmapOptions } from "./vmalloc.js";
export {
  DEF_PRIORITY,
  MAX_RECLAIM_RETRIES,
  type MovablePageOwner,
  type Shrinker,
  SWAP_CLUSTER_MAX,
} from "./vmscan.js";
export { type AllocatorWork, type AllocatorWorkKey, emptyWork, snapshotWork, workSince } from "./vmstat.js";
export { minFreeKbytes, WATERMARK_SCALE_FACTOR, type ZoneWatermarks, zoneWatermarks } from "./watermark.js";
