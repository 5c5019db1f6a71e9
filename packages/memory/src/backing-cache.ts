import { PAGE_SIZE } from "./constants.js";
import { copyBytes, loadU32, type PhysicalMemory, storeU32 } from "./phys.js";

/**
 * Where recently touched pages keep their bytes, by page frame number: a small direct-mapped cache for
 * an accessor that reaches the same few pages over and over (the host's view of a ring's pages). An
 * entry is good while the physical layer's backing epoch is the one it was made at — no page's
 * visibility flipped and no page that had bytes lost or changed them since — so a hit means the access
 * would find the page as it was when the entry was made. The accessor decides what may be kept (only
 * pages it has just reached through its full checks); this holds slabs and offsets only.
 */
export class BackingCache {
  readonly #phys: PhysicalMemory;
  readonly #mask: number;
  readonly #tag: Float64Array;
  readonly #slab: (Uint8Array | undefined)[];
  readonly #base: Float64Array;
  readonly #epoch: Float64Array;

  /** `entries` must be a power of two. */
  constructor(phys: PhysicalMemory, entries = 512) {
    if (!(Number.isInteger(entries) && entries > 0 && (entries & (entries - 1)) === 0)) {
      throw new RangeError(`a backing cache needs a power-of-two size, got ${entries}`);
    }
    this.#phys = phys;
    this.#mask = entries - 1;
    this.#tag = new Float64Array(entries).fill(-1);
    this.#slab = new Array<Uint8Array | undefined>(entries).fill(undefined);
    this.#base = new Float64Array(entries);
    this.#epoch = new Float64Array(entries).fill(-1);
  }

  /** The entry that holds page `pfn`'s bytes as they are now, or -1. */
  find(pfn: number): number {
    const e = (pfn >>> 0) & this.#mask;
    return this.#tag[e] === pfn && this.#epoch[e] === this.#phys.backingEpoch ? e : -1;
  }

  /** Keeps where page `pfn`'s bytes live, when it has bytes of its own (a page of zeros or garbage is not kept). */
  remember(pfn: number): void {
    const slab = this.#phys.backingSlab(pfn);
    if (slab === undefined) return;
    const e = (pfn >>> 0) & this.#mask;
    this.#tag[e] = pfn;
    this.#slab[e] = slab;
    this.#base[e] = this.#phys.backingOffset(pfn);
    this.#epoch[e] = this.#phys.backingEpoch;
  }

  /** The u32 at byte `off` (≤ 4092) of entry `e`'s page. */
  readU32(e: number, off: number): number {
    return loadU32(this.#slab[e]!, this.#base[e]! + off);
  }

  writeU32(e: number, off: number, value: number): void {
    storeU32(this.#slab[e]!, this.#base[e]! + off, value);
  }

  /** `n` bytes at byte `off` of entry `e`'s page into `dst[at..]` (the piece lies inside the page). */
  read(e: number, off: number, dst: Uint8Array, at: number, n: number): void {
    copyBytes(dst, at, this.#slab[e]!, this.#base[e]! + off, n);
  }

  write(e: number, off: number, src: Uint8Array, at: number, n: number): void {
    copyBytes(this.#slab[e]!, this.#base[e]! + off, src, at, n);
  }
}

/** Whether a piece of `n` bytes at byte `off` is whole bytes inside one page. */
export function insidePage(off: number, n: number): boolean {
  return (off | 0) === off && off + n <= PAGE_SIZE;
}
