/** COMPACT_MAX_DEFER_SHIFT: compaction is skipped for at most 1 << 6 = 64 attempts after failures. */
export const COMPACT_MAX_DEFER_SHIFT = 6;

/** enum compact_priority: lower is harder. */
export const CompactPriority = {
  /** MIN_COMPACT_PRIORITY: ignore the pageblock-suitability rules of the free scanner. */
  SyncFull: 0,
  /** DEF_COMPACT_PRIORITY: synchronous migration, every pageblock a migration source. */
  SyncLight: 1,
  /** INIT_COMPACT_PRIORITY: async; direct compaction migrates only from pageblocks of the request's type. */
  Async: 2,
} as const;
export type CompactPriority = (typeof CompactPriority)[keyof typeof CompactPriority];

/** enum compact_result, the values the model produces. */
export type CompactResult = "skipped" | "deferred" | "continue" | "complete" | "success";

/**
 * The zone's deferral state (mm/compaction.c defer_compaction / compaction_deferred /
 * compaction_defer_reset): after a synchronous run fails, the next 2^shift attempts at that order or
 * above are skipped, the shift growing to COMPACT_MAX_DEFER_SHIFT with each failure.
 */
export class CompactionDeferral {
  considered = 0;
  deferShift = 0;
  /** compact_order_failed: orders below it are never deferred. */
  orderFailed = 64;

  /** defer_compaction(). */
  defer(order: number): void {
    this.considered = 0;
    this.deferShift = Math.min(this.deferShift + 1, COMPACT_MAX_DEFER_SHIFT);
    if (order < this.orderFailed) this.orderFailed = order;
  }

  /** compaction_deferred(): true when this attempt should be skipped. Counts the attempt. */
  deferred(order: number): boolean {
    if (order < this.orderFailed) return false;
    const limit = 1 << this.deferShift;
    if (++this.considered >= limit) {
      this.considered = limit;
      return false;
    }
    return true;
  }

  /** compaction_defer_reset(): after compaction freed a suitable block (and an allocation took it). */
  reset(order: number, allocSuccess: boolean): void {
    if (allocSuccess) {
      this.considered = 0;
      this.deferShift = 0;
    }
    if (order >= this.orderFailed) this.orderFailed = order + 1;
  }
}

/** compact_gap(): free pages compaction wants beyond the watermark (twice the request, for migration targets). */
export function compactGap(order: number): number {
  return 2 << order;
}

/** sysctl_extfrag_threshold's default: below it a costly failure is for lack of memory, not compaction's job. */
export const EXTFRAG_THRESHOLD = 500;

/** COMPACT_CLUSTER_MAX = SWAP_CLUSTER_MAX: pages isolated per migration batch. */
export const COMPACT_CLUSTER_MAX = 32;
