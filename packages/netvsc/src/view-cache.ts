// Views of a scratch buffer for the per-packet copies: Mmu.read and Mmu.write move a whole
// Uint8Array, and a fresh subarray per piece is an allocation per packet. A packet's pieces come in a
// few shapes (the RNDIS header, the frame, the whole message), so each (offset, length) gets one view,
// made once and kept.

/** Views of one base array by (offset, length); bounded: a workload of many sizes starts it afresh. */
export class ViewCache {
  readonly #max: number;
  #base: Uint8Array | undefined;
  /** Views at offset 0 by length (the common case), then the others by offset and length. */
  #atZero: (Uint8Array | undefined)[] = [];
  readonly #views = new Map<number, Map<number, Uint8Array>>();
  #count = 0;

  constructor(max = 4096) {
    this.#max = max;
  }

  /** base[at, at + len) as a view kept for the next call with the same base, offset and length. */
  view(base: Uint8Array, at: number, len: number): Uint8Array {
    if (base !== this.#base) {
      this.#base = base;
      this.#clear();
    }
    if (at === 0) {
      if (len === base.length) return base;
      const z = this.#atZero[len];
      if (z !== undefined) return z;
      const v = this.#make(base, 0, len);
      this.#atZero[len] = v;
      return v;
    }
    const v = this.#views.get(at)?.get(len);
    if (v !== undefined) return v;
    const made = this.#make(base, at, len);
    let byLen = this.#views.get(at);
    if (byLen === undefined) {
      byLen = new Map();
      this.#views.set(at, byLen);
    }
    byLen.set(len, made);
    return made;
  }

  /** A new view, after starting afresh when the cache is full. */
  #make(base: Uint8Array, at: number, len: number): Uint8Array {
    if (this.#count >= this.#max) this.#clear();
    this.#count++;
    return base.subarray(at, at + len);
  }

  #clear(): void {
    this.#atZero = [];
    this.#views.clear();
    this.#count = 0;
  }
}
