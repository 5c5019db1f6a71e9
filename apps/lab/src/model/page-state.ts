import { type GuestMemory, PageFlag } from "@ivm/memory";

/**
 * One page's state in 28 bits: its flag byte (PageFlag), the buddy order (valid on block heads) and the
 * owner tag id (valid on block heads) — exactly the three typed arrays @ivm/memory keeps per page.
 */
export function packPage(flags: number, order: number, owner: number): number {
  return (flags & 0xff) | ((order & 0xf) << 8) | ((owner & 0xffff) << 12);
}
export const pageFlags = (packed: number): number => packed & 0xff;
export const pageOrder = (packed: number): number => (packed >>> 8) & 0xf;
export const pageOwner = (packed: number): number => packed >>> 12;

/** The pages one step changed: their index, and their packed state before and after. */
export class PageDiff {
  static readonly EMPTY: PageDiff = new PageDiff(new Int32Array(0), new Uint32Array(0), new Uint32Array(0));
  readonly index: Int32Array;
  readonly before: Uint32Array;
  readonly after: Uint32Array;

  constructor(index: Int32Array, before: Uint32Array, after: Uint32Array) {
    this.index = index;
    this.before = before;
    this.after = after;
  }

  get count(): number {
    return this.index.length;
  }

  /** This diff followed by `next`, as one diff (a page both touched keeps this one's before). */
  merge(next: PageDiff): PageDiff {
    if (next.count === 0) return this;
    if (this.count === 0) return next;
    const m = new Map<number, [number, number]>();
    for (let i = 0; i < this.count; i++) m.set(this.index[i]!, [this.before[i]!, this.after[i]!]);
    for (let i = 0; i < next.count; i++) {
      const p = next.index[i]!;
      const was = m.get(p);
      m.set(p, [was ? was[0] : next.before[i]!, next.after[i]!]);
    }
    const keys = [...m.keys()].sort((a, b) => a - b);
    return new PageDiff(
      Int32Array.from(keys),
      Uint32Array.from(keys, (k) => m.get(k)![0]),
      Uint32Array.from(keys, (k) => m.get(k)![1]),
    );
  }
}

/** Buddy blocks never cross an order-10 boundary, so a buddy operation touches one 1024-page chunk. */
const CHUNK_SHIFT = 10;

/**
 * Watches the model's per-page arrays and reports what changed since the last scan. The calls that
 * change page state (the buddy allocator's alloc/bulk alloc/free/range/leak, the hypervisor's per-page and range visibility,
 * change_page_attr) are wrapped on their instances — they pass through unchanged — to note which
 * 1024-page chunks they touched, and a scan compares only those. A full scan (at each phase end) compares
 * every page and counts what the noted chunks missed, so a mutator this list forgot shows up as
 * `missedPages` instead of silently drifting. The per-step diffs are what make stepping back as cheap as
 * stepping forward.
 */
export class PageTracker {
  readonly #memory: GuestMemory;
  readonly #flags: Uint8Array;
  readonly #order: Uint8Array;
  readonly #owner: Uint16Array;
  #initial: Uint32Array;
  readonly #dirty = new Set<number>();
  #everything = false;
  /** Pages a full scan found changed outside the noted chunks (0 when every mutator is wrapped). */
  missedPages = 0;
  /** Whether the last scan had anything to look at. */
  moved = false;

  constructor(memory: GuestMemory) {
    this.#memory = memory;
    const phys = memory.phys;
    this.#flags = phys.flags.slice();
    this.#order = phys.order.slice();
    this.#owner = phys.owner.slice();
    this.#initial = this.#packAll();
    this.#watch();
  }

  #watch(): void {
    const m = this.#memory;
    const buddy = m.buddy;
    const mark = (pfn: number, pages = 1): void => {
      for (let c = pfn >> CHUNK_SHIFT; c <= (pfn + pages - 1) >> CHUNK_SHIFT; c++) this.#dirty.add(c);
    };
    const allocPages = buddy.allocPages.bind(buddy);
    buddy.allocPages = (order, options) => {
      const pfn = allocPages(order, options);
      if (pfn !== null) mark(pfn);
      return pfn;
    };
    const freePages = buddy.freePages.bind(buddy);
    buddy.freePages = (pfn, order) => {
      mark(pfn);
      freePages(pfn, order);
    };
    const allocRange = buddy.allocRange.bind(buddy);
    buddy.allocRange = (start, pages, options) => {
      mark(start, pages);
      return allocRange(start, pages, options);
    };
    const freeRange = buddy.freeRange.bind(buddy);
    buddy.freeRange = (start, pages) => {
      mark(start, pages);
      freeRange(start, pages);
    };
    const allocPagesBulk = buddy.allocPagesBulk.bind(buddy);
    buddy.allocPagesBulk = (count, options, out, at = 0) => {
      const got = allocPagesBulk(count, options, out, at);
      for (let i = 0; i < got; i++) mark(out[at + i]!);
      return got;
    };
    const leakPages = buddy.leakPages.bind(buddy);
    buddy.leakPages = (pfn, count) => {
      mark(pfn, count);
      leakPages(pfn, count);
    };
    const setHostVisible = m.phys.setHostVisible.bind(m.phys);
    m.phys.setHostVisible = (pfn, visible) => {
      if (Number.isInteger(pfn) && pfn >= 0) mark(pfn);
      return setHostVisible(pfn, visible);
    };
    const setHostVisibleRange = m.phys.setHostVisibleRange.bind(m.phys);
    m.phys.setHostVisibleRange = (pfn, count, visible) => {
      if (Number.isInteger(pfn) && pfn >= 0 && count > 0) mark(pfn, count);
      return setHostVisibleRange(pfn, count, visible);
    };
    const changePageAttr = m.changePageAttr.bind(m);
    m.changePageAttr = (va, pages, change) => {
      // A vmalloc address reaches its pages through PTEs: rare enough (conversions) to rescan everything.
      this.#everything = true;
      changePageAttr(va, pages, change);
    };
  }

  /** The packed state of every page when tracking started (or at the last rebase). */
  get initial(): Uint32Array {
    return this.#initial;
  }

  /** Takes the current state as the starting state (changes made before the first event). */
  rebase(): void {
    this.#initial = this.#packAll();
  }

  #packAll(): Uint32Array {
    const out = new Uint32Array(this.#flags.length);
    for (let p = 0; p < out.length; p++) out[p] = packPage(this.#flags[p]!, this.#order[p]!, this.#owner[p]!);
    return out;
  }

  #compare(from: number, to: number, changed: number[]): void {
    const phys = this.#memory.phys;
    const a8 = phys.flags;
    const b8 = this.#flags;
    const ao = phys.order;
    const bo = this.#order;
    const aw = phys.owner;
    const bw = this.#owner;
    for (let p = from; p < to; p++) {
      if (a8[p] !== b8[p] || ao[p] !== bo[p] || aw[p] !== bw[p]) changed.push(p);
    }
  }

  /** The changes since the last scan: in the noted chunks, or (full) anywhere. */
  scan(full: boolean): PageDiff {
    const pages = this.#memory.phys.pages;
    const changed: number[] = [];
    this.moved = full || this.#everything || this.#dirty.size > 0;
    if (full || this.#everything) {
      this.#compare(0, pages, changed);
      if (!this.#everything) {
        for (const p of changed) if (!this.#dirty.has(p >> CHUNK_SHIFT)) this.missedPages++;
      }
    } else {
      for (const c of [...this.#dirty].sort((a, b) => a - b)) {
        this.#compare(c << CHUNK_SHIFT, Math.min(pages, (c + 1) << CHUNK_SHIFT), changed);
      }
    }
    this.#dirty.clear();
    this.#everything = false;
    if (changed.length === 0) return PageDiff.EMPTY;
    const phys = this.#memory.phys;
    const index = Int32Array.from(changed);
    const before = new Uint32Array(index.length);
    const after = new Uint32Array(index.length);
    for (let i = 0; i < index.length; i++) {
      const p = index[i]!;
      before[i] = packPage(this.#flags[p]!, this.#order[p]!, this.#owner[p]!);
      after[i] = packPage(phys.flags[p]!, phys.order[p]!, phys.owner[p]!);
      this.#flags[p] = phys.flags[p]!;
      this.#order[p] = phys.order[p]!;
      this.#owner[p] = phys.owner[p]!;
    }
    return new PageDiff(index, before, after);
  }
}

/** The page state at one step, moved forward or back by diffs. */
export class PageState {
  readonly packed: Uint32Array;
  #step = 0;
  /** Moves on whenever a page actually changed, so views can cache what they derive from the state. */
  version = 0;

  constructor(initial: Uint32Array) {
    this.packed = initial.slice();
  }

  get step(): number {
    return this.#step;
  }

  /** Applies or reverts diffs until the state is the one after step `target`. O(pages changed). */
  seek(diffs: readonly PageDiff[], target: number): void {
    const t = Math.max(0, Math.min(target, diffs.length));
    while (this.#step < t) {
      const d = diffs[this.#step]!;
      for (let i = 0; i < d.count; i++) this.packed[d.index[i]!] = d.after[i]!;
      if (d.count > 0) this.version++;
      this.#step++;
    }
    while (this.#step > t) {
      this.#step--;
      const d = diffs[this.#step]!;
      for (let i = 0; i < d.count; i++) this.packed[d.index[i]!] = d.before[i]!;
      if (d.count > 0) this.version++;
    }
  }
}

/** What each page is, for the map: one owner category per page and its host visibility. */
export interface PageSummary {
  /** Pages host-visible now, by owner category. */
  readonly visibleBy: ReadonlyMap<string, number>;
  readonly hostVisible: number;
  readonly leaked: number;
  readonly byCategory: ReadonlyMap<string, number>;
}

export const HOST_VISIBLE = PageFlag.HostVisible;
export const LEAKED = PageFlag.Leaked;
export const FREE = PageFlag.Free;
export const ALLOCATED = PageFlag.Allocated;
export const DIRECT_MAP_SHARED = PageFlag.DirectMapShared;
