import { MAX_ORDER, PAGE_ALLOC_COSTLY_ORDER } from "./constants.js";
import { invalid, MemoryError } from "./errors.js";
import type { FaultInjector, FaultSite } from "./fault-injector.js";
import { PageFlag, type PhysicalMemory } from "./phys.js";

/** The gfp bits the model gives meaning to. */
export const Gfp = {
  /** __GFP_ZERO: the block reads as zeros. */
  Zero: 1,
  /** __GFP_NORETRY: one light attempt; in this model (no reclaim, no compaction) every attempt is light. */
  NoRetry: 2,
  /** __GFP_NOWARN: a failure is not reported as an allocation-failure warning. */
  NoWarn: 4,
} as const;

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

/**
 * The binary buddy allocator of mm/page_alloc.c for one zone: orders 0..10, per-order free lists (LIFO,
 * as list_add to the head), split on allocation (expand) and merge on free (__free_one_page). There is no
 * reclaim and no compaction: when no block fits, the allocation fails. Migratetypes are not modelled.
 *
 * State lives in the PhysicalMemory typed arrays plus two link arrays; alloc and free are O(order).
 */
export class BuddyAllocator {
  readonly #phys: PhysicalMemory;
  readonly #flags: Uint8Array;
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
  readonly #head = new Int32Array(MAX_ORDER).fill(NIL);
  readonly #count = new Float64Array(MAX_ORDER);
  readonly #faults: FaultSite | undefined;
  #freePages = 0;
  #leaked = 0;
  /**
   * Allocated blocks per (owner tag id, order), flat at tag × MAX_ORDER + order, grown as tags appear;
   * `#tagsSeen` lists the tags that ever allocated, in that order (no per-tag object, no sparse array).
   */
  #tagCounts = new Float64Array(16 * MAX_ORDER);
  #tagSeen = new Uint8Array(16);
  readonly #tagsSeen: number[] = [];
  /** The last tag name seen and its id: callers reuse a handful of tags, so most lookups stop here. */
  #lastTag = "";
  #lastTagId = -1;
  readonly failuresByOrder: Float64Array = new Float64Array(MAX_ORDER);
  /** Failures that would have printed the page allocation failure warning (no __GFP_NOWARN). */
  warnings = 0;

  constructor(phys: PhysicalMemory, faults?: FaultInjector) {
    if (phys.pages > 2 ** 31 - 1) throw invalid("memory-size", "guest RAM must be below 8 TiB");
    this.#phys = phys;
    this.#flags = phys.flags;
    this.#order = phys.order;
    this.#owner = phys.owner;
    this.#pages = phys.pages;
    this.#faults = faults?.site("pages");
    this.#topLinks = new Int32Array(2 * ((phys.pages >>> (MAX_ORDER - 1)) + 1));
    this.#links = new Int32Array(2 * phys.pages);
    // memblock_free_all: hand every page to the allocator in the largest naturally aligned blocks.
    let pfn = 0;
    while (pfn < phys.pages) {
      let order = MAX_ORDER - 1;
      while (order > 0 && ((pfn & ((1 << order) - 1)) !== 0 || pfn + (1 << order) > phys.pages)) order--;
      this.#pushFree(pfn, order);
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
    return Array.from(this.#count);
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

  /** Pages currently held by an owner tag. */
  pagesOwnedBy(tag: string): number {
    const id = this.#tagId(tag);
    if (id >= this.#tagSeen.length || this.#tagSeen[id] === 0) return 0;
    let pages = 0;
    for (let o = 0; o < MAX_ORDER; o++) pages += this.#tagCounts[id * MAX_ORDER + o]! * (1 << o);
    return pages;
  }

  /** alloc_pages(): a block of 2^order pages, or null when no free block is large enough. */
  allocPages(order: number, options: PageAllocOptions): number | null {
    if (!(order >= 0 && order < MAX_ORDER && (order | 0) === order)) {
      throw invalid("order", `order must be 0..${MAX_ORDER - 1}, got ${order}`);
    }
    const gfp = options.gfp ?? 0;
    let found = order;
    while (found < MAX_ORDER && this.#head[found] === NIL) found++;
    if (found === MAX_ORDER || this.#faults?.shouldFail()) {
      this.failuresByOrder[order]!++;
      if ((gfp & Gfp.NoWarn) === 0) this.warnings++;
      return null;
    }
    const pfn = this.#head[found]!;
    this.#unlinkFree(pfn, found);
    // expand(): give back the upper halves, largest first.
    while (found > order) {
      found--;
      this.#pushFree(pfn + (1 << found), found);
    }
    this.#markAllocated(pfn, order, this.#tagId(options.tag));
    if (gfp & Gfp.Zero) this.#phys.zeroPages(pfn, 1 << order);
    return pfn;
  }

  /** __free_pages(): returns a block and merges it with free buddies. */
  freePages(pfn: number, order: number): void {
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
        if (p >= upper) {
          this.#pushFree(head, order);
          head = upper;
        } else {
          this.#pushFree(upper, order);
        }
      }
      this.#markAllocated(head, order, tag);
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

  /** Free blocks of exactly `order`, from the head of its list (for invariant checks). */
  *freeList(order: number): Generator<number> {
    for (let p = this.#head[order]!; p !== NIL; p = this.#next(p, order)) yield p;
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

  #checkFreeable(pfn: number, order: number): void {
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
      if (pf & PageFlag.HostVisible) {
        throw new MemoryError("EBUSY", "free-host-visible", `page 0x${p.toString(16)} is still host-visible`);
      }
    }
  }

  #release(pfn: number, order: number): void {
    const tag = this.#owner[pfn]!;
    if (tag < this.#tagSeen.length && this.#tagSeen[tag] !== 0) this.#tagCounts[tag * MAX_ORDER + order]!--;
    this.#flags[pfn]! &= ~PageFlag.Allocated;
    this.#owner[pfn] = 0;
    // __free_one_page: merge while the buddy is a free block of the same order.
    while (order < MAX_ORDER - 1) {
      const buddy = pfn ^ (1 << order);
      if (buddy + (1 << order) > this.#pages) break;
      if ((this.#flags[buddy]! & PageFlag.Free) === 0 || this.#order[buddy] !== order) break;
      this.#unlinkFree(buddy, order);
      if (buddy < pfn) pfn = buddy;
      order++;
    }
    this.#pushFree(pfn, order);
  }

  #markAllocated(pfn: number, order: number, tag: number): void {
    this.#flags[pfn]! |= PageFlag.Allocated;
    this.#order[pfn] = order;
    this.#owner[pfn] = tag;
    if (tag >= this.#tagSeen.length || this.#tagSeen[tag] === 0) this.#firstAllocationOf(tag);
    this.#tagCounts[tag * MAX_ORDER + order]!++;
  }

  #firstAllocationOf(tag: number): void {
    if (tag >= this.#tagSeen.length) {
      const size = Math.max(2 * this.#tagSeen.length, tag + 1);
      const seen = new Uint8Array(size);
      seen.set(this.#tagSeen);
      const counts = new Float64Array(size * MAX_ORDER);
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

  #pushFree(pfn: number, order: number): void {
    this.#flags[pfn]! |= PageFlag.Free;
    this.#order[pfn] = order;
    const old = this.#head[order]!;
    const top = order === MAX_ORDER - 1;
    const links = top ? this.#topLinks : this.#links;
    const at = top ? 2 * (pfn >>> (MAX_ORDER - 1)) : 2 * pfn;
    links[at] = old;
    links[at + 1] = NIL;
    if (old !== NIL) links[top ? 2 * (old >>> (MAX_ORDER - 1)) + 1 : 2 * old + 1] = pfn;
    this.#head[order] = pfn;
    this.#count[order]!++;
    this.#freePages += 1 << order;
  }

  #unlinkFree(pfn: number, order: number): void {
    const top = order === MAX_ORDER - 1;
    const links = top ? this.#topLinks : this.#links;
    const shift = top ? MAX_ORDER - 1 : 0;
    const at = 2 * (pfn >>> shift);
    const next = links[at]!;
    const prev = links[at + 1]!;
    if (prev === NIL) this.#head[order] = next;
    else links[2 * (prev >>> shift)] = next;
    if (next !== NIL) links[2 * (next >>> shift) + 1] = prev;
    this.#flags[pfn]! &= ~PageFlag.Free;
    this.#count[order]!--;
    this.#freePages -= 1 << order;
  }

  /** The next head on the free list of `order` after `pfn`. */
  #next(pfn: number, order: number): number {
    return order === MAX_ORDER - 1 ? this.#topLinks[2 * (pfn >>> (MAX_ORDER - 1))]! : this.#links[2 * pfn]!;
  }
}
