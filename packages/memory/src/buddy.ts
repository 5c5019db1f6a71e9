import {
  COMPACT_CLUSTER_MAX,
  CompactionDeferral,
  CompactPriority,
  type CompactResult,
  compactGap,
  EXTFRAG_THRESHOLD,
} from "./compaction.js";
import { MAX_ORDER, PAGE_ALLOC_COSTLY_ORDER, PAGEBLOCK_ORDER } from "./constants.js";
import { invalid, MemoryError } from "./errors.js";
import type { FaultInjector, FaultSite } from "./fault-injector.js";
import { extfragIndex } from "./fragmentation.js";
import { canStealFallback, FALLBACKS, MIGRATE_TYPES, Migratetype } from "./migratetype.js";
import { PageFlag, type PhysicalMemory } from "./phys.js";
import {
  DEF_PRIORITY,
  MAX_RECLAIM_RETRIES,
  type MovablePageOwner,
  type Shrinker,
  SWAP_CLUSTER_MAX,
  shrinkerDelta,
} from "./vmscan.js";
import { type AllocatorWork, emptyWork } from "./vmstat.js";
import { type ZoneWatermarks, zoneWatermarks } from "./watermark.js";

/**
 * The gfp bits the model gives meaning to. No bit set is GFP_KERNEL: unmovable, may sleep, may reclaim
 * and compact directly, wakes kswapd.
 */
export const Gfp = {
  /** __GFP_ZERO: the block reads as zeros. */
  Zero: 1,
  /** __GFP_NORETRY: one light compaction and reclaim pass, then fail; never the OOM killer. */
  NoRetry: 2,
  /** __GFP_NOWARN: a failure is not reported as an allocation-failure warning. */
  NoWarn: 4,
  /** __GFP_MOVABLE: the pages can be migrated (page cache, anonymous memory): MIGRATE_MOVABLE. */
  Movable: 8,
  /** __GFP_RECLAIMABLE: slab the shrinkers can free (dentries, inodes): MIGRATE_RECLAIMABLE. */
  Reclaimable: 16,
  /** __GFP_RETRY_MAYFAIL: retry reclaim and compaction (escalating priority) before failing a costly order. */
  RetryMayFail: 32,
  /** __GFP_COMP: a compound page; recorded, no effect on the allocator's paths. */
  Comp: 64,
  /** No __GFP_DIRECT_RECLAIM (GFP_ATOMIC, GFP_NOWAIT): the slow path may only wake kswapd. */
  Atomic: 128,
} as const;

/** gfp_migratetype(). */
export function gfpMigratetype(gfp: number): Migratetype {
  if (gfp & Gfp.Movable) return Migratetype.Movable;
  if (gfp & Gfp.Reclaimable) return Migratetype.Reclaimable;
  return Migratetype.Unmovable;
}

export interface PageAllocOptions {
  /** Owner tag recorded on the block (for per-owner counters and the memory picture). */
  readonly tag: string;
  /** Bitwise OR of `Gfp` values. */
  readonly gfp?: number;
}

export interface BuddyBlock {
  readonly head: number;
  readonly order: number;
  readonly free: boolean;
}

const NIL = -1;

function badOrder(order: number): MemoryError {
  return invalid("order", `order must be 0..${MAX_ORDER - 1}, got ${order}`);
}
/** The page flags that forbid freeing a page: leaked, or still host-visible. */
const PINNED = PageFlag.Leaked | PageFlag.HostVisible;
/** PINNED in each byte of a 32-bit word of page flags. */
const PINNED_WORD = PINNED * 0x01010101;
const PB_PAGES = 1 << PAGEBLOCK_ORDER;
const NO_WATERMARKS: ZoneWatermarks = { min: 0, low: 0, high: 0 };

/**
 * The binary buddy allocator of mm/page_alloc.c for one zone: orders 0..10, free lists per (order,
 * migratetype) (LIFO, as list_add to the head), split on allocation (expand) and merge on free
 * (__free_one_page); 512-page pageblocks with a migratetype each, the fallbacks[] order and pageblock
 * stealing; zone watermarks; and __alloc_pages_slowpath with kswapd, direct compaction (mm/compaction.c,
 * with deferral) and direct reclaim (mm/vmscan.c) of the page cache and slab that owners register.
 *
 * State lives in the PhysicalMemory typed arrays plus link and per-pageblock arrays; the fast path is
 * O(order) and allocates nothing.
 */
export class BuddyAllocator {
  readonly #phys: PhysicalMemory;
  readonly #flags: Uint8Array;
  /** The same page flags, four pages per element (blocks of order ≥ 2 are four-page aligned). */
  readonly #flagWords: Uint32Array;
  readonly #order: Uint8Array;
  readonly #owner: Uint16Array;
  readonly #pages: number;
  /**
   * Free-list links, (next, prev) interleaved. Top-order heads sit on 1024-page boundaries and have their
   * own small array, so building the zone at boot writes 8 B per 1024 pages; the lower orders' links are
   * one dense array (8 B per page) whose memory the system provides, zeroed, only where it is first
   * written. (Chunks made on first use would save its address space too, but cost a third more per
   * alloc/free.)
   */
  readonly #topLinks: Int32Array;
  readonly #links: Int32Array;
  /** Free-list heads per (order, migratetype): index order * MIGRATE_TYPES + type. */
  readonly #head = new Int32Array(MAX_ORDER * MIGRATE_TYPES).fill(NIL);
  /**
   * Free blocks per (order, migratetype), same index as #head (nr_free of each free_area's list); an
   * order's total is their sum, so a list operation updates one counter, not two.
   */
  readonly #countMt = new Int32Array(MAX_ORDER * MIGRATE_TYPES);
  /** Scratch for buddyinfo-shaped arguments (extfrag_index) on the slow path. */
  readonly #countScratch = new Int32Array(MAX_ORDER);
  /**
   * Migratetype of a block head: the free list a free block below the top order sits on, or the type an
   * allocated block was requested with. A free top-order block sits on its first pageblock's type.
   */
  readonly #mt: Uint8Array;
  /** Per-pageblock migratetype (the pageblock_flags bits); memmap_init makes every block movable. */
  readonly #pbType: Uint8Array;
  readonly #pbCount = new Int32Array(MIGRATE_TYPES);
  readonly watermarks: ZoneWatermarks;
  readonly deferral: CompactionDeferral = new CompactionDeferral();
  /** The allocator work done so far (vmstat events); see `AllocatorWork`. */
  readonly work: AllocatorWork = emptyWork();
  /** Movable-page owners by tag id: the only pages compaction migrates and reclaim drops. */
  readonly #owners: (MovablePageOwner | undefined)[] = [];
  readonly #ownerList: MovablePageOwner[] = [];
  readonly #shrinkers: Shrinker[] = [];
  /** Compaction's isolated pages: migration sources, then free targets (COMPACT_CLUSTER_MAX each). */
  readonly #migrateList = new Int32Array(COMPACT_CLUSTER_MAX);
  #freeList = new Int32Array(PB_PAGES);
  readonly #lruOut = new Float64Array(2);
  readonly #faults: FaultSite | undefined;
  #freePages = 0;
  #leaked = 0;
  /**
   * 1 for a page the kernel freed while host-visible (freeHostVisible); see isFreedWhileVisible. Made on
   * the first such free, so a guest that never does one pays nothing.
   */
  #freedVisible: Uint8Array | undefined;
  #freedVisibleCount = 0;
  /**
   * Allocated blocks per (owner tag id, order), flat at tag × MAX_ORDER + order, grown as tags appear;
   * `#tagsSeen` lists the tags that ever allocated, in that order (no per-tag object, no sparse array).
   */
  #tagCounts = new Int32Array(16 * MAX_ORDER);
  #tagSeen = new Uint8Array(16);
  readonly #tagsSeen: number[] = [];
  /** The last tag name seen and its id: callers reuse a handful of tags, so most lookups stop here. */
  #lastTag = "";
  #lastTagId = -1;
  readonly failuresByOrder: Float64Array = new Float64Array(MAX_ORDER);
  /** Failures that would have printed the page allocation failure warning (no __GFP_NOWARN). */
  warnings = 0;

  /**
   * `watermarks`: the zone's marks; "kernel" computes them as __setup_per_zone_wmarks does for this zone
   * size (what GuestMemory uses). The default for a bare allocator is none (all zero), so that a test-sized
   * zone of a few pages can be filled to the last page.
   */
  constructor(
    phys: PhysicalMemory,
    faults?: FaultInjector,
    watermarks: ZoneWatermarks | "kernel" = NO_WATERMARKS,
  ) {
    if (phys.pages > 2 ** 31 - 1) throw invalid("memory-size", "guest RAM must be below 8 TiB");
    this.#phys = phys;
    this.#flags = phys.flags;
    this.#flagWords = new Uint32Array(phys.flags.buffer, phys.flags.byteOffset, phys.pages >>> 2);
    this.#order = phys.order;
    this.#owner = phys.owner;
    this.#pages = phys.pages;
    this.#faults = faults?.site("pages");
    this.#topLinks = new Int32Array(2 * ((phys.pages >>> (MAX_ORDER - 1)) + 1));
    this.#links = new Int32Array(2 * phys.pages);
    this.#mt = new Uint8Array(phys.pages);
    const blocks = Math.ceil(phys.pages / PB_PAGES);
    this.#pbType = new Uint8Array(blocks).fill(Migratetype.Movable);
    this.#pbCount[Migratetype.Movable] = blocks;
    this.watermarks = watermarks === "kernel" ? zoneWatermarks(phys.pages) : watermarks;
    // memblock_free_all: hand every page to the allocator in the largest naturally aligned blocks.
    let pfn = 0;
    while (pfn < phys.pages) {
      let order = MAX_ORDER - 1;
      while (order > 0 && ((pfn & ((1 << order) - 1)) !== 0 || pfn + (1 << order) > phys.pages)) order--;
      this.#pushFree(pfn, order, Migratetype.Movable);
      pfn += 1 << order;
    }
  }

  get totalPages(): number {
    return this.#phys.pages;
  }

  get nrFreePages(): number {
    return this.#freePages;
  }

  get leakedPages(): number {
    return this.#leaked;
  }

  /** Free blocks per order, as one zone's line of /proc/buddyinfo. */
  buddyinfo(): number[] {
    const out: number[] = [];
    for (let o = 0; o < MAX_ORDER; o++) out.push(this.#blocks(o));
    return out;
  }

  /** Free blocks of `order`, every migratetype (the zone's free_area[order].nr_free). */
  #blocks(order: number): number {
    let n = 0;
    for (let at = order * MIGRATE_TYPES; at < (order + 1) * MIGRATE_TYPES; at++) n += this.#countMt[at]!;
    return n;
  }

  /** Allocated pages per owner tag, per order (blocks, not pages). */
  blocksByOwner(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const id of this.#tagsSeen) {
      out.set(
        this.#phys.tags.name(id),
        Array.from(this.#tagCounts.subarray(id * MAX_ORDER, (id + 1) * MAX_ORDER)),
      );
    }
    return out;
  }

  /** blocksByOwner().get(tag) for one tag (allocated blocks per order 0..10), or undefined if never seen. */
  blocksOwnedBy(tag: string): number[] | undefined {
    const id = this.#phys.tags.lookup(tag);
    if (id === undefined || id >= this.#tagSeen.length || this.#tagSeen[id] === 0) return undefined;
    return Array.from(this.#tagCounts.subarray(id * MAX_ORDER, (id + 1) * MAX_ORDER));
  }

  /** Pages currently held by an owner tag. */
  pagesOwnedBy(tag: string): number {
    const id = this.#tagId(tag);
    if (id >= this.#tagSeen.length || this.#tagSeen[id] === 0) return 0;
    let pages = 0;
    for (let o = 0; o < MAX_ORDER; o++) pages += this.#tagCounts[id * MAX_ORDER + o]! * (1 << o);
    return pages;
  }

  /**
   * alloc_pages(): a block of 2^order pages of the migratetype the gfp bits say, or null. The fast path
   * (get_page_from_freelist at the low watermark) first; then __alloc_pages_slowpath, whose work shows in
   * `work`.
   */
  allocPages(order: number, options: PageAllocOptions): number | null {
    // (The hot path is kept small: V8 inlines a caller's callees only up to a bytecode budget, and
    // rare work — errors, failures, the slow path — lives in functions of its own.)
    if (!(order >= 0 && order < MAX_ORDER && (order | 0) === order)) throw badOrder(order);
    const gfp = options.gfp ?? 0;
    const mt = gfpMigratetype(gfp);
    // should_fail_alloc_page runs in prepare_alloc_pages, before any free list is looked at.
    const pfn = this.#faults?.shouldFail() ? NIL : this.#allocBlock(order, mt, gfp);
    if (pfn === NIL) return this.#allocFailed(order, gfp);
    this.#markAllocated(pfn, order, this.#tagId(options.tag), mt);
    if (gfp & Gfp.Zero) this.#phys.zeroPages(pfn, 1 << order);
    return pfn;
  }

  /** get_page_from_freelist() at the low watermark, then __alloc_pages_slowpath. */
  #allocBlock(order: number, mt: Migratetype, gfp: number): number {
    const pfn = this.#getPageFromFreelist(order, mt, this.watermarks.low);
    return pfn === NIL ? this.#slowpathEntries(order, mt, gfp) : pfn;
  }

  /** A failed request's counters (and the warning it would print); the null allocPages returns. */
  #allocFailed(order: number, gfp: number): null {
    this.failuresByOrder[order]!++;
    if ((gfp & Gfp.NoWarn) === 0) this.warnings++;
    return null;
  }

  /**
   * `count` order-0 pages into `out[at..]`, exactly as that many allocPages(0, options) calls one after the
   * other would take them (same pages, counters, faults and zeroing), stopping at the first that fails;
   * returns how many it got. What vm_area_alloc_pages asks for, without an options object per page.
   */
  allocPagesBulk(count: number, options: PageAllocOptions, out: Float64Array | number[], at = 0): number {
    const gfp = options.gfp ?? 0;
    const mt = gfpMigratetype(gfp);
    const tag = this.#tagId(options.tag);
    for (let i = 0; i < count; i++) {
      const pfn = this.#faults?.shouldFail() ? NIL : this.#allocBlock(0, mt, gfp);
      if (pfn === NIL) {
        this.#allocFailed(0, gfp);
        return i;
      }
      this.#markAllocated(pfn, 0, tag, mt);
      if (gfp & Gfp.Zero) this.#phys.zeroPage(pfn);
      out[at + i] = pfn;
    }
    return count;
  }

  /** The migratetype of the pageblock holding `pfn` (get_pageblock_migratetype). */
  pageblockType(pfn: number): Migratetype {
    return this.#pbType[pfn >>> PAGEBLOCK_ORDER]! as Migratetype;
  }

  /** Pageblocks per migratetype ("Number of blocks type" in /proc/pagetypeinfo). */
  pageblockCounts(): number[] {
    return Array.from(this.#pbCount);
  }

  /** Free blocks per order of one migratetype (a line of /proc/pagetypeinfo). */
  pagetypeinfo(mt: Migratetype): number[] {
    const out: number[] = [];
    for (let o = 0; o < MAX_ORDER; o++) out.push(this.#countMt[o * MIGRATE_TYPES + mt]!);
    return out;
  }

  /** The migratetype an allocated block was requested with, or the list a free block sits on. */
  blockType(head: number): Migratetype {
    if ((this.#flags[head]! & PageFlag.Free) !== 0 && this.#order[head] === MAX_ORDER - 1) {
      return this.pageblockType(head);
    }
    return this.#mt[head]! as Migratetype;
  }

  /** Makes compaction and reclaim ask `owner` about the order-0 pages allocated with `tag`. */
  registerMovableOwner(tag: string, owner: MovablePageOwner): void {
    this.#owners[this.#tagId(tag)] = owner;
    if (!this.#ownerList.includes(owner)) this.#ownerList.push(owner);
  }

  /** register_shrinker(). */
  registerShrinker(shrinker: Shrinker): void {
    this.#shrinkers.push(shrinker);
  }

  /** Pages reclaim could free now (zone_reclaimable_pages: file LRU plus reclaimable slab). */
  reclaimablePages(): number {
    let n = 0;
    for (const o of this.#ownerList) n += o.lruPages();
    for (const s of this.#shrinkers) n += s.count();
    return n;
  }

  /**
   * __zone_watermark_ok(): after the request, free pages stay above the mark, and for order > 0 some
   * free list of order ≥ `order` of an unmovable, movable or reclaimable type is non-empty.
   */
  watermarkOk(order: number, mark: number): boolean {
    const free = this.#freePages - ((1 << order) - 1);
    if (free <= mark) return false;
    if (order === 0) return true;
    for (let o = order; o < MAX_ORDER; o++) if (this.#blocks(o) > 0) return true;
    return false;
  }

  /** get_page_from_freelist() for the one zone: the watermark `mark` (pages), then rmqueue. */
  #getPageFromFreelist(order: number, mt: Migratetype, mark: number): number {
    if (!this.watermarkOk(order, mark)) return NIL;
    return this.#rmqueue(order, mt);
  }

  /** __rmqueue(): the request's own lists, then a fallback steal and the own lists again. */
  #rmqueue(order: number, mt: Migratetype): number {
    let pfn = this.#rmqueueSmallest(order, mt);
    if (pfn === NIL && this.#rmqueueFallback(order, mt)) pfn = this.#rmqueueSmallest(order, mt);
    return pfn;
  }

  /** __rmqueue_smallest(): the smallest block of `mt` that fits, split by expand(). */
  #rmqueueSmallest(order: number, mt: Migratetype): number {
    const head = this.#head;
    for (let found = order; found < MAX_ORDER; found++) {
      const pfn = head[found * MIGRATE_TYPES + mt]!;
      if (pfn === NIL) continue;
      this.#unlinkFree(pfn, found);
      // expand(): give back the upper halves, largest first, to the same type's lists.
      while (found > order) {
        found--;
        this.#pushFree(pfn + (1 << found), found, mt);
      }
      return pfn;
    }
    return NIL;
  }

  /**
   * find_suitable_fallback(): the first type in fallbacks[mt] with a free block of `order`, or −1; with
   * `onlyStealable`, only when can_steal_fallback allows claiming. `this.#canSteal` carries that answer.
   */
  #findSuitableFallback(order: number, mt: Migratetype, onlyStealable: boolean): number {
    if (this.#blocks(order) === 0) return -1;
    this.#canSteal = false;
    for (const fb of FALLBACKS[mt]!) {
      if (this.#head[order * MIGRATE_TYPES + fb] === NIL) continue;
      if (canStealFallback(order, mt)) this.#canSteal = true;
      if (!onlyStealable || this.#canSteal) return fb;
    }
    return -1;
  }

  #canSteal = false;

  /**
   * __rmqueue_fallback(): the largest block of a fallback type (to steal as much of one pageblock as
   * possible), except that a movable request that may not claim takes the smallest instead; then
   * steal_suitable_fallback() moves it (and maybe its whole pageblock) to the request's type.
   */
  #rmqueueFallback(order: number, mt: Migratetype): boolean {
    let current = MAX_ORDER - 1;
    let fb = -1;
    for (; current >= order; current--) {
      fb = this.#findSuitableFallback(current, mt, false);
      if (fb === -1) continue;
      if (!this.#canSteal && mt === Migratetype.Movable && current > order) {
        // find_smallest
        for (current = order; current < MAX_ORDER; current++) {
          fb = this.#findSuitableFallback(current, mt, false);
          if (fb !== -1) break;
        }
      }
      break;
    }
    if (fb === -1) return false;
    const pfn = this.#head[current * MIGRATE_TYPES + fb]!;
    this.work.allocFallbacks++;
    this.#stealSuitableFallback(pfn, current, mt, this.#canSteal);
    return true;
  }

  /**
   * steal_suitable_fallback() (5.x): a block of pageblock order or more changes its pageblocks' type
   * outright; otherwise, when claiming is allowed, every free page of the pageblock moves to the new type
   * (move_freepages_block) and the pageblock itself changes when at least half of it is free or "alike"
   * (movable pages for a movable request; for an unmovable or reclaimable request taking from a movable
   * block, the pages that are not movable). The block itself always moves to the request's list.
   */
  #stealSuitableFallback(pfn: number, order: number, startType: Migratetype, wholeBlock: boolean): void {
    if (order >= PAGEBLOCK_ORDER) {
      this.#unlinkFree(pfn, order);
      for (let b = pfn >>> PAGEBLOCK_ORDER; b < (pfn + (1 << order)) >>> PAGEBLOCK_ORDER; b++) {
        if (this.#setPageblockType(b, startType)) this.work.pageblocksStolen++;
      }
      this.#pushFree(pfn, order, startType);
      return;
    }
    if (wholeBlock) {
      const oldType = this.pageblockType(pfn);
      const block = pfn >>> PAGEBLOCK_ORDER;
      const [free, movable] = this.#moveFreepagesBlock(block, startType);
      const alike =
        startType === Migratetype.Movable
          ? movable
          : oldType === Migratetype.Movable
            ? PB_PAGES - (free + movable)
            : 0;
      if (free > 0 && free + alike >= PB_PAGES >> 1) {
        if (this.#setPageblockType(block, startType)) this.work.pageblocksStolen++;
      }
      if (free > 0) return; // the block moved with the rest of the pageblock's free pages
    }
    // single_page: move_to_free_list
    this.#unlinkFree(pfn, order);
    this.#pushFree(pfn, order, startType);
  }

  /**
   * move_freepages_block(): moves every free block of pageblock `block` to `mt`'s lists; returns the free
   * pages moved and the movable (LRU) pages counted on the way.
   */
  #moveFreepagesBlock(block: number, mt: Migratetype): [number, number] {
    const start = block << PAGEBLOCK_ORDER;
    const end = Math.min(start + PB_PAGES, this.#pages);
    let free = 0;
    let movable = 0;
    for (let p = start; p < end; ) {
      const f = this.#flags[p]!;
      if (f & PageFlag.Free) {
        const o = this.#order[p]!;
        this.#unlinkFree(p, o);
        this.#pushFree(p, o, mt);
        free += 1 << o;
        p += 1 << o;
      } else if (f & PageFlag.Allocated) {
        const o = this.#order[p]!;
        if (this.#mt[p] === Migratetype.Movable) movable += 1 << o;
        p += 1 << o;
      } else p++;
    }
    return [free, movable];
  }

  /** set_pageblock_migratetype(); returns whether the type changed. */
  #setPageblockType(block: number, mt: Migratetype): boolean {
    const old = this.#pbType[block]!;
    if (old === mt) return false;
    this.#pbCount[old]!--;
    this.#pbCount[mt]!++;
    this.#pbType[block] = mt;
    return true;
  }

  /**
   * __alloc_pages_slowpath() (mm/page_alloc.c, 5.15) for the one zone: wake kswapd; retry at the min
   * watermark; for a costly order (or a non-movable order > 0) async direct compaction first, after which
   * a costly __GFP_NORETRY request gives up if compaction was skipped or deferred; then direct reclaim and
   * direct compaction (sync light); then __GFP_NORETRY fails, a costly order without __GFP_RETRY_MAYFAIL
   * fails, and the rest retry while should_reclaim_retry / should_compact_retry allow. Where the kernel
   * would invoke the OOM killer (non-costly orders) the model fails and counts `oomWouldKill`.
   */
  #slowpathEntries(order: number, mt: Migratetype, gfp: number): number {
    this.work.slowpathEntries++;
    const costly = order > PAGE_ALLOC_COSTLY_ORDER;
    const canDirectReclaim = (gfp & Gfp.Atomic) === 0;
    // wake_all_kswapds: kswapd runs (here at once, to completion) when the zone is below its low mark.
    if (!this.watermarkOk(0, this.watermarks.low)) this.#kswapd();
    let pfn = this.#getPageFromFreelist(order, mt, this.watermarks.min);
    if (pfn !== NIL) return pfn;
    if (!canDirectReclaim) return NIL;
    let priority: CompactPriority = CompactPriority.SyncLight;
    if (costly || (order > 0 && mt !== Migratetype.Movable)) {
      const result = this.#directCompact(order, mt, CompactPriority.Async);
      if (this.#compacted !== NIL) return this.#compacted;
      if (costly && gfp & Gfp.NoRetry) {
        if (result === "skipped" || result === "deferred") return NIL;
        priority = CompactPriority.Async;
      }
    }
    let noProgressLoops = 0;
    let compactionRetries = 0;
    for (;;) {
      pfn = this.#getPageFromFreelist(order, mt, this.watermarks.min);
      if (pfn !== NIL) return pfn;
      const reclaimed = this.#directReclaim(order);
      pfn = this.#getPageFromFreelist(order, mt, this.watermarks.min);
      if (pfn !== NIL) return pfn;
      const result = this.#directCompact(order, mt, priority);
      if (this.#compacted !== NIL) return this.#compacted;
      if (gfp & Gfp.NoRetry) return NIL;
      if (costly && (gfp & Gfp.RetryMayFail) === 0) return NIL;
      // should_reclaim_retry()
      if (reclaimed > 0 && !costly) noProgressLoops = 0;
      else noProgressLoops++;
      if (
        noProgressLoops <= MAX_RECLAIM_RETRIES &&
        this.reclaimablePages() > 0 &&
        this.#freePages + this.reclaimablePages() - ((1 << order) - 1) > this.watermarks.min &&
        reclaimed > 0
      ) {
        continue;
      }
      // should_compact_retry(): costly orders get a quarter of MAX_COMPACT_RETRIES, then the priority rises.
      if (order > 0 && (gfp & Gfp.RetryMayFail || !costly)) {
        const maxRetries = costly ? 4 : 16;
        if (result === "success" && ++compactionRetries <= maxRetries) continue;
        if (priority > CompactPriority.SyncFull) {
          priority = (priority - 1) as CompactPriority;
          compactionRetries = 0;
          continue;
        }
      }
      if (!costly) this.work.oomWouldKill++;
      return NIL;
    }
  }

  /** The page direct compaction's caller took, or NIL (compaction_capture is not modelled: it retries). */
  #compacted = NIL;

  /**
   * __alloc_pages_direct_compact() → try_to_compact_pages() → compact_zone_order(): skips a deferred
   * order (unless at the highest priority), compacts, defers after a failed synchronous run, and counts
   * compact_stall and compact_success / compact_fail by whether the allocation then succeeded.
   */
  #directCompact(order: number, mt: Migratetype, priority: CompactPriority): CompactResult {
    this.#compacted = NIL;
    let result: CompactResult;
    if (priority > CompactPriority.SyncFull && this.deferral.deferred(order)) {
      this.work.compactionDeferred++;
      result = "deferred";
    } else {
      result = this.#compactZone(order, mt, priority);
      if (result === "skipped") {
        this.work.compactionSkipped++;
        return result;
      }
      if (result === "success") this.deferral.reset(order, false);
      else if (priority !== CompactPriority.Async && result === "complete") this.deferral.defer(order);
    }
    this.work.compactionStalls++;
    const pfn = this.#getPageFromFreelist(order, mt, this.watermarks.min);
    if (pfn !== NIL) {
      this.deferral.reset(order, true);
      this.work.compactionSuccesses++;
      this.#compacted = pfn;
    } else {
      this.work.compactionFailures++;
    }
    return result;
  }

  /**
   * compaction_suitable(): "success" when the allocation would already succeed, "skipped" when too few
   * free pages remain for migration targets (order-0 watermark + compact_gap, the low mark for costly
   * orders) or when a costly failure is for lack of memory (extfrag index in [0, 500]).
   */
  compactionSuitable(order: number): CompactResult {
    if (this.watermarkOk(order, this.watermarks.min)) return "success";
    const mark =
      (order > PAGE_ALLOC_COSTLY_ORDER ? this.watermarks.low : this.watermarks.min) + compactGap(order);
    if (!this.watermarkOk(0, mark)) return "skipped";
    if (order > PAGE_ALLOC_COSTLY_ORDER) {
      for (let o = 0; o < MAX_ORDER; o++) this.#countScratch[o] = this.#blocks(o);
      const fi = extfragIndex(this.#countScratch, order);
      if (fi >= 0 && fi <= EXTFRAG_THRESHOLD) return "skipped";
    }
    return "continue";
  }

  /**
   * compact_zone(): the migrate scanner walks pageblocks up from the zone start isolating movable pages
   * (COMPACT_CLUSTER_MAX at a time), the free scanner walks down from the zone end isolating free pages
   * in movable pageblocks (any pageblock at the highest priority; never a free block of pageblock order),
   * each isolated page is migrated into a free one, and the run ends when __compact_finished sees a
   * suitable free block ("success") or the scanners meet ("complete"). Not modelled: the cached scanner
   * positions and pageblock skip bits, fast_find_migrateblock / fast_isolate_freepages, and async's
   * skip_on_failure.
   */
  #compactZone(order: number, mt: Migratetype, priority: CompactPriority): CompactResult {
    const suitable = this.compactionSuitable(order);
    if (suitable !== "continue") return suitable;
    let migratePfn = 0;
    let freePfn = ((this.#pages - 1) >>> PAGEBLOCK_ORDER) << PAGEBLOCK_ORDER;
    let freeTop = 0; // isolated free pages waiting in #freeList
    let result: CompactResult = "continue";
    for (;;) {
      result = this.#compactFinished(order, mt, migratePfn, freePfn);
      if (result !== "continue") break;
      // isolate_migratepages(): the next pageblock that is a suitable migration source.
      const block = migratePfn >>> PAGEBLOCK_ORDER;
      const start = migratePfn;
      const end = Math.min(start + PB_PAGES, this.#pages);
      migratePfn = end;
      // suitable_migration_source(): async direct compaction stays in pageblocks of the request's type
      // (any movable block for a movable request).
      if (priority === CompactPriority.Async && this.#pbType[block] !== mt) continue;
      let p = start;
      while (p < end) {
        let isolated = 0;
        for (; p < end && isolated < COMPACT_CLUSTER_MAX; ) {
          const f = this.#flags[p]!;
          this.work.compactionMigrateScanned++;
          if (f & PageFlag.Free) {
            p += 1 << this.#order[p]!;
            continue;
          }
          if ((f & PageFlag.Allocated) === 0) {
            p++;
            continue;
          }
          const o = this.#order[p]!;
          if (o === 0 && this.#isolatable(p)) this.#migrateList[isolated++] = p;
          p += 1 << o;
        }
        if (isolated === 0) continue;
        this.work.compactionIsolated += isolated;
        // migrate_pages() with compaction_alloc() as the target allocator.
        for (let i = 0; i < isolated; i++) {
          if (freeTop === 0) {
            while (freeTop === 0 && freePfn >= end) {
              freeTop = this.#isolateFreepagesBlock(freePfn >>> PAGEBLOCK_ORDER, priority);
              freePfn -= PB_PAGES;
            }
          }
          if (freeTop === 0) {
            // No target left: the rest go back (putback_movable_pages).
            this.work.compactionMigrateFailed += isolated - i;
            break;
          }
          const dst = this.#freeList[--freeTop]!;
          this.#migratePage(this.#migrateList[i]!, dst);
        }
      }
    }
    // release_freepages(): isolated free pages the run did not use go back.
    while (freeTop > 0) this.#release(this.#freeList[--freeTop]!, 0);
    return result;
  }

  /**
   * __compact_finished() for direct compaction (the migrate scanner is always pageblock-aligned here):
   * "complete" when the scanners met; "success" when a free block of the request's type and order (or
   * larger) exists, or a whole free pageblock of any type, or one a fallback could claim.
   */
  #compactFinished(order: number, mt: Migratetype, migratePfn: number, freePfn: number): CompactResult {
    if (migratePfn >= freePfn) return "complete";
    for (let o = order; o < MAX_ORDER; o++) {
      if (this.#head[o * MIGRATE_TYPES + mt] !== NIL) return "success";
      if (o >= PAGEBLOCK_ORDER && this.#blocks(o) > 0) return "success";
      if (this.#findSuitableFallback(o, mt, true) !== -1) return "success";
    }
    return "continue";
  }

  /** isolate_lru_page()'s precondition as the model sees it: an owner says yes, and nothing pins it host-side. */
  #isolatable(pfn: number): boolean {
    const f = this.#flags[pfn]!;
    if (f & (PageFlag.HostVisible | PageFlag.Leaked)) return false;
    if (this.#mt[pfn] !== Migratetype.Movable) return false;
    const owner = this.#owners[this.#owner[pfn]!];
    return owner?.isolatable(pfn) === true;
  }

  /**
   * isolate_freepages_block() over one pageblock, if suitable_migration_target() allows it: takes its free
   * blocks off the lists, split to order-0 pages (split_page), while the zone stays above min + 1 page
   * (__isolate_free_page's watermark). Returns the pages now in #freeList.
   */
  #isolateFreepagesBlock(block: number, priority: CompactPriority): number {
    const start = block << PAGEBLOCK_ORDER;
    const end = Math.min(start + PB_PAGES, this.#pages);
    const f0 = this.#flags[start]!;
    if (f0 & PageFlag.Free && this.#order[start]! >= PAGEBLOCK_ORDER) return 0;
    if (priority !== CompactPriority.SyncFull && this.#pbType[block] !== Migratetype.Movable) return 0;
    let n = 0;
    for (let p = start; p < end; ) {
      const f = this.#flags[p]!;
      this.work.compactionFreeScanned++;
      if (f & PageFlag.Free) {
        const o = this.#order[p]!;
        if (!this.watermarkOk(0, this.watermarks.min + (1 << o))) break;
        this.#unlinkFree(p, o);
        for (let k = 0; k < 1 << o; k++) {
          this.#order[p + k] = 0;
          this.#freeList[n++] = p + k;
        }
        this.work.compactionIsolated += 1 << o;
        p += 1 << o;
      } else if (f & PageFlag.Allocated) p += 1 << this.#order[p]!;
      else p++;
    }
    return n;
  }

  /**
   * One migration (migrate_page_move_mapping + migrate_page_copy): the destination takes the source's
   * owner, type and bytes, the owner moves its references, the source is freed.
   */
  #migratePage(src: number, dst: number): void {
    const tag = this.#owner[src]!;
    this.#phys.migratePage(dst, src);
    this.#markAllocated(dst, 0, tag, Migratetype.Movable);
    this.#owners[tag]!.migrated(src, dst);
    this.#release(src, 0);
    this.work.compactionMigrated++;
  }

  /**
   * kswapd's balance_pgdat() for order 0, run to completion when woken: reclaims until the zone is above
   * its high watermark or nothing is left (kcompactd is not modelled).
   */
  #kswapd(): void {
    for (let priority = DEF_PRIORITY; priority >= 0; priority--) {
      if (this.watermarkOk(0, this.watermarks.high)) return;
      const want = this.watermarks.high - this.#freePages + 1;
      const [scanned, reclaimed] = this.#shrinkNode(priority, Math.max(want, SWAP_CLUSTER_MAX));
      this.work.kswapdScanned += scanned;
      this.work.kswapdReclaimed += reclaimed;
      if (scanned === 0 && reclaimed === 0 && this.reclaimablePages() === 0) return;
    }
  }

  /**
   * try_to_free_pages() → do_try_to_free_pages(): one allocstall; priorities 12 down to 0 until
   * SWAP_CLUSTER_MAX pages are reclaimed. For a costly order, reclaim stops as soon as compaction could
   * run (compaction_ready: high watermark + compact_gap free) and otherwise continues until it could
   * (should_continue_reclaim in reclaim/compaction mode). Returns pages reclaimed.
   */
  #directReclaim(order: number): number {
    this.work.allocStalls++;
    let total = 0;
    const costly = order > PAGE_ALLOC_COSTLY_ORDER;
    for (let priority = DEF_PRIORITY; priority >= 0; priority--) {
      if (costly && this.watermarkOk(0, this.watermarks.high + compactGap(order))) break;
      for (;;) {
        const [scanned, reclaimed] = this.#shrinkNode(priority, SWAP_CLUSTER_MAX - total);
        this.work.reclaimScanned += scanned;
        this.work.reclaimed += reclaimed;
        total += reclaimed;
        const inReclaimCompaction = order > 0 && (costly || priority < DEF_PRIORITY - 2);
        if (!inReclaimCompaction || reclaimed === 0) break;
        if (this.compactionSuitable(order) !== "skipped") break;
        if (this.reclaimablePages() <= compactGap(order)) break;
      }
      if (total >= SWAP_CLUSTER_MAX) break;
    }
    return total;
  }

  /**
   * shrink_node() at one priority: each owner's file LRU scanned lru_size >> priority (at least a batch
   * when anything is there, as get_scan_count rounds up small lists at low priority), then shrink_slab.
   * Returns [LRU pages scanned, pages reclaimed (LRU and slab)].
   */
  #shrinkNode(priority: number, want: number): [number, number] {
    let scanned = 0;
    let reclaimed = 0;
    for (const owner of this.#ownerList) {
      const lru = owner.lruPages();
      if (lru === 0) continue;
      const nr = Math.max(Math.floor(lru / 2 ** priority), Math.min(lru, want, SWAP_CLUSTER_MAX));
      owner.shrinkLru(nr, this.#lruOut);
      scanned += this.#lruOut[0]!;
      reclaimed += this.#lruOut[1]!;
    }
    for (const s of this.#shrinkers) {
      const delta = Math.max(shrinkerDelta(s.count(), priority), Math.min(s.count(), want));
      if (delta === 0) continue;
      this.work.slabObjectsScanned += delta;
      const pages = s.scan(delta);
      this.work.slabPagesReclaimed += pages;
      reclaimed += pages;
    }
    return [scanned, reclaimed];
  }

  /** __free_pages(): returns a block and merges it with free buddies. */
  freePages(pfn: number, order: number): void {
    if (this.#visibleFreeReason !== undefined) {
      this.freeHostVisible(pfn, order, this.#visibleFreeReason);
      return;
    }
    this.#checkFreeable(pfn, order);
    this.#release(pfn, order);
  }

  /**
   * Takes the exact range [start, start + pages) out of the free lists (memblock_alloc / alloc_contig_range
   * without migration). Returns false, changing nothing, if any page in it is not free.
   */
  allocRange(start: number, pages: number, options: PageAllocOptions): boolean {
    this.#checkRange(start, pages);
    for (let p = start; p < start + pages; ) {
      const head = this.#headOf(p);
      if (head === NIL || (this.#flags[head]! & PageFlag.Free) === 0) return false;
      p = head + (1 << this.#order[head]!);
    }
    const tag = this.#tagId(options.tag);
    let p = start;
    while (p < start + pages) {
      let head = this.#headOf(p);
      let order = this.#order[head]!;
      this.#unlinkFree(head, order);
      // Split until the block lies inside the range, starting at p.
      while (head < p || head + (1 << order) > start + pages) {
        order--;
        const upper = head + (1 << order);
        const mt = this.pageblockType(head);
        if (p >= upper) {
          this.#pushFree(head, order, mt);
          head = upper;
        } else {
          this.#pushFree(upper, order, this.pageblockType(upper));
        }
      }
      this.#markAllocated(head, order, tag, Migratetype.Unmovable);
      p = head + (1 << order);
    }
    if ((options.gfp ?? 0) & Gfp.Zero) this.#phys.zeroPages(start, pages);
    return true;
  }

  /** Frees a range taken with allocRange (block by block). */
  freeRange(start: number, pages: number): void {
    this.#checkRange(start, pages);
    const blocks: BuddyBlock[] = [];
    for (let p = start; p < start + pages; ) {
      const block = this.blockOf(p);
      if (!block || block.free || block.head !== p || p + (1 << block.order) > start + pages) {
        throw invalid(
          "free-range",
          `0x${p.toString(16)} is not the head of an allocated block inside the range`,
        );
      }
      this.#checkFreeable(block.head, block.order);
      blocks.push(block);
      p += 1 << block.order;
    }
    for (const b of blocks) this.#release(b.head, b.order);
  }

  /**
   * Marks allocated pages whose host visibility is unknown after a failed conversion: they keep their owner,
   * are counted, and can never be freed again (invariant I4).
   */
  leakPages(pfn: number, count: number): void {
    this.#checkRange(pfn, count);
    for (let p = pfn; p < pfn + count; p++) {
      if (!this.isAllocated(p)) throw invalid("leak-free-page", `page 0x${p.toString(16)} is not allocated`);
    }
    for (let p = pfn; p < pfn + count; p++) {
      if (!this.#phys.hasFlag(p, PageFlag.Leaked)) {
        this.#phys.flags[p]! |= PageFlag.Leaked;
        this.#leaked++;
      }
    }
  }

  /**
   * __free_pages() of a block the kernel returns while it is still host-visible: what kernels before the
   * 2024 "Don't free … that couldn't be re-encrypted" fixes do after a failed set_memory_encrypted
   * (CVE-2024-36909, -36911, -36913). Only kernel-exact callers reproducing such a kernel use it; every
   * other free still refuses a host-visible page. The pages are marked and counted (`reason` names the
   * kernel path, kept per call in `freedWhileVisibleLog`), and the block goes back to the free lists: a
   * later allocation may hand a page out while the host still sees it, and the guest's first
   * private-alias access to it is an RMP fault (counted by the MMU).
   */
  freeHostVisible(pfn: number, order: number, reason: string): void {
    this.#checkFreeable(pfn, order, true);
    let marked = 0;
    for (let p = pfn; p < pfn + 2 ** order; p++) {
      if ((this.#phys.flags[p]! & PageFlag.HostVisible) === 0) continue;
      this.#freedVisible ??= new Uint8Array(this.#phys.pages);
      if (this.#freedVisible[p] === 0) {
        this.#freedVisible[p] = 1;
        this.#freedVisibleCount++;
      }
      marked++;
    }
    if (marked > 0) this.freedWhileVisibleLog.push({ pfn, order, reason });
    this.#release(pfn, order);
  }

  /**
   * Runs `free` (a caller's own free path: vfree, a strategy's free) with every __free_pages in it done
   * as freeHostVisible(…, reason): for a kernel-exact caller that frees a buffer it cannot know is
   * private, as free_netvsc_device did before "Don't free decrypted memory". Private pages in it are
   * freed as usual; nesting is refused.
   */
  freeingHostVisible<T>(reason: string, free: () => T): T {
    if (this.#visibleFreeReason !== undefined)
      throw invalid("free-visible-nested", "freeingHostVisible nested");
    this.#visibleFreeReason = reason;
    try {
      return free();
    } finally {
      this.#visibleFreeReason = undefined;
    }
  }

  #visibleFreeReason: string | undefined;

  /**
   * Whether a free path may return `pfn` while it is host-visible: inside freeingHostVisible, or a page
   * a kernel freed that way before and someone allocated since (vfree's check asks this too).
   */
  visibleFreeAllowed(pfn: number): boolean {
    return this.#visibleFreeReason !== undefined || this.#freedVisible?.[pfn] === 1;
  }

  /** Every freeHostVisible call that freed a visible page: the block and the kernel path that freed it. */
  readonly freedWhileVisibleLog: { pfn: number; order: number; reason: string }[] = [];

  /** Pages freeHostVisible returned to the allocator while host-visible (cumulative). */
  get freedWhileVisiblePages(): number {
    return this.#freedVisibleCount;
  }

  /**
   * Whether `pfn` is host-visible because a kernel freed it that way (freeHostVisible) — free again or
   * handed out since: the page state a finding explains, not a fault of the model (I1, I8).
   */
  isFreedWhileVisible(pfn: number): boolean {
    return this.#freedVisible?.[pfn] === 1 && (this.#phys.flags[pfn]! & PageFlag.HostVisible) !== 0;
  }

  /** The pfns for which isFreedWhileVisible holds, ascending. */
  *freedWhileVisible(): Generator<number> {
    if (this.#freedVisibleCount === 0) return;
    for (let p = 0; p < this.#phys.pages; p++) if (this.isFreedWhileVisible(p)) yield p;
  }

  /** The buddy block (free or allocated) that contains `pfn`, or null for reserved pages. O(MAX_ORDER). */
  blockOf(pfn: number): BuddyBlock | null {
    if (!this.#phys.pfnValid(pfn)) return null;
    const head = this.#headOf(pfn);
    if (head === NIL) return null;
    return { head, order: this.#order[head]!, free: (this.#flags[head]! & PageFlag.Free) !== 0 };
  }

  /** Whether `pfn` lies in an allocated block (blockOf(pfn) is a block that is not free), without the object. */
  isAllocated(pfn: number): boolean {
    if (!this.#phys.pfnValid(pfn)) return false;
    const head = this.#headOf(pfn);
    return head !== NIL && (this.#flags[head]! & PageFlag.Allocated) !== 0;
  }

  /**
   * The head of the block containing valid `pfn`, or NIL: the smallest order whose aligned candidate is
   * a block head (free or allocated) of at least that order and reaches `pfn`.
   */
  #headOf(pfn: number): number {
    for (let order = 0; order < MAX_ORDER; order++) {
      const head = pfn & ~((1 << order) - 1);
      const f = this.#flags[head]!;
      if ((f & (PageFlag.Free | PageFlag.Allocated)) !== 0) {
        const o = this.#order[head]!;
        if (o >= order && head + (1 << o) > pfn) return head;
      }
    }
    return NIL;
  }

  /** Owner tag of the page (the tag of its block), "free" for free pages. */
  ownerOf(pfn: number): string {
    // blockOf's answer without its object: the hypervisor asks once per converted page.
    if (!this.#phys.pfnValid(pfn)) return "reserved";
    const head = this.#headOf(pfn);
    if (head === NIL) return "reserved";
    if ((this.#flags[head]! & PageFlag.Free) !== 0) return "free";
    return this.#phys.tags.name(this.#phys.owner[head]!);
  }

  /**
   * The first pfn after the block holding `pfn` (pfn + 1 when it is in none): every page before it has
   * `ownerOf(pfn)`'s answer, so a caller counting pages by owner over a run asks once per block.
   */
  ownerRunEnd(pfn: number): number {
    if (!this.#phys.pfnValid(pfn)) return pfn + 1;
    const head = this.#headOf(pfn);
    return head === NIL ? pfn + 1 : head + (1 << this.#order[head]!);
  }

  /** Calls `visit` for every block in pfn order (free and allocated): a walk of the whole zone. */
  forEachBlock(visit: (head: number, order: number, free: boolean, owner: string) => void): void {
    let p = 0;
    while (p < this.#phys.pages) {
      const f = this.#phys.flags[p]!;
      if ((f & (PageFlag.Free | PageFlag.Allocated)) === 0) {
        p++;
        continue;
      }
      const order = this.#phys.order[p]!;
      const free = (f & PageFlag.Free) !== 0;
      visit(p, order, free, free ? "free" : this.#phys.tags.name(this.#phys.owner[p]!));
      p += 1 << order;
    }
  }

  /** Free blocks of exactly `order`, every migratetype's list from its head (for invariant checks). */
  *freeList(order: number, mt?: Migratetype): Generator<number> {
    for (let t = 0; t < MIGRATE_TYPES; t++) {
      if (mt !== undefined && t !== mt) continue;
      for (let p = this.#head[order * MIGRATE_TYPES + t]!; p !== NIL; p = this.#next(p, order)) yield p;
    }
  }

  /** Whether an order-`order` allocation would be costly (may fail rather than OOM-kill). */
  static isCostly(order: number): boolean {
    return order > PAGE_ALLOC_COSTLY_ORDER;
  }

  #checkRange(pfn: number, count: number): void {
    if (
      !Number.isInteger(pfn) ||
      !Number.isInteger(count) ||
      count <= 0 ||
      pfn < 0 ||
      pfn + count > this.#phys.pages
    ) {
      throw invalid("pfn-range", `page range 0x${pfn}+${count} is outside guest RAM`);
    }
  }

  #checkFreeable(pfn: number, order: number, visibleOk = false): void {
    // The common case in one test: a valid head of an allocated block of this order, no page of which is
    // leaked or host-visible. Anything else takes the checks below, which name what is wrong.
    if (
      (pfn | 0) === pfn &&
      pfn >= 0 &&
      pfn < this.#pages &&
      (this.#flags[pfn]! & (PageFlag.Free | PageFlag.Allocated | PINNED)) === PageFlag.Allocated &&
      this.#order[pfn] === order &&
      (order === 0 || !this.#tailPinned(pfn, order))
    ) {
      return;
    }
    this.#explainUnfreeable(pfn, order, visibleOk);
  }

  /**
   * Whether a page of the block at `pfn` (order ≥ 1) is leaked or host-visible; from order 2 on, four
   * pages' flags per word read.
   */
  #tailPinned(pfn: number, order: number): boolean {
    if (order === 1) return ((this.#flags[pfn]! | this.#flags[pfn + 1]!) & PINNED) !== 0;
    const words = this.#flagWords;
    const end = (pfn >>> 2) + (1 << (order - 2));
    for (let w = pfn >>> 2; w < end; w++) if ((words[w]! & PINNED_WORD) !== 0) return true;
    return false;
  }

  /** The checks of __free_pages' callers, in order, throwing the first that fails. */
  #explainUnfreeable(pfn: number, order: number, visibleOk: boolean): void {
    if (!this.#phys.pfnValid(pfn)) throw invalid("free-unknown", `pfn ${pfn} is not guest RAM`);
    const f = this.#flags[pfn]!;
    if (f & PageFlag.Free) throw invalid("double-free", `pfn 0x${pfn.toString(16)} is already free`);
    if ((f & PageFlag.Allocated) === 0) {
      throw invalid("free-not-head", `pfn 0x${pfn.toString(16)} is not the head of an allocated block`);
    }
    if (this.#order[pfn] !== order) {
      throw invalid(
        "free-order",
        `block at 0x${pfn.toString(16)} has order ${this.#phys.order[pfn]}, not ${order}`,
      );
    }
    const end = pfn + (1 << order);
    for (let p = pfn; p < end; p++) {
      const pf = this.#flags[p]!;
      if ((pf & (PageFlag.Leaked | PageFlag.HostVisible)) === 0) continue;
      if (pf & PageFlag.Leaked) {
        throw new MemoryError(
          "EBUSY",
          "free-leaked",
          `page 0x${p.toString(16)} is leaked and may never be freed`,
        );
      }
      // A page a kernel freed while visible and someone allocated since is freed like any other.
      if (pf & PageFlag.HostVisible && !visibleOk && !this.visibleFreeAllowed(p)) {
        throw new MemoryError("EBUSY", "free-host-visible", `page 0x${p.toString(16)} is still host-visible`);
      }
    }
  }

  #release(pfn: number, order: number): void {
    const flags = this.#flags;
    const orders = this.#order;
    const tag = this.#owner[pfn]!;
    if (tag < this.#tagSeen.length && this.#tagSeen[tag] !== 0) this.#tagCounts[tag * MAX_ORDER + order]!--;
    flags[pfn]! &= ~PageFlag.Allocated;
    this.#owner[pfn] = 0;
    // free_one_page takes the pageblock's type (get_pfnblock_migratetype), not the one allocated with.
    const mt = this.#pbType[pfn >>> PAGEBLOCK_ORDER]! as Migratetype;
    // __free_one_page: merge while the buddy is a free block of the same order (any type: nothing is isolated).
    while (order < MAX_ORDER - 1) {
      const buddy = pfn ^ (1 << order);
      if (buddy + (1 << order) > this.#pages) break;
      if ((flags[buddy]! & PageFlag.Free) === 0 || orders[buddy] !== order) break;
      this.#unlinkFree(buddy, order);
      pfn &= buddy;
      order++;
    }
    this.#pushFree(pfn, order, mt);
  }

  #markAllocated(pfn: number, order: number, tag: number, mt: Migratetype): void {
    this.#flags[pfn]! |= PageFlag.Allocated;
    this.#order[pfn] = order;
    this.#mt[pfn] = mt;
    this.#owner[pfn] = tag;
    if (tag >= this.#tagSeen.length || this.#tagSeen[tag] === 0) this.#firstAllocationOf(tag);
    this.#tagCounts[tag * MAX_ORDER + order]!++;
  }

  #firstAllocationOf(tag: number): void {
    if (tag >= this.#tagSeen.length) {
      const size = Math.max(2 * this.#tagSeen.length, tag + 1);
      const seen = new Uint8Array(size);
      seen.set(this.#tagSeen);
      const counts = new Int32Array(size * MAX_ORDER);
      counts.set(this.#tagCounts);
      this.#tagSeen = seen;
      this.#tagCounts = counts;
    }
    this.#tagSeen[tag] = 1;
    this.#tagsSeen.push(tag);
  }

  #tagId(tag: string): number {
    if (tag === this.#lastTag) return this.#lastTagId;
    const id = this.#phys.tags.id(tag);
    this.#lastTag = tag;
    this.#lastTagId = id;
    return id;
  }

  /**
   * Adds a free block to the head of (order, mt)'s list. A top-order block has no #mt entry (boot writes
   * only the small per-block arrays): it sits on its first pageblock's type, which is set to `mt`.
   */
  #pushFree(pfn: number, order: number, mt: Migratetype): void {
    if (order === MAX_ORDER - 1) {
      this.#pushFreeTop(pfn, mt);
      return;
    }
    this.#flags[pfn]! |= PageFlag.Free;
    this.#order[pfn] = order;
    this.#mt[pfn] = mt;
    const list = order * MIGRATE_TYPES + mt;
    const head = this.#head;
    const links = this.#links;
    const old = head[list]!;
    links[2 * pfn] = old;
    links[2 * pfn + 1] = NIL;
    if (old !== NIL) links[2 * old + 1] = pfn;
    head[list] = pfn;
    this.#countMt[list]!++;
    this.#freePages += 1 << order;
  }

  #pushFreeTop(pfn: number, mt: Migratetype): void {
    const top = MAX_ORDER - 1;
    this.#flags[pfn]! |= PageFlag.Free;
    this.#order[pfn] = top;
    this.#setPageblockType(pfn >>> PAGEBLOCK_ORDER, mt);
    const list = top * MIGRATE_TYPES + mt;
    const old = this.#head[list]!;
    const links = this.#topLinks;
    const at = 2 * (pfn >>> top);
    links[at] = old;
    links[at + 1] = NIL;
    if (old !== NIL) links[2 * (old >>> top) + 1] = pfn;
    this.#head[list] = pfn;
    this.#countMt[list]!++;
    this.#freePages += 1 << top;
  }

  #unlinkFree(pfn: number, order: number): void {
    if (order === MAX_ORDER - 1) {
      this.#unlinkFreeTop(pfn);
      return;
    }
    const list = order * MIGRATE_TYPES + this.#mt[pfn]!;
    const links = this.#links;
    const next = links[2 * pfn]!;
    const prev = links[2 * pfn + 1]!;
    if (prev === NIL) this.#head[list] = next;
    else links[2 * prev] = next;
    if (next !== NIL) links[2 * next + 1] = prev;
    this.#flags[pfn]! &= ~PageFlag.Free;
    this.#countMt[list]!--;
    this.#freePages -= 1 << order;
  }

  #unlinkFreeTop(pfn: number): void {
    const top = MAX_ORDER - 1;
    const list = top * MIGRATE_TYPES + this.#pbType[pfn >>> PAGEBLOCK_ORDER]!;
    const links = this.#topLinks;
    const at = 2 * (pfn >>> top);
    const next = links[at]!;
    const prev = links[at + 1]!;
    if (prev === NIL) this.#head[list] = next;
    else links[2 * (prev >>> top)] = next;
    if (next !== NIL) links[2 * (next >>> top) + 1] = prev;
    this.#flags[pfn]! &= ~PageFlag.Free;
    this.#countMt[list]!--;
    this.#freePages -= 1 << top;
  }

  /** The next head on the free list of `order` after `pfn`. */
  #next(pfn: number, order: number): number {
    return order === MAX_ORDER - 1 ? this.#topLinks[2 * (pfn >>> (MAX_ORDER - 1))]! : this.#links[2 * pfn]!;
  }
}
