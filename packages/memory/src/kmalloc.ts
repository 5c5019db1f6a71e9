import { type BuddyAllocator, Gfp } from "./buddy.js";
import { getOrder, PAGE_OFFSET, PAGE_SIZE } from "./constants.js";
import { invalid } from "./errors.js";
import type { FaultInjector } from "./fault-injector.js";
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

export function kmallocSizeClass(size: number): number {
  for (const s of KMALLOC_SIZES) if (size <= s) return s;
  return PAGE_SIZE * 2 ** getOrder(size);
}

interface Slab {
  readonly pfn: number;
  readonly cache: number;
  readonly objects: number;
  readonly used: Uint8Array;
  inUse: number;
}

interface Allocation {
  readonly size: number;
  readonly classSize: number;
  readonly tag: string;
  readonly slab: Slab | null;
  /** Page order for kmalloc_large allocations. */
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
  readonly #faults: FaultInjector | undefined;
  readonly #partial: Slab[][] = KMALLOC_SIZES.map(() => []);
  readonly #slabs = new Map<number, Slab>();
  readonly #live = new Map<number, Allocation>();
  readonly #stats = new Map<string, KmallocTagStats>();
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
    this.#faults = faults;
  }

  /** kmalloc(): a direct-map address, or null when memory is exhausted. */
  kmalloc(size: number, options: KmallocOptions): number | null {
    if (!Number.isSafeInteger(size) || size <= 0)
      throw invalid("kmalloc-size", `kmalloc size must be > 0, got ${size}`);
    if (getOrder(size) > 10) return this.#fail(); // above KMALLOC_MAX_SIZE: the kernel warns and returns NULL
    if (this.#faults?.shouldFail("kmalloc")) return this.#fail();
    const gfp = options.gfp ?? 0;
    let va: number;
    let alloc: Allocation;
    if (size > KMALLOC_MAX_CACHE_SIZE) {
      const order = getOrder(size);
      const pfn = this.#buddy.allocPages(order, { tag: options.tag, gfp });
      if (pfn === null) return this.#fail();
      va = PAGE_OFFSET + pfn * PAGE_SIZE;
      alloc = { size, classSize: PAGE_SIZE * 2 ** order, tag: options.tag, slab: null, order };
    } else {
      let cache = 0;
      while (size > KMALLOC_SIZES[cache]!) cache++;
      const slab = this.#slabWithRoom(cache);
      if (!slab) return this.#fail();
      const index = slab.used.indexOf(0);
      slab.used[index] = 1;
      slab.inUse++;
      if (slab.inUse === slab.objects) this.#partial[cache]!.splice(this.#partial[cache]!.indexOf(slab), 1);
      const classSize = KMALLOC_SIZES[cache]!;
      va = PAGE_OFFSET + slab.pfn * PAGE_SIZE + index * classSize;
      alloc = { size, classSize, tag: options.tag, slab, order: 0 };
      if (gfp & Gfp.Zero) this.#phys.fill(va - PAGE_OFFSET, classSize, 0);
    }
    this.#live.set(va, alloc);
    if (alloc.slab === null) this.largePages += 2 ** alloc.order;
    this.totalLive += size;
    if (this.totalLive > this.peakTotalLive) this.peakTotalLive = this.totalLive;
    const s = this.#tagStats(options.tag);
    s.live += size;
    s.liveFootprint += alloc.classSize;
    s.allocations++;
    if (s.live > s.peak) s.peak = s.live;
    return va;
  }

  /** kzalloc(). */
  kzalloc(size: number, options: KmallocOptions): number | null {
    return this.kmalloc(size, { tag: options.tag, gfp: (options.gfp ?? 0) | Gfp.Zero });
  }

  /** kfree(): only addresses that kmalloc returned; anything else is a typed error and changes nothing. */
  kfree(va: number): void {
    const alloc = this.#live.get(va);
    if (!alloc) throw invalid("kfree-unknown", `kfree of 0x${va.toString(16)}, which kmalloc did not return`);
    if (alloc.slab) {
      const slab = alloc.slab;
      const index = (va - PAGE_OFFSET - slab.pfn * PAGE_SIZE) / alloc.classSize;
      if (slab.inUse === slab.objects) this.#partial[slab.cache]!.push(slab);
      slab.used[index] = 0;
      slab.inUse--;
      if (slab.inUse === 0) {
        const list = this.#partial[slab.cache]!;
        list.splice(list.indexOf(slab), 1);
        this.#slabs.delete(slab.pfn);
        this.#buddy.freePages(slab.pfn, SLAB_ORDER[slab.cache]!);
      }
    } else {
      this.#buddy.freePages((va - PAGE_OFFSET) / PAGE_SIZE, alloc.order);
    }
    this.#live.delete(va);
    if (alloc.slab === null) this.largePages -= 2 ** alloc.order;
    this.totalLive -= alloc.size;
    const s = this.#tagStats(alloc.tag);
    s.live -= alloc.size;
    s.liveFootprint -= alloc.classSize;
  }

  /** Starts a new peak measurement from the current live bytes. */
  resetPeak(): void {
    this.peakTotalLive = this.totalLive;
  }

  /** Whether `va` is a live kmalloc address. */
  owns(va: number): boolean {
    return this.#live.has(va);
  }

  /** ksize(): the usable size of a live allocation. */
  ksize(va: number): number {
    const alloc = this.#live.get(va);
    if (!alloc) throw invalid("ksize-unknown", `0x${va.toString(16)} is not a live kmalloc address`);
    return alloc.classSize;
  }

  /** Live and peak bytes by tag. */
  stats(): Map<string, KmallocTagStats> {
    return new Map([...this.#stats].map(([k, v]) => [k, { ...v }]));
  }

  statsFor(tag: string): KmallocTagStats {
    return { ...this.#tagStats(tag) };
  }

  #tagStats(tag: string): KmallocTagStats {
    let s = this.#stats.get(tag);
    if (!s) {
      s = { live: 0, liveFootprint: 0, peak: 0, allocations: 0 };
      this.#stats.set(tag, s);
    }
    return s;
  }

  #slabWithRoom(cache: number): Slab | null {
    const partial = this.#partial[cache]!;
    if (partial.length > 0) return partial[partial.length - 1]!;
    const order = SLAB_ORDER[cache]!;
    const pfn = this.#buddy.allocPages(order, { tag: "slab" });
    if (pfn === null) return null;
    const objects = Math.floor((PAGE_SIZE * 2 ** order) / KMALLOC_SIZES[cache]!);
    const slab: Slab = { pfn, cache, objects, used: new Uint8Array(objects), inUse: 0 };
    this.#slabs.set(pfn, slab);
    partial.push(slab);
    return slab;
  }

  #fail(): null {
    this.failures++;
    return null;
  }
}
