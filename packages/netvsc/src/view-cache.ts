// Views of a scratch buffer for the per-packet copies: Mmu.read and Mmu.write move a whole
// Uint8Array, and a fresh subarray per piece is an allocation per packet. A packet's pieces come in a
// few shapes (the RNDIS header, the frame, the whole message), so each (offset, length) gets one view,
// made once and kept.

/** Views of one base array by (offset, length); bounded: a workload of many sizes starts it afresh. */
export class ViewCache {
  readonly #max: number;
  #base: Uint8Array | undefined;
  /** By offset, then length: two small-integer keys, so a lookup boxes no number. */
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
    if (at === 0 && len === base.length) return base;
    let byLen = this.#views.get(at);
    let v = byLen?.get(len);
    if (v === undefined) {
      if (this.#count >= this.#max) {
        this.#clear();
        byLen = undefined;
      }
      if (byLen === undefined) {
        byLen = new Map();
        this.#views.set(at, byLen);
      }
      v = base.subarray(at, at + len);
      byLen.set(len, v);
      this.#count++;
    }
    return v;
  }

  #clear(): void {
    this.#views.clear();
    this.#count = 0;
  }
}
