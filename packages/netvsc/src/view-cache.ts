// Views of scratch buffers for the per-packet copies: Mmu.read and Mmu.write move a whole
// Uint8Array, and a fresh subarray per piece is an allocation per packet. A packet's pieces come in a
// few shapes (the RNDIS header, the frame, the whole message), so each (offset, length) gets one view,
// made once and kept (at offset 0 by the memory layer's PrefixViews, which bounds itself).

import { PrefixViews } from "@ivm/memory";

/** The views of one base array: at offset 0 by length (the common case), else by offset and length. */
interface BaseViews {
  readonly base: Uint8Array;
  atZero: PrefixViews;
  readonly others: Map<number, Map<number, Uint8Array>>;
  count: number;
}

/** How many base arrays (one per device's scratch) keep their views at once. */
const BASES_MAX = 16;

/**
 * Views of a few base arrays by (offset, length); bounded: a base beyond the most recent BASES_MAX
 * drops the oldest, and a base with more than `max` views starts afresh.
 */
export class ViewCache {
  readonly #max: number;
  readonly #bases: BaseViews[] = [];
  #last: BaseViews | undefined;

  constructor(max = 4096) {
    this.#max = max;
  }

  /** base[at, at + len) as a view kept for the next call with the same base, offset and length. */
  view(base: Uint8Array, at: number, len: number): Uint8Array {
    if (at === 0 && len === base.length) return base;
    const b = this.#of(base);
    if (at === 0) return b.atZero.of(len);
    const v = b.others.get(at)?.get(len);
    if (v !== undefined) return v;
    const made = this.#make(b, at, len);
    let byLen = b.others.get(at);
    if (byLen === undefined) {
      byLen = new Map();
      b.others.set(at, byLen);
    }
    byLen.set(len, made);
    return made;
  }

  #of(base: Uint8Array): BaseViews {
    // The same base as the last call (one device receiving): no search.
    const last = this.#last;
    if (last !== undefined && last.base === base) return last;
    const b = this.#find(base);
    this.#last = b;
    return b;
  }

  #find(base: Uint8Array): BaseViews {
    const bases = this.#bases;
    for (let i = 0; i < bases.length; i++) if (bases[i]!.base === base) return bases[i]!;
    if (bases.length >= BASES_MAX) bases.shift();
    const b: BaseViews = { base, atZero: new PrefixViews(base), others: new Map(), count: 0 };
    bases.push(b);
    return b;
  }

  /** A new view at a non-zero offset, after starting afresh when the base holds `max` of them. */
  #make(b: BaseViews, at: number, len: number): Uint8Array {
    if (b.count >= this.#max) {
      b.others.clear();
      b.count = 0;
    }
    b.count++;
    return b.base.subarray(at, at + len);
  }
}
