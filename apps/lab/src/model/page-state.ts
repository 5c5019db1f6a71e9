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

/**
 * Watches the model's per-page arrays and reports what changed since the last scan. A full scan compares
 * the arrays four pages at a time; a light scan first checks the counters any page change moves (free
 * pages per order, visibility changes, leaks, page tables, CPA calls) and skips the compare when none
 * moved. The per-step diffs are what make stepping back as cheap as stepping forward.
 */
export class PageTracker {
  readonly #memory: GuestMemory;
  readonly #flags: Uint8Array;
  readonly #order: Uint8Array;
  readonly #owner: Uint16Array;
  #initial: Uint32Array;
  #fingerprint = "";

  constructor(memory: GuestMemory) {
    this.#memory = memory;
    const phys = memory.phys;
    this.#flags = phys.flags.slice();
    this.#order = phys.order.slice();
    this.#owner = phys.owner.slice();
    this.#initial = this.#packAll();
    this.#fingerprint = this.#print();
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

  #print(): string {
    const m = this.#memory;
    return [
      m.buddy.nrFreePages,
      m.buddy.buddyinfo().join(","),
      m.phys.visibilityChanges,
      m.leakedPages,
      m.pageTables.totalTablePages,
      m.cpaPages,
    ].join("|");
  }

  scan(full: boolean): PageDiff {
    const print = this.#print();
    if (!full && print === this.#fingerprint) return PageDiff.EMPTY;
    this.#fingerprint = print;
    const phys = this.#memory.phys;
    const changed: number[] = [];
    const pages = phys.pages;
    const a8 = phys.flags;
    const b8 = this.#flags;
    const ao = phys.order;
    const bo = this.#order;
    const aw = phys.owner;
    const bw = this.#owner;
    // Compare 4 pages per word where the arrays allow it; fall back to pages for the tail.
    const words = Math.floor(pages / 4);
    const fa = new Uint32Array(a8.buffer, a8.byteOffset, words);
    const fb = new Uint32Array(b8.buffer, b8.byteOffset, words);
    const oa = new Uint32Array(ao.buffer, ao.byteOffset, words);
    const ob = new Uint32Array(bo.buffer, bo.byteOffset, words);
    const wa = new Uint32Array(aw.buffer, aw.byteOffset, words * 2);
    const wb = new Uint32Array(bw.buffer, bw.byteOffset, words * 2);
    for (let w = 0; w < words; w++) {
      if (fa[w] !== fb[w] || oa[w] !== ob[w] || wa[2 * w] !== wb[2 * w] || wa[2 * w + 1] !== wb[2 * w + 1]) {
        for (let p = w * 4; p < w * 4 + 4; p++) {
          if (a8[p] !== b8[p] || ao[p] !== bo[p] || aw[p] !== bw[p]) changed.push(p);
        }
      }
    }
    for (let p = words * 4; p < pages; p++) {
      if (a8[p] !== b8[p] || ao[p] !== bo[p] || aw[p] !== bw[p]) changed.push(p);
    }
    if (changed.length === 0) return PageDiff.EMPTY;
    const index = Int32Array.from(changed);
    const before = new Uint32Array(index.length);
    const after = new Uint32Array(index.length);
    for (let i = 0; i < index.length; i++) {
      const p = index[i]!;
      before[i] = packPage(b8[p]!, bo[p]!, bw[p]!);
      after[i] = packPage(a8[p]!, ao[p]!, aw[p]!);
      b8[p] = a8[p]!;
      bo[p] = ao[p]!;
      bw[p] = aw[p]!;
    }
    return new PageDiff(index, before, after);
  }
}

/** The page state at one step, moved forward or back by diffs. */
export class PageState {
  readonly packed: Uint32Array;
  #step = 0;

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
      this.#step++;
    }
    while (this.#step > t) {
      this.#step--;
      const d = diffs[this.#step]!;
      for (let i = 0; i < d.count; i++) this.packed[d.index[i]!] = d.before[i]!;
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
