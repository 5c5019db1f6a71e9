// Views of a scratch buffer's first n bytes. The memory layer moves whole Uint8Arrays (Mmu.read,
// Mmu.write, the host view's read), so a per-packet copy of n bytes wants buffer[0, n) as an array of
// its own; a fresh subarray per packet is an allocation per packet. Packets come in a few lengths, so
// each length gets one view, made once and kept.

/** How many lengths are kept before the views start afresh (bounds what a stream of odd sizes holds). */
const MAX_VIEWS = 4096;

/** buffer[0, n) for any n up to the buffer's length, one view per n; `grow` replaces the buffer. */
export class PrefixViews {
  #buffer: Uint8Array;
  #views: (Uint8Array | undefined)[] = [];
  #count = 0;

  constructor(buffer: Uint8Array) {
    this.#buffer = buffer;
  }

  /** The whole scratch buffer. */
  get buffer(): Uint8Array {
    return this.#buffer;
  }

  /** buffer[0, n) (the buffer itself when n is its length); n must be an integer in [0, length]. */
  of(n: number): Uint8Array {
    const v = this.#views[n];
    if (v !== undefined) return v;
    return this.#make(n);
  }

  /**
   * Makes the buffer at least `n` bytes long: a larger one (twice the length, or n) holding the old
   * bytes, with the views started afresh. Views handed out before stay views of the old buffer.
   */
  grow(n: number): void {
    if (n <= this.#buffer.length) return;
    const bigger = new Uint8Array(Math.max(n, 2 * this.#buffer.length));
    bigger.set(this.#buffer);
    this.#buffer = bigger;
    this.#views = [];
    this.#count = 0;
  }

  #make(n: number): Uint8Array {
    const b = this.#buffer;
    if (!(Number.isInteger(n) && n >= 0 && n <= b.length)) {
      throw new RangeError(`view of ${n} bytes of a ${b.length}-byte buffer`);
    }
    if (this.#count >= MAX_VIEWS) {
      this.#views = [];
      this.#count = 0;
    }
    const v = n === b.length ? b : b.subarray(0, n);
    this.#views[n] = v;
    this.#count++;
    return v;
  }
}
