import { MAX_ORDER, PAGE_ALLOC_COSTLY_ORDER } from "./constants.js";
import { invalid, MemoryError } from "./errors.js";
import type { FaultInjector } from "./fault-injector.js";
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
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  readonly #head = new Int32Array(MAX_ORDER).fill(NIL);
  readonly #count = new Float64Array(MAX_ORDER);
  readonly #faults: FaultInjector | undefined;
  #freePages = 0;
  #leaked = 0;
  /**
   * 1 for a page the kernel freed while host-visible (freeHostVisible); see isFreedWhileVisible. Made on
   * the first such free, so a guest that never does one pays nothing.
   */
  #freedVisible: Uint8Array | undefined;
  #freedVisibleCount = 0;
  /** Allocated blocks by owner tag id, per order. */
  readonly #byTag = new Map<number, Float64Array>();
  readonly failuresByOrder: Float64Array = new Float64Array(MAX_ORDER);
  /** Failures that would have printed the page allocation failure warning (no __GFP_NOWARN). */
  warnings = 0;

  constructor(phys: PhysicalMemory, faults?: FaultInjector) {
    this.#phys = phys;
    this.#faults = faults;
    this.#next = new Int32Array(phys.pages);
    this.#prev = new Int32Array(phys.pages);
    // memblock_free_all: hand every page to the allocator in the largest naturally aligned blocks.
    let pfn = 0;
    while (pfn < phys.pages) {
      let order = MAX_ORDER - 1;
      while (order > 0 && (pfn % 2 ** order !== 0 || pfn + 2 ** order > phys.pages)) order--;
      this.#pushFree(pfn, order);
      pfn += 2 ** order;
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
    for (const [id, counts] of this.#byTag) out.set(this.#phys.tags.name(id), Array.from(counts));
    return out;
  }

  /** Pages currently held by an owner tag. */
  pagesOwnedBy(tag: string): number {
    const counts = this.#byTag.get(this.#phys.tags.id(tag));
    if (!counts) return 0;
    let pages = 0;
    for (let o = 0; o < MAX_ORDER; o++) pages += counts[o]! * 2 ** o;
    return pages;
  }

  /** alloc_pages(): a block of 2^order pages, or null when no free block is large enough. */
  allocPages(order: number, options: PageAllocOptions): number | null {
    if (!Number.isInteger(order) || order < 0 || order >= MAX_ORDER) {
      throw invalid("order", `order must be 0..${MAX_ORDER - 1}, got ${order}`);
    }
    const gfp = options.gfp ?? 0;
    let found = order;
    while (found < MAX_ORDER && this.#head[found] === NIL) found++;
    if (found === MAX_ORDER || this.#faults?.shouldFail("pages")) {
      this.failuresByOrder[order]!++;
      if ((gfp & Gfp.NoWarn) === 0) this.warnings++;
      return null;
    }
    const pfn = this.#head[found]!;
    this.#unlinkFree(pfn, found);
    // expand(): give back the upper halves, largest first.
    while (found > order) {
      found--;
      this.#pushFree(pfn + 2 ** found, found);
    }
    this.#markAllocated(pfn, order, this.#phys.tags.id(options.tag));
    if (gfp & Gfp.Zero) for (let i = 0; i < 2 ** order; i++) this.#phys.zeroPage(pfn + i);
    return pfn;
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
      const block = this.blockOf(p);
      if (!block?.free) return false;
      p = block.head + 2 ** block.order;
    }
    const tag = this.#phys.tags.id(options.tag);
    let p = start;
    while (p < start + pages) {
      const block = this.blockOf(p)!;
      let { head, order } = block;
      this.#unlinkFree(head, order);
      // Split until the block lies inside the range, starting at p.
      while (head < p || head + 2 ** order > start + pages) {
        order--;
        const upper = head + 2 ** order;
        if (p >= upper) {
          this.#pushFree(head, order);
          head = upper;
        } else {
          this.#pushFree(upper, order);
        }
      }
      this.#markAllocated(head, order, tag);
      p = head + 2 ** order;
    }
    if ((options.gfp ?? 0) & Gfp.Zero) for (let i = 0; i < pages; i++) this.#phys.zeroPage(start + i);
    return true;
  }

  /** Frees a range taken with allocRange (block by block). */
  freeRange(start: number, pages: number): void {
    this.#checkRange(start, pages);
    const blocks: BuddyBlock[] = [];
    for (let p = start; p < start + pages; ) {
      const block = this.blockOf(p);
      if (!block || block.free || block.head !== p || p + 2 ** block.order > start + pages) {
        throw invalid(
          "free-range",
          `0x${p.toString(16)} is not the head of an allocated block inside the range`,
        );
      }
      this.#checkFreeable(block.head, block.order);
      blocks.push(block);
      p += 2 ** block.order;
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
      const block = this.blockOf(p);
      if (!block || block.free) throw invalid("leak-free-page", `page 0x${p.toString(16)} is not allocated`);
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
    for (let order = 0; order < MAX_ORDER; order++) {
      const head = pfn - (pfn % 2 ** order);
      const f = this.#phys.flags[head]!;
      if ((f & (PageFlag.Free | PageFlag.Allocated)) !== 0 && this.#phys.order[head]! >= order) {
        const o = this.#phys.order[head]!;
        if (head + 2 ** o > pfn) return { head, order: o, free: (f & PageFlag.Free) !== 0 };
      }
    }
    return null;
  }

  /** Owner tag of the page (the tag of its block), "free" for free pages. */
  ownerOf(pfn: number): string {
    const block = this.blockOf(pfn);
    if (!block) return "reserved";
    if (block.free) return "free";
    return this.#phys.tags.name(this.#phys.owner[block.head]!);
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
      p += 2 ** order;
    }
  }

  /** Free blocks of exactly `order`, from the head of its list (for invariant checks). */
  *freeList(order: number): Generator<number> {
    for (let p = this.#head[order]!; p !== NIL; p = this.#next[p]!) yield p;
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
    if (!this.#phys.pfnValid(pfn)) throw invalid("free-unknown", `pfn ${pfn} is not guest RAM`);
    const f = this.#phys.flags[pfn]!;
    if (f & PageFlag.Free) throw invalid("double-free", `pfn 0x${pfn.toString(16)} is already free`);
    if ((f & PageFlag.Allocated) === 0) {
      throw invalid("free-not-head", `pfn 0x${pfn.toString(16)} is not the head of an allocated block`);
    }
    if (this.#phys.order[pfn] !== order) {
      throw invalid(
        "free-order",
        `block at 0x${pfn.toString(16)} has order ${this.#phys.order[pfn]}, not ${order}`,
      );
    }
    for (let p = pfn; p < pfn + 2 ** order; p++) {
      const pf = this.#phys.flags[p]!;
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
    const counts = this.#byTag.get(this.#phys.owner[pfn]!);
    if (counts) counts[order]!--;
    this.#phys.flags[pfn]! &= ~PageFlag.Allocated;
    this.#phys.owner[pfn] = 0;
    // __free_one_page: merge while the buddy is a free block of the same order.
    while (order < MAX_ORDER - 1) {
      const buddy = pfn ^ (2 ** order);
      if (buddy + 2 ** order > this.#phys.pages) break;
      if ((this.#phys.flags[buddy]! & PageFlag.Free) === 0 || this.#phys.order[buddy] !== order) break;
      this.#unlinkFree(buddy, order);
      pfn = Math.min(pfn, buddy);
      order++;
    }
    this.#pushFree(pfn, order);
  }

  #markAllocated(pfn: number, order: number, tag: number): void {
    this.#phys.flags[pfn]! |= PageFlag.Allocated;
    this.#phys.order[pfn] = order;
    this.#phys.owner[pfn] = tag;
    let counts = this.#byTag.get(tag);
    if (!counts) {
      counts = new Float64Array(MAX_ORDER);
      this.#byTag.set(tag, counts);
    }
    counts[order]!++;
  }

  #pushFree(pfn: number, order: number): void {
    this.#phys.flags[pfn]! |= PageFlag.Free;
    this.#phys.order[pfn] = order;
    const old = this.#head[order]!;
    this.#next[pfn] = old;
    this.#prev[pfn] = NIL;
    if (old !== NIL) this.#prev[old] = pfn;
    this.#head[order] = pfn;
    this.#count[order]!++;
    this.#freePages += 2 ** order;
  }

  #unlinkFree(pfn: number, order: number): void {
    const next = this.#next[pfn]!;
    const prev = this.#prev[pfn]!;
    if (prev === NIL) this.#head[order] = next;
    else this.#next[prev] = next;
    if (next !== NIL) this.#prev[next] = prev;
    this.#phys.flags[pfn]! &= ~PageFlag.Free;
    this.#count[order]!--;
    this.#freePages -= 2 ** order;
  }
}
