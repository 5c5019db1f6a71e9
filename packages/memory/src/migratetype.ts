import { PAGEBLOCK_ORDER } from "./constants.js";

/**
 * The migratetypes of include/linux/mmzone.h that the model gives meaning to, with the kernel's numbers
 * (MIGRATE_UNMOVABLE 0, MIGRATE_MOVABLE 1, MIGRATE_RECLAIMABLE 2 = MIGRATE_PCPTYPES − 1). HIGHATOMIC, CMA
 * and ISOLATE are not modelled: no call site on the modelled paths reserves high-atomic blocks, the guest
 * has no CMA area, and nothing isolates pageblocks (memory hot-remove, alloc_contig_range).
 */
export const Migratetype = {
  Unmovable: 0,
  Movable: 1,
  Reclaimable: 2,
} as const;
export type Migratetype = (typeof Migratetype)[keyof typeof Migratetype];

/** MIGRATE_PCPTYPES: the types with their own free lists here. */
export const MIGRATE_TYPES = 3;

/** The names /proc/pagetypeinfo prints (migratetype_names[]). */
export const MIGRATETYPE_NAMES: readonly string[] = ["Unmovable", "Movable", "Reclaimable"];

/**
 * mm/page_alloc.c fallbacks[]: which other types' free lists an allocation may take from, in order, when
 * its own lists are empty (Linux 4.x–6.x; the MIGRATE_TYPES terminator left out).
 */
export const FALLBACKS: readonly (readonly Migratetype[])[] = [
  [Migratetype.Reclaimable, Migratetype.Movable],
  [Migratetype.Reclaimable, Migratetype.Unmovable],
  [Migratetype.Unmovable, Migratetype.Movable],
];

/**
 * can_steal_fallback(): whether an allocation of `startType` taking an `order` block from another type's
 * list may claim the rest of that pageblock. Whole pageblocks always; otherwise at least half a
 * pageblock's order, or any unmovable/reclaimable request (those would pollute more blocks if they did
 * not claim).
 */
export function canStealFallback(order: number, startType: Migratetype): boolean {
  if (order >= PAGEBLOCK_ORDER) return true;
  return (
    order >= PAGEBLOCK_ORDER / 2 ||
    startType === Migratetype.Reclaimable ||
    startType === Migratetype.Unmovable
  );
}
