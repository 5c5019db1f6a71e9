import { type BuddyAllocator, Gfp, type PageAllocOptions } from "./buddy.js";
import { getOrder, PAGE_OFFSET, PAGE_SIZE } from "./constants.js";
import { invalid } from "./errors.js";
import type { FaultInjector, FaultSite } from "./fault-injector.js";
import type { PhysicalMemory } from "./phys.js";

/** The kmalloc size classes of x86-64 (KMALLOC_MIN_SIZE 8, the 96 and 192 caches, up to 8 KiB). */
export const KMALLOC_SIZES: readonly number[] = [
  8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192,
];
/** Largest size served by a slab cache (KMALLOC_MAX_CACHE_SIZE); larger requests go to the page allocator. */
export const KMALLOC_MAX_CACHE_SIZE = 8192;

/**
 * Slab page order per cache, as SLUB typically picks on x86-64 (/proc/slabinfo pagesperslab 1,1,1,1,1,1,1,
 * 2,4,8,8,8,8). SLUB computes it from object size and CPU count; these are the common values (unconfirmed
 * for every configuration).
 */
const SLAB_ORDER: readonly number[] = [0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 3, 3, 3];
const MAX_SLAB_ORDER = 3;

/** KMALLOC_MAX_SIZE: the largest request kmalloc serves (an order-10 block, MAX_ORDER − 1). */
const KMALLOC_MAX_SIZE = PAGE_SIZE << 10;
const SLAB_ALLOC: PageAllocOptions = { tag: "slab" };

export function kmallocSizeClass(size: number): number {
  for (const s of KMALLOC_SIZES) if (size <= s) return s;
  return PAGE_SIZE * 2 ** getOrder(size);
}

/**
 * One slab and the objects in it: which are in use, and for each live object the size asked for and the
 * tag statistics it is charged to (arrays made with the slab, so kmalloc and kfree allocate nothing).
 */
interface Slab {
  /** The slab's first page; a spare slab's record takes the next slab of its cache. */
  pfn: number;
  readonly cache: number;
  readonly objects: number;
  readonly used: Uint8Array;
  readonly size: Int32Array;
  readonly stats: (KmallocTagStats | undefined)[];
  inUse: number;
}

/** A kmalloc_large allocation: whole pages from the buddy allocator. */
interface LargeAllocation {
  readonly size: number;
  readonly stats: KmallocTagStats;
  readonly order: number;
}

export interface KmallocOptions {
  readonly tag: string;
  readonly gfp?: number;
}

export interface KmallocTagStats {
  /** Bytes callers asked for and still hold. */
  live: number;
  /** Bytes those allocations really occupy (size class or whole pages). */
  liveFootprint: number;
  /** Highest `live` seen. */
  peak: number;
  /** Allocations ever made. */
  allocations: number;
}

/**
 * kmalloc/kfree over SLUB-like caches: objects live in slab pages taken from the buddy allocator (tag
 * "slab"), so their bytes are real guest memory at direct-map addresses. Sizes above 8 KiB are
 * kmalloc_large: whole pages of order get_order(size), charged to the caller's tag — which is why the
 * 32 KiB PFN array of hv_map_memory needs an order-3 block.
 */
export class Kmalloc {
  readonly #phys: PhysicalMemory;
  readonly #buddy: BuddyAllocator;
  readonly #faults: FaultSite | undefined;
  readonly #partial: Slab[][] = KMALLOC_SIZES.map(() => []);
  /** Slabs by first page (small-integer keys). */
  readonly #slabs = new Map<number, Slab>();
  /**
   * Per cache, the record of the last slab that emptied and went back to the buddy allocator, kept for
   * the cache's next slab: a cache whose one slab empties and refills per packet makes no arrays.
   */
  readonly #spare: (Slab | undefined)[] = KMALLOC_SIZES.map(() => undefined);
  readonly #large = new Map<number, LargeAllocation>();
  readonly #stats = new Map<string, KmallocTagStats>();
  /** The last tag asked for and its statistics: callers reuse a few tags, so most lookups stop here. */
  #lastTag = "";
  #lastStats: KmallocTagStats | undefined;
  failures = 0;
  /** Bytes callers hold now, over all tags. */
  totalLive = 0;
  /** Highest `totalLive` since construction or the last `resetPeak()` (temporary arrays show here). */
  peakTotalLive = 0;
  /** Pages held by kmalloc_large allocations (already counted in `totalLive` as bytes). */
  largePages = 0;

  constructor(phys: PhysicalMemory, buddy: BuddyAllocator, faults?: FaultInjector) {
    this.#phys = phys;
    this.#buddy = buddy;
    this.#faults = faults?.site("kmalloc");
  }

  /** kmalloc(): a direct-map address, or null when memory is exhausted. */
  kmalloc(size: number, options: KmallocOptions): number | null {
    if (!Number.isSafeInteger(size) || size <= 0)
      throw invalid("kmalloc-size", `kmalloc size must be > 0, got ${size}`);
    if (size > KMALLOC_MAX_SIZE) return this.#fail(); // the kernel warns and returns NULL
    if (this.#faults?.shouldFail()) return this.#fail();
    if (size > KMALLOC_MAX_CACHE_SIZE) return this.#kmallocLarge(size, options);
    let cache = 0;
    while (size > KMALLOC_SIZES[cache]!) cache++;
    const slab = this.#slabWithRoom(cache);
    if (!slab) return this.#fail();
    const index = slab.used.indexOf(0);
    slab.used[index] = 1;
    slab.inUse++;
    if (slab.inUse === slab.objects) this.#partial[cache]!.splice(this.#partial[cache]!.indexOf(slab), 1);
    const classSize = KMALLOC_SIZES[cache]!;
    const va = PAGE_OFFSET + slab.pfn * PAGE_SIZE + index * classSize;
    if ((options.gfp ?? 0) & Gfp.Zero) this.#phys.fill(va - PAGE_OFFSET, classSize, 0);
    const s = this.#tagStats(options.tag);
    slab.size[index] = size;
    slab.stats[index] = s;
    this.#charge(s, size, classSize);
    return va;
  }

  /** kmalloc_large(): whole pages of order get_order(size), charged to the caller's tag. */
  #kmallocLarge(size: number, options: KmallocOptions): number | null {
    const order = getOrder(size);
    const pfn = this.#buddy.allocPages(order, { tag: options.tag, gfp: options.gfp ?? 0 });
    if (pfn === null) return this.#fail();
    const va = PAGE_OFFSET + pfn * PAGE_SIZE;
    const s = this.#tagStats(options.tag);
    this.#large.set(va, { size, stats: s, order });
    this.largePages += 1 << order;
    this.#charge(s, size, PAGE_SIZE << order);
    return va;
  }

  #charge(s: KmallocTagStats, size: number, footprint: number): void {
    this.totalLive += size;
    if (this.totalLive > this.peakTotalLive) this.peakTotalLive = this.totalLive;
    s.live += size;
    s.liveFootprint += footprint;
    s.allocations++;
    if (s.live > s.peak) s.peak = s.live;
  }

  /**
   * The slab object `va` is the address of (a live one or not), as [slab, index]; undefined when `va` is
   * not the start of an object of a slab.
   */
  #objectOf(va: number): Slab | undefined {
    const pa = va - PAGE_OFFSET;
    if (!(pa >= 0 && pa < this.#phys.bytes)) return undefined;
    const pfn = Math.floor(pa / PAGE_SIZE);
    // The slab holding the page starts at the page or at an aligned page below it, up to the largest
    // slab order.
    let slab: Slab | undefined;
    for (let o = 0; o <= MAX_SLAB_ORDER && slab === undefined; o++) {
      const head = pfn - (pfn & ((1 << o) - 1));
      const s = this.#slabs.get(head);
      if (s !== undefined && pfn < head + (1 << SLAB_ORDER[s.cache]!)) slab = s;
    }
    if (slab === undefined) return undefined;
    const at = pa - slab.pfn * PAGE_SIZE;
    const index = at / KMALLOC_SIZES[slab.cache]!;
    if ((index | 0) !== index || slab.used[index] !== 1) return undefined;
    this.#index = index;
    return slab;
  }

  /** The object index #objectOf found. */
  #index = 0;

  /** kzalloc(). */
  kzalloc(size: number, options: KmallocOptions): number | null {
    return this.kmalloc(size, { tag: options.tag, gfp: (options.gfp ?? 0) | Gfp.Zero });
  }

  /** kfree(): only addresses that kmalloc returned; anything else is a typed error and changes nothing. */
  kfree(va: number): void {
    const slab = this.#objectOf(va);
    if (slab === undefined) {
      this.#kfreeLarge(va);
      return;
    }
    const index = this.#index;
    const size = slab.size[index]!;
    const s = slab.stats[index]!;
    slab.stats[index] = undefined;
    if (slab.inUse === slab.objects) this.#partial[slab.cache]!.push(slab);
    slab.used[index] = 0;
    slab.inUse--;
    if (slab.inUse === 0) {
      const list = this.#partial[slab.cache]!;
      list.splice(list.indexOf(slab), 1);
      this.#slabs.delete(slab.pfn);
      this.#buddy.freePages(slab.pfn, SLAB_ORDER[slab.cache]!);
      // Its arrays are clean (no object in use, no statistics held): the next slab can take them.
      this.#spare[slab.cache] = slab;
    }
    this.totalLive -= size;
    s.live -= size;
    s.liveFootprint -= KMALLOC_SIZES[slab.cache]!;
  }

  #kfreeLarge(va: number): void {
    const alloc = this.#large.get(va);
    if (!alloc) throw invalid("kfree-unknown", `kfree of 0x${va.toString(16)}, which kmalloc did not return`);
    this.#buddy.freePages((va - PAGE_OFFSET) / PAGE_SIZE, alloc.order);
    this.#large.delete(va);
    this.largePages -= 1 << alloc.order;
    this.totalLive -= alloc.size;
    alloc.stats.live -= alloc.size;
    alloc.stats.liveFootprint -= PAGE_SIZE << alloc.order;
  }

  /** Starts a new peak measurement from the current live bytes. */
  resetPeak(): void {
    this.peakTotalLive = this.totalLive;
  }

  /** Whether `va` is a live kmalloc address. */
  owns(va: number): boolean {
    return this.#objectOf(va) !== undefined || this.#large.has(va);
  }

  /** ksize(): the usable size of a live allocation. */
  ksize(va: number): number {
    const slab = this.#objectOf(va);
    if (slab !== undefined) return KMALLOC_SIZES[slab.cache]!;
    const alloc = this.#large.get(va);
    if (!alloc) throw invalid("ksize-unknown", `0x${va.toString(16)} is not a live kmalloc address`);
    return PAGE_SIZE << alloc.order;
  }

  /** Live and peak bytes by tag. */
  stats(): Map<string, KmallocTagStats> {
    return new Map([...this.#stats].map(([k, v]) => [k, { ...v }]));
  }

  statsFor(tag: string): KmallocTagStats {
    return { ...this.#tagStats(tag) };
  }

  #tagStats(tag: string): KmallocTagStats {
    if (tag === this.#lastTag && this.#lastStats !== undefined) return this.#lastStats;
    let s = this.#stats.get(tag);
    if (!s) {
      s = { live: 0, liveFootprint: 0, peak: 0, allocations: 0 };
      this.#stats.set(tag, s);
    }
    this.#lastTag = tag;
    this.#lastStats = s;
    return s;
  }

  #slabWithRoom(cache: number): Slab | null {
    const partial = this.#partial[cache]!;
    if (partial.length > 0) return partial[partial.length - 1]!;
    const order = SLAB_ORDER[cache]!;
    const pfn = this.#buddy.allocPages(order, SLAB_ALLOC);
    if (pfn === null) return null;
    let slab = this.#spare[cache];
    if (slab !== undefined) {
      this.#spare[cache] = undefined;
      slab.pfn = pfn;
    } else {
      const objects = Math.floor((PAGE_SIZE << order) / KMALLOC_SIZES[cache]!);
      slab = {
        pfn,
        cache,
        objects,
        used: new Uint8Array(objects),
        size: new Int32Array(objects),
        stats: new Array<KmallocTagStats | undefined>(objects).fill(undefined),
        inUse: 0,
      };
    }
    this.#slabs.set(pfn, slab);
    partial.push(slab);
    return slab;
  }

  #fail(): null {
    this.failures++;
    return null;
  }
}
