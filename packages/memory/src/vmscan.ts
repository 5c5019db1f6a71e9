/** SWAP_CLUSTER_MAX: direct reclaim's nr_to_reclaim, and the LRU batch size. */
export const SWAP_CLUSTER_MAX = 32;
/** DEF_PRIORITY: the first pass scans lru_size >> 12; each failing pass halves the shift. */
export const DEF_PRIORITY = 12;
/** DEFAULT_SEEKS: the shrinker cost weight do_shrink_slab divides by. */
export const DEFAULT_SEEKS = 2;
/** MAX_RECLAIM_RETRIES: should_reclaim_retry gives up after 16 rounds without progress. */
export const MAX_RECLAIM_RETRIES = 16;

/**
 * Who owns movable pages: the one reverse map the model keeps. Compaction asks it whether a page can be
 * isolated (isolate_lru_page fails on a pinned page) and tells it where the page went, after the bytes
 * moved (migrate_pages → move_to_new_page, remove_migration_ptes: every reference follows the page).
 * Reclaim asks it to drop clean page-cache pages from the cold end of its LRU (shrink_inactive_list).
 */
export interface MovablePageOwner {
  /** Whether the order-0 page at `pfn` can be isolated for migration now. */
  isolatable(pfn: number): boolean;
  /** The page and every reference to it moved from `from` to `to`. */
  migrated(from: number, to: number): void;
  /** Pages on the owner's file LRU that reclaim could drop. */
  lruPages(): number;
  /**
   * Scans up to `nrToScan` LRU pages from the cold end, freeing the clean ones through the allocator.
   * Returns [scanned, reclaimed] in `out`.
   */
  shrinkLru(nrToScan: number, out: Float64Array): void;
}

/** A slab shrinker (struct shrinker): reclaimable objects and a scan that frees slab pages. */
export interface Shrinker {
  /** count_objects: freeable objects. */
  count(): number;
  /** scan_objects: scans `nr` objects; returns the slab pages it freed. */
  scan(nr: number): number;
}

/** do_shrink_slab's scan target for one shrinker at `priority` (shrinker->seeks = DEFAULT_SEEKS). */
export function shrinkerDelta(freeable: number, priority: number): number {
  return Math.floor(((freeable >> priority) * 4) / DEFAULT_SEEKS);
}
