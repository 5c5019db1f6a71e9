/**
 * The allocator work counters, named after the /proc/vmstat events they mirror. The allocator mutates one
 * object in place (no allocation per event); `snapshotWork` and `workSince` give what a caller caused.
 */
export interface AllocatorWork {
  /** allocstall: direct reclaim entries (try_to_free_pages from the allocating context). */
  allocStalls: number;
  /** pgscan_direct / pgsteal_direct: LRU pages scanned and reclaimed by direct reclaim. */
  reclaimScanned: number;
  reclaimed: number;
  /** pgscan_kswapd / pgsteal_kswapd: the same by kswapd (woken on the slow path, run to its high watermark). */
  kswapdScanned: number;
  kswapdReclaimed: number;
  /** slabs_scanned: objects the shrinkers were asked to scan; slab pages they freed. */
  slabObjectsScanned: number;
  slabPagesReclaimed: number;
  /** compact_stall: direct compaction attempts (not the skipped ones); compact_fail / compact_success. */
  compactionStalls: number;
  compactionFailures: number;
  compactionSuccesses: number;
  /** Attempts compaction_deferred() turned away (the kernel counts these as stalls too). */
  compactionDeferred: number;
  /** Attempts compaction_suitable() refused (too few free pages, or extfrag index ≤ 500). */
  compactionSkipped: number;
  /** compact_migrate_scanned / compact_free_scanned / compact_isolated. */
  compactionMigrateScanned: number;
  compactionFreeScanned: number;
  compactionIsolated: number;
  /** pgmigrate_success / pgmigrate_fail. */
  compactionMigrated: number;
  compactionMigrateFailed: number;
  /** Allocations that took a block from another migratetype's free list (mm_page_alloc_extfrag). */
  allocFallbacks: number;
  /** Pageblocks whose migratetype a fallback claimed (set_pageblock_migratetype / change_pageblock_range). */
  pageblocksStolen: number;
  /** Allocations that entered __alloc_pages_slowpath. */
  slowpathEntries: number;
  /** Slow-path failures of non-costly orders where the kernel would have invoked the OOM killer. */
  oomWouldKill: number;
}

export type AllocatorWorkKey = keyof AllocatorWork;

export function emptyWork(): AllocatorWork {
  return {
    allocStalls: 0,
    reclaimScanned: 0,
    reclaimed: 0,
    kswapdScanned: 0,
    kswapdReclaimed: 0,
    slabObjectsScanned: 0,
    slabPagesReclaimed: 0,
    compactionStalls: 0,
    compactionFailures: 0,
    compactionSuccesses: 0,
    compactionDeferred: 0,
    compactionSkipped: 0,
    compactionMigrateScanned: 0,
    compactionFreeScanned: 0,
    compactionIsolated: 0,
    compactionMigrated: 0,
    compactionMigrateFailed: 0,
    allocFallbacks: 0,
    pageblocksStolen: 0,
    slowpathEntries: 0,
    oomWouldKill: 0,
  };
}

/** A copy of the counters now. */
export function snapshotWork(w: AllocatorWork): AllocatorWork {
  return { ...w };
}

/** What happened between `before` and `now`. */
export function workSince(now: AllocatorWork, before: AllocatorWork): AllocatorWork {
  const out = emptyWork();
  for (const k of Object.keys(out) as AllocatorWorkKey[]) out[k] = now[k] - before[k];
  return out;
}
