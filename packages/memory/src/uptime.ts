import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { type BuddyAllocator, Gfp } from "./buddy.js";
import { MAX_ORDER } from "./constants.js";
import { invalid } from "./errors.js";
import type { MovablePageOwner, Shrinker } from "./vmscan.js";

/** Parameters of the uptime (aging) workload. */
export interface UptimeParams {
  /** Rounds of fill-then-release; each is a burst of activity (a build, a cache refill...). */
  readonly rounds: number;
  /** Share of the free pages at the start of a round that the round allocates. */
  readonly fill: number;
  /** Probability that an allocation is long-lived: pinned for the rest of the guest's life. */
  readonly pinned: number;
  /** Probability that an allocation outlives its round by 1..3 rounds (medium lifetime). */
  readonly medium: number;
  /**
   * Relative weights of orders 0, 1, 2, ... for each allocation. Order 0 is user memory (page cache or
   * anonymous, movable); orders 1–3 are slab (unmovable or reclaimable); higher orders are unmovable
   * kernel allocations.
   */
  readonly orderWeights: readonly number[];
  /** Share of order-0 allocations that are page cache (the rest anonymous memory). Default 0.7. */
  readonly pageCache?: number;
  /** Share of slab allocations (orders 1–3) that are reclaimable (dentries, inodes). Default 0.4. */
  readonly reclaimableSlab?: number;
  /**
   * Share of guest RAM the page cache and reclaimable slab still hold when the workload ends (a server
   * keeps its caches warm; `MemFree` is small). Default 0.
   */
  readonly resident?: number;
  /**
   * Share of pinned order-0 allocations that are pinned user pages (get_user_pages FOLL_LONGTERM: movable
   * pageblocks, never migratable); the rest are long-lived unmovable kernel pages. Default 0.05.
   */
  readonly pinnedMovable?: number;
  /** Share of guest RAM the resident cache gives back at random at the very end (files deleted). Default 0.04. */
  readonly churn?: number;
}

export type UptimeLevel = "none" | "light" | "moderate" | "heavy";

const ORDER_WEIGHTS = [750, 100, 70, 45, 20, 10, 5] as const;

/**
 * The documented presets (packages/memory/README.md compares them with /proc/buddyinfo and
 * /proc/pagetypeinfo of long-running servers). "light" touches under a third of memory and keeps a
 * small cache; "moderate" and "heavy" fill 90 % of the free memory each round (the headroom kswapd and
 * watermark boosting keep on a real server, which the model does not run in the background), leave
 * pinned pages behind and end
 * with the page cache holding half (moderate) or 80 % (heavy) of RAM. Moderate (about 1 in 170
 * allocations pinned) leaves no free 4 MiB block; heavy (1 in 83, six rounds) leaves no free 2 MiB block
 * either: an order-9 VMBus ring allocation needs direct compaction, and the order-10 blocks of
 * approach (4) are rarely had at any price.
 */
export const UPTIME_LEVELS: Readonly<Record<UptimeLevel, UptimeParams>> = {
  none: { rounds: 0, fill: 0, pinned: 0, medium: 0, orderWeights: ORDER_WEIGHTS },
  light: { rounds: 2, fill: 0.3, pinned: 0.005, medium: 0.05, orderWeights: ORDER_WEIGHTS, resident: 0.1 },
  moderate: { rounds: 4, fill: 0.9, pinned: 0.006, medium: 0.1, orderWeights: ORDER_WEIGHTS, resident: 0.5 },
  heavy: { rounds: 6, fill: 0.9, pinned: 0.012, medium: 0.15, orderWeights: ORDER_WEIGHTS, resident: 0.8 },
};

/** The owner tags of the workload's pages. */
export const UPTIME_TAGS = {
  /** Anonymous memory and unmovable slab / kernel allocations, all released by the end. */
  transient: "uptime",
  /** Page cache: movable, on the file LRU, reclaimable. */
  pageCache: "uptime-pagecache",
  /** Reclaimable slab: freed by the workload's shrinker. */
  slab: "uptime-slab-reclaimable",
  /** Pinned for the guest's life: never migrated, never reclaimed. */
  pinned: "uptime-pinned",
} as const;

export interface UptimeReport {
  readonly seed: number;
  readonly rounds: number;
  readonly allocations: number;
  readonly failures: number;
  /** Pages that stay allocated (tag "uptime-pinned") after the workload. */
  readonly pinnedPages: number;
  readonly pinnedBlocks: number;
  /** Page-cache pages still resident at the end (reclaimable, movable). */
  readonly pageCachePages: number;
  /** Reclaimable slab pages still resident at the end. */
  readonly slabPages: number;
}

const KIND_ANON = 0;
const KIND_CACHE = 1;
const KIND_SLAB_UNMOVABLE = 2;
const KIND_SLAB_RECLAIMABLE = 3;
const KIND_KERNEL = 4;
const DEAD = -1;

/**
 * The workload's live allocations in typed arrays (no object per page), in allocation order, which is
 * also the LRU order: index 0 is the coldest. `slotOf` is the reverse map of movable pages (pfn → index
 * + 1) that compaction needs: when a page migrates, the entry follows it.
 */
class WorkloadPages implements MovablePageOwner, Shrinker {
  readonly #buddy: BuddyAllocator;
  readonly slotOf: Int32Array;
  pfn = new Int32Array(1024);
  order = new Uint8Array(1024);
  kind = new Uint8Array(1024);
  until = new Int16Array(1024);
  length = 0;
  #lruCursor = 0;
  #slabCursor = 0;
  cachePages = 0;
  slabPages = 0;

  constructor(buddy: BuddyAllocator) {
    this.#buddy = buddy;
    this.slotOf = new Int32Array(buddy.totalPages);
  }

  push(pfn: number, order: number, kind: number, until: number): void {
    if (this.length === this.pfn.length) {
      const grow = <T extends Int32Array | Uint8Array | Int16Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.pfn = grow(this.pfn, (n) => new Int32Array(n));
      this.order = grow(this.order, (n) => new Uint8Array(n));
      this.kind = grow(this.kind, (n) => new Uint8Array(n));
      this.until = grow(this.until, (n) => new Int16Array(n));
    }
    const i = this.length++;
    this.pfn[i] = pfn;
    this.order[i] = order;
    this.kind[i] = kind;
    this.until[i] = until;
    if (order === 0) this.slotOf[pfn] = i + 1;
    if (kind === KIND_CACHE) this.cachePages += 1 << order;
    if (kind === KIND_SLAB_RECLAIMABLE) this.slabPages += 1 << order;
  }

  /** Frees entry `i` (through the allocator) and marks it dead. */
  release(i: number): void {
    const pfn = this.pfn[i]!;
    if (pfn === DEAD) return;
    const order = this.order[i]!;
    if (this.kind[i] === KIND_CACHE) this.cachePages -= 1 << order;
    if (this.kind[i] === KIND_SLAB_RECLAIMABLE) this.slabPages -= 1 << order;
    if (order === 0) this.slotOf[pfn] = 0;
    this.pfn[i] = DEAD;
    this.#buddy.freePages(pfn, order);
  }

  /** Drops dead entries, keeping the LRU order. */
  compact(): void {
    let j = 0;
    for (let i = 0; i < this.length; i++) {
      const pfn = this.pfn[i]!;
      if (pfn === DEAD) continue;
      this.pfn[j] = pfn;
      this.order[j] = this.order[i]!;
      this.kind[j] = this.kind[i]!;
      this.until[j] = this.until[i]!;
      if (this.order[j] === 0) this.slotOf[pfn] = j + 1;
      j++;
    }
    this.length = j;
    this.#lruCursor = 0;
    this.#slabCursor = 0;
  }

  isolatable(pfn: number): boolean {
    const slot = this.slotOf[pfn]!;
    if (slot === 0) return false;
    const kind = this.kind[slot - 1]!;
    return kind === KIND_ANON || kind === KIND_CACHE;
  }

  migrated(from: number, to: number): void {
    const slot = this.slotOf[from]!;
    this.slotOf[from] = 0;
    this.slotOf[to] = slot;
    this.pfn[slot - 1] = to;
  }

  lruPages(): number {
    return this.cachePages;
  }

  /** shrink_inactive_list over the coldest page-cache pages: all clean, all reclaimed. */
  shrinkLru(nrToScan: number, out: Float64Array): void {
    let scanned = 0;
    let i = this.#lruCursor;
    for (; i < this.length && scanned < nrToScan; i++) {
      if (this.pfn[i] === DEAD || this.kind[i] !== KIND_CACHE) continue;
      scanned += 1 << this.order[i]!;
      this.release(i);
    }
    this.#lruCursor = i;
    out[0] = scanned;
    out[1] = scanned;
  }

  count(): number {
    return this.slabPages;
  }

  /** The dentry/inode shrinker: one object per page here; a freed slab is a freed block. */
  scan(nr: number): number {
    let freed = 0;
    let i = this.#slabCursor;
    for (; i < this.length && freed < nr; i++) {
      if (this.pfn[i] === DEAD || this.kind[i] !== KIND_SLAB_RECLAIMABLE) continue;
      freed += 1 << this.order[i]!;
      this.release(i);
    }
    this.#slabCursor = i;
    return freed;
  }
}

/**
 * Ages memory reproducibly: the same seed, parameters and starting state give the same final buddy state.
 * Allocations draw an order and a lifetime (transient, medium, pinned) and a type by order: order 0 is
 * page cache or anonymous memory (GFP_HIGHUSER_MOVABLE), orders 1–3 slab (unmovable, or reclaimable with
 * __GFP_RECLAIMABLE), higher orders unmovable kernel memory. Transient allocations are released in random
 * order at the end of their round, medium ones a few rounds later. At the end everything but the pinned
 * allocations and a resident share of page cache and reclaimable slab is released; those stay registered
 * with the allocator, so compaction can migrate the page cache and reclaim can drop it and the slab.
 *
 * The workload's own allocations go through the whole allocator, so when memory is full they wake kswapd,
 * which drops the coldest cache, as on a real server.
 */
export function ageMemory(
  buddy: BuddyAllocator,
  seed: number,
  params: UptimeParams | UptimeLevel,
): UptimeReport {
  const p = typeof params === "string" ? UPTIME_LEVELS[params] : params;
  const share = (x: number | undefined): boolean => x === undefined || (x >= 0 && x <= 1);
  if (
    !(p.fill >= 0 && p.fill <= 1) ||
    !(p.pinned >= 0 && p.pinned + p.medium <= 1) ||
    p.rounds < 0 ||
    !share(p.pageCache) ||
    !share(p.reclaimableSlab) ||
    !share(p.resident) ||
    !share(p.pinnedMovable) ||
    !share(p.churn)
  ) {
    throw invalid(
      "uptime-params",
      "fill must be in [0, 1], pinned + medium in [0, 1], rounds >= 0, the other shares in [0, 1]",
    );
  }
  if (!Number.isSafeInteger(seed)) throw invalid("uptime-seed", `seed must be an integer, got ${seed}`);
  const rng = xoroshiro128plus(seed);
  const weights = p.orderWeights.slice(0, MAX_ORDER);
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const drawOrder = (): number => {
    let r = uniformInt(rng, 0, totalWeight - 1);
    for (let o = 0; o < weights.length; o++) {
      r -= weights[o]!;
      if (r < 0) return o;
    }
    return 0;
  };
  const scale = 1_000_000;
  const pinnedCut = Math.round(p.pinned * scale);
  const mediumCut = pinnedCut + Math.round(p.medium * scale);
  const cacheCut = Math.round((p.pageCache ?? 0.7) * scale);
  const slabCut = Math.round((p.reclaimableSlab ?? 0.4) * scale);
  const pinnedMovableCut = Math.round((p.pinnedMovable ?? 0.05) * scale);

  const pages = new WorkloadPages(buddy);
  buddy.registerMovableOwner(UPTIME_TAGS.transient, pages);
  buddy.registerMovableOwner(UPTIME_TAGS.pageCache, pages);
  buddy.registerShrinker(pages);
  let allocations = 0;
  let failures = 0;
  let pinnedPages = 0;
  let pinnedBlocks = 0;

  const releaseShuffled = (pick: (i: number) => boolean): void => {
    const batch: number[] = [];
    for (let i = 0; i < pages.length; i++) if (pages.pfn[i] !== DEAD && pick(i)) batch.push(i);
    for (let i = batch.length - 1; i > 0; i--) {
      const j = uniformInt(rng, 0, i);
      const t = batch[i]!;
      batch[i] = batch[j]!;
      batch[j] = t;
    }
    for (const i of batch) pages.release(i);
    pages.compact();
  };

  for (let round = 0; round < p.rounds; round++) {
    const target = Math.floor(buddy.nrFreePages * p.fill);
    let taken = 0;
    while (taken < target) {
      const order = drawOrder();
      const life = uniformInt(rng, 0, scale - 1);
      const kindDraw = uniformInt(rng, 0, scale - 1);
      const kind =
        order === 0
          ? kindDraw < cacheCut
            ? KIND_CACHE
            : KIND_ANON
          : order <= 3
            ? kindDraw < slabCut
              ? KIND_SLAB_RECLAIMABLE
              : KIND_SLAB_UNMOVABLE
            : KIND_KERNEL;
      const pinned = life < pinnedCut;
      const tag = pinned
        ? UPTIME_TAGS.pinned
        : kind === KIND_CACHE
          ? UPTIME_TAGS.pageCache
          : kind === KIND_SLAB_RECLAIMABLE
            ? UPTIME_TAGS.slab
            : UPTIME_TAGS.transient;
      // A pinned order-0 allocation is mostly a long-lived kernel page (unmovable); a few are pinned user pages.
      const movable =
        (kind === KIND_ANON || kind === KIND_CACHE) &&
        (!pinned || uniformInt(rng, 0, scale - 1) < pinnedMovableCut);
      const typeGfp = movable ? Gfp.Movable : kind === KIND_SLAB_RECLAIMABLE && !pinned ? Gfp.Reclaimable : 0;
      // Higher orders are opportunistic kernel allocations (skb_page_frag_refill style: __GFP_COMP |
      // __GFP_NOWARN | __GFP_NORETRY without __GFP_DIRECT_RECLAIM), which neither reclaim nor compact.
      const pathGfp = kind === KIND_KERNEL ? Gfp.Atomic | Gfp.Comp : 0;
      const pfn = buddy.allocPages(order, { tag, gfp: typeGfp | pathGfp | Gfp.NoWarn | Gfp.NoRetry });
      allocations++;
      if (pfn === null) {
        failures++;
        if (failures > 1000) break;
        continue;
      }
      taken += 2 ** order;
      if (pinned) {
        // A pinned page (get_user_pages FOLL_LONGTERM, or a long-lived kernel object) has no entry: it is
        // never isolated, migrated or reclaimed.
        pinnedPages += 2 ** order;
        pinnedBlocks++;
      } else {
        const until = life < mediumCut ? round + uniformInt(rng, 1, 3) : round;
        pages.push(pfn, order, kind, until);
      }
    }
    releaseShuffled((i) => pages.until[i]! <= round);
  }
  // What a long-running server keeps: the warmest page cache and reclaimable slab, up to `resident`...
  const residentPages = Math.floor((p.resident ?? 0) * buddy.totalPages);
  let keep = residentPages;
  const kept = new Uint8Array(pages.length);
  for (let i = pages.length - 1; i >= 0 && keep > 0; i--) {
    const k = pages.kind[i]!;
    if (k === KIND_CACHE || k === KIND_SLAB_RECLAIMABLE) {
      kept[i] = 1;
      keep -= 1 << pages.order[i]!;
    }
  }
  releaseShuffled((i) => kept[i] === 0);
  // ...and then its cache fills the memory the workload gave back (files read after the burst), page by
  // page into whatever holes the free lists offer, stopping short of the high watermark (kswapd's goal).
  let fill = Math.min(
    residentPages - pages.cachePages - pages.slabPages,
    buddy.nrFreePages - 2 * buddy.watermarks.high,
  );
  while (fill > 0) {
    const pfn = buddy.allocPages(0, {
      tag: UPTIME_TAGS.pageCache,
      gfp: Gfp.Movable | Gfp.NoWarn | Gfp.NoRetry,
    });
    allocations++;
    if (pfn === null) {
      failures++;
      break;
    }
    pages.push(pfn, 0, KIND_CACHE, p.rounds);
    fill--;
  }
  // Finally some of it goes away at random (deleted files, exited processes): holes in movable blocks.
  let churn = Math.floor((p.churn ?? 0.04) * buddy.totalPages);
  const cacheIdx: number[] = [];
  for (let i = 0; i < pages.length; i++) if (pages.kind[i] === KIND_CACHE) cacheIdx.push(i);
  while (churn > 0 && cacheIdx.length > 0) {
    const j = uniformInt(rng, 0, cacheIdx.length - 1);
    const i = cacheIdx[j]!;
    cacheIdx[j] = cacheIdx[cacheIdx.length - 1]!;
    cacheIdx.pop();
    churn -= 1 << pages.order[i]!;
    pages.release(i);
  }
  pages.compact();
  return {
    seed,
    rounds: p.rounds,
    allocations,
    failures,
    pinnedPages,
    pinnedBlocks,
    pageCachePages: pages.cachePages,
    slabPages: pages.slabPages,
  };
}
