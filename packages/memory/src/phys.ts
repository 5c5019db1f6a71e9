import { PAGE_SIZE } from "./constants.js";
import { invalid } from "./errors.js";
import { TagRegistry } from "./tags.js";

/** Per-page flag bits (one byte per page; never an object per page). */
export const PageFlag = {
  /** Head of a block on a buddy free list. */
  Free: 1,
  /** Head of an allocated block. */
  Allocated: 2,
  /** The hypervisor lets the host read and write this page (visibility READ_WRITE). */
  HostVisible: 4,
  /** Visibility unknown after a failed conversion: never handed out again. */
  Leaked: 8,
  /** pte-bit era: the direct-map PTE of this page carries the shared (vTOM) bit. */
  DirectMapShared: 16,
  /** The direct-map PTE is not present (transition in progress, set_memory_np). */
  DirectMapNotPresent: 32,
  /** Taken out of the buddy allocator at boot (memblock) or a hole. */
  Reserved: 64,
} as const;

const SLAB_SHIFT = 10;
const SLAB_PAGES = 1 << SLAB_SHIFT; // backing bytes come in 4 MiB slabs, handed out page by page
const NO_BYTES = -1; // the page reads as zeros
const GARBAGE = -2; // the page reads as deterministic garbage (contents destroyed by a conversion)
/** Byte-slot numbers are kept in chunks of 2^16 pages, stored + 1 so that a fresh chunk reads NO_BYTES. */
const SLOT_CHUNK_SHIFT = 16;
const SLOT_CHUNK_MASK = (1 << SLOT_CHUNK_SHIFT) - 1;

/** 8 KiB of fixed pseudo-random bytes; a destroyed page shows a pfn-dependent 4 KiB window of it. */
const GARBAGE_POOL: Uint8Array = (() => {
  const bytes = new Uint8Array(2 * PAGE_SIZE);
  let x = 0x9e3779b9;
  for (let i = 0; i < bytes.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
})();

function garbageStart(pfn: number): number {
  return (Math.imul(pfn, 0x9e3779b1) >>> 20) & (PAGE_SIZE - 1);
}

function garbageFor(pfn: number): Uint8Array {
  const start = garbageStart(pfn);
  return GARBAGE_POOL.subarray(start, start + PAGE_SIZE);
}

/**
 * memmove of `n` bytes between two buffers (or within one). Uint8Array.set of a whole source and
 * copyWithin inside one buffer move the bytes natively with no view; a piece of another buffer needs a
 * subarray view for set(), which costs about as much as copying 64 bytes one by one, so short pieces
 * (packet headers, ring indices) are copied by a loop, eight bytes a turn, instead.
 */
export function copyBytes(dst: Uint8Array, d: number, src: Uint8Array, s: number, n: number): void {
  if (dst === src) {
    dst.copyWithin(d, s, s + n);
  } else if (n <= 8) {
    for (let i = 0; i < n; i++) dst[d + i] = src[s + i]!;
  } else if (s === 0 && n === src.length) {
    dst.set(src, d);
  } else if (n <= 64) {
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      dst[d + i] = src[s + i]!;
      dst[d + i + 1] = src[s + i + 1]!;
      dst[d + i + 2] = src[s + i + 2]!;
      dst[d + i + 3] = src[s + i + 3]!;
      dst[d + i + 4] = src[s + i + 4]!;
      dst[d + i + 5] = src[s + i + 5]!;
      dst[d + i + 6] = src[s + i + 6]!;
      dst[d + i + 7] = src[s + i + 7]!;
    }
    for (; i < n; i++) dst[d + i] = src[s + i]!;
  } else {
    dst.set(src.subarray(s, s + n), d);
  }
}

/** The little-endian u32 at `bytes[at..at + 4)`. */
export function loadU32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

/** Stores `value` as a little-endian u32 at `bytes[at..at + 4)`. */
export function storeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = (value >>> 8) & 0xff;
  bytes[at + 2] = (value >>> 16) & 0xff;
  bytes[at + 3] = (value >>> 24) & 0xff;
}

/** memset(0) of `n` bytes: a loop for short pieces, where fill()'s runtime call costs more than the bytes. */
function zeroBytes(dst: Uint8Array, d: number, n: number): void {
  if (n <= 64) for (let i = 0; i < n; i++) dst[d + i] = 0;
  else dst.fill(0, d, d + n);
}

/**
 * Guest physical memory: per-page state in typed arrays and sparse byte backing. A page that was never
 * written holds no bytes. Addresses here are private-alias guest physical addresses (no vTOM bit).
 *
 * The byte accessors are raw: they check nothing but bounds. Guest code reaches memory through the
 * `Mmu`; the host through the hypervisor layer's visibility-gated host view.
 */
export class PhysicalMemory {
  readonly pages: number;
  readonly bytes: number;
  readonly flags: Uint8Array;
  /** Buddy block order, valid on block heads. */
  readonly order: Uint8Array;
  /** Owner tag id, valid on block heads. */
  readonly owner: Uint16Array;
  readonly tags: TagRegistry = new TagRegistry();
  /** Chunks of slot numbers; a chunk is made when one of its pages first gets bytes or garbage. */
  readonly #slotChunks: (Int32Array | undefined)[];
  readonly #slabs: Uint8Array[] = [];
  readonly #freeSlots: number[] = [];
  #nextSlot = 0;

  constructor(bytes: number) {
    if (!Number.isSafeInteger(bytes) || bytes <= 0 || bytes % PAGE_SIZE !== 0) {
      throw invalid("memory-size", `guest memory must be a positive multiple of 4 KiB, got ${bytes}`);
    }
    this.bytes = bytes;
    this.pages = bytes / PAGE_SIZE;
    this.flags = new Uint8Array(this.pages);
    this.order = new Uint8Array(this.pages);
    this.owner = new Uint16Array(this.pages);
    this.#slotChunks = new Array<Int32Array | undefined>(Math.ceil(this.pages / 2 ** SLOT_CHUNK_SHIFT));
  }

  /** pfn_valid(): the pfn has a struct page (is guest RAM). */
  pfnValid(pfn: number): boolean {
    return Number.isInteger(pfn) && pfn >= 0 && pfn < this.pages;
  }

  hasFlag(pfn: number, flag: number): boolean {
    return (this.flags[pfn]! & flag) !== 0;
  }

  #hostVisible = 0;

  #visibilityChanges = 0;

  /** Pages the host may currently read and write. */
  get hostVisiblePages(): number {
    return this.#hostVisible;
  }

  /**
   * Visibility changes made so far (pages that actually flipped). The page-state invariants (I1: no
   * free page visible; I8: visible pages belong to shared owners) can only break through such a change,
   * because freeing a visible or leaked page is refused; checkers use it to skip scans of unchanged state.
   */
  get visibilityChanges(): number {
    return this.#visibilityChanges;
  }

  #backingEpoch = 0;

  /**
   * Bumped whenever a page's host visibility or direct-map attributes change, or a page that holds
   * bytes loses or changes its slot (zeroed, destroyed, migrated, recycled). Bytes given to a page that had none do not bump it. A cache
   * of where a page's bytes live (the MMU's translation cache, the host view's) is valid while this
   * stays what it was when the entry was made.
   */
  get backingEpoch(): number {
    return this.#backingEpoch;
  }

  /**
   * For the code that writes the DirectMapShared / DirectMapNotPresent flags (changePageAttr): some
   * pages' direct-map attributes changed, so what caches kept about reaching them is stale.
   */
  directMapChanged(): void {
    this.#backingEpoch++;
  }

  /**
   * The slab holding page `pfn`'s own bytes, or undefined when the page has none (it reads as zeros or
   * as garbage). With backingOffset, what a cache of the page's bytes keeps; raw, for the memory layer.
   */
  backingSlab(pfn: number): Uint8Array | undefined {
    const slot = this.#slot(pfn);
    return slot >= 0 ? this.#slabs[slot >>> SLAB_SHIFT] : undefined;
  }

  /** The byte offset of page `pfn` in its backingSlab (meaningful only when it has one). */
  backingOffset(pfn: number): number {
    return (this.#slot(pfn) & (SLAB_PAGES - 1)) * PAGE_SIZE;
  }

  /**
   * The narrow hook for the hypervisor layer (HvCallModifySparseGpaPageHostVisibility): sets one page's
   * host visibility. A change destroys the page's contents, as a real conversion does ("hvcall smears
   * data"), so code that forgets to zero after conversion is caught. Returns whether anything changed.
   */
  setHostVisible(pfn: number, visible: boolean): boolean {
    if (!this.pfnValid(pfn)) throw invalid("visibility-pfn", `pfn ${pfn} is not guest RAM`);
    const was = (this.flags[pfn]! & PageFlag.HostVisible) !== 0;
    if (was === visible) return false;
    if (visible) {
      this.flags[pfn]! |= PageFlag.HostVisible;
      this.#hostVisible++;
    } else {
      this.flags[pfn]! &= ~PageFlag.HostVisible;
      this.#hostVisible--;
    }
    this.#visibilityChanges++;
    this.#backingEpoch++;
    this.destroyContents(pfn);
    return true;
  }

  /**
   * setHostVisible for the `count` pages from `pfn` (the hypervisor's loop over a run of consecutive PFNs
   * in its input page): the same flags, counters and destroyed contents, without a call per page.
   * Returns how many pages changed. The caller checks the range first.
   */
  setHostVisibleRange(pfn: number, count: number, visible: boolean): number {
    if (!(this.pfnValid(pfn) && count >= 0 && pfn + count <= this.pages)) {
      throw invalid("visibility-pfn", `pfns ${pfn}+${count} are not guest RAM`);
    }
    const flags = this.flags;
    let changed = 0;
    for (let p = pfn; p < pfn + count; p++) {
      const f = flags[p]!;
      if (((f & PageFlag.HostVisible) !== 0) === visible) continue;
      flags[p] = visible ? f | PageFlag.HostVisible : f & ~PageFlag.HostVisible;
      changed++;
      this.#backingEpoch++;
      this.#release(p);
      this.#setSlot(p, GARBAGE);
    }
    this.#hostVisible += visible ? changed : -changed;
    this.#visibilityChanges += changed;
    return changed;
  }

  /** Pages that currently hold backing bytes (the rest cost nothing). */
  get backedPages(): number {
    return this.#nextSlot - this.#freeSlots.length;
  }

  /** Makes a page read as zeros and releases its bytes. O(1). */
  zeroPage(pfn: number): void {
    this.#release(pfn);
    this.#setSlot(pfn, NO_BYTES);
  }

  /** Makes `count` pages from `pfn` read as zeros (clear_page over a range), releasing their bytes. */
  zeroPages(pfn: number, count: number): void {
    this.#checkRange(pfn * PAGE_SIZE, count * PAGE_SIZE);
    for (let p = pfn; p < pfn + count; p++) {
      this.#release(p);
      this.#setSlot(p, NO_BYTES);
    }
  }

  /** Replaces a page's contents with deterministic garbage, as a visibility change does on hardware. */
  destroyContents(pfn: number): void {
    this.#release(pfn);
    this.#setSlot(pfn, GARBAGE);
  }

  /** Copies `dst.length` bytes from physical address `pa` into `dst`. */
  read(pa: number, dst: Uint8Array): void {
    this.readInto(pa, dst, 0, dst.length);
  }

  /**
   * Copies `len` bytes from physical address `pa` into `dst[at..]`: read() without a view of `dst` per
   * call (the MMU's per-page pieces land here).
   */
  readInto(pa: number, dst: Uint8Array, at: number, len: number): void {
    this.#checkRange(pa, len);
    if (at < 0 || at + len > dst.length) throw invalid("phys-range", `read of ${len} bytes past its buffer`);
    let done = 0;
    while (done < len) {
      const addr = pa + done;
      const pfn = Math.floor(addr / PAGE_SIZE);
      const off = addr - pfn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      this.#readPiece(pfn, off, dst, at + done, n);
      done += n;
    }
  }

  /**
   * readInto() of a piece inside one page: `n` bytes at byte `off` of page `pfn` into `dst[at..]` (what
   * the MMU does once per page it resolved), with only the checks that piece needs.
   */
  readPage(pfn: number, off: number, dst: Uint8Array, at: number, n: number): void {
    this.#checkPiece(pfn, off, dst, at, n);
    this.#readPiece(pfn, off, dst, at, n);
  }

  /** writeFrom() of a piece inside one page: `src[at..at + n)` to byte `off` of page `pfn`. */
  writePage(pfn: number, off: number, src: Uint8Array, at: number, n: number): void {
    this.#checkPiece(pfn, off, src, at, n);
    this.#writePiece(pfn, off, src, at, n);
  }

  /**
   * Copies `n` bytes from byte `srcOff` of page `srcPfn` to byte `dstOff` of page `dstPfn` (each piece
   * inside its page): read() into a buffer and write() of it, without the buffer. The destination page
   * gets bytes first (as write() gives them), then the source's bytes, zeros or garbage land in it.
   */
  copyPage(dstPfn: number, dstOff: number, srcPfn: number, srcOff: number, n: number): void {
    if (!(this.#validPiece(dstPfn, dstOff, n) && this.#validPiece(srcPfn, srcOff, n))) {
      throw invalid("phys-range", `copy of ${n} bytes between pages ${srcPfn} and ${dstPfn} is out of range`);
    }
    const dslot = this.#materialiseSlot(dstPfn);
    // the source's slot is looked up after the destination got bytes (the same page, when they are one)
    this.#readPiece(
      srcPfn,
      srcOff,
      this.#slabs[dslot >>> SLAB_SHIFT]!,
      (dslot & (SLAB_PAGES - 1)) * PAGE_SIZE + dstOff,
      n,
    );
  }

  #validPiece(pfn: number, off: number, n: number): boolean {
    return (
      pfn >>> 0 === pfn && pfn < this.pages && off >>> 0 === off && n >>> 0 === n && off + n <= PAGE_SIZE
    );
  }

  #checkPiece(pfn: number, off: number, buf: Uint8Array, at: number, n: number): void {
    if (!(this.#validPiece(pfn, off, n) && at >>> 0 === at && at + n <= buf.length)) {
      throw invalid(
        "phys-range",
        `${n} bytes at byte ${off} of page ${pfn} (buffer offset ${at}) are out of range`,
      );
    }
  }

  #readPiece(pfn: number, off: number, dst: Uint8Array, d: number, n: number): void {
    const slot = this.#slot(pfn);
    if (slot === NO_BYTES) zeroBytes(dst, d, n);
    else {
      const src = slot === GARBAGE ? GARBAGE_POOL : this.#slabs[slot >>> SLAB_SHIFT]!;
      const from = (slot === GARBAGE ? garbageStart(pfn) : (slot & (SLAB_PAGES - 1)) * PAGE_SIZE) + off;
      copyBytes(dst, d, src, from, n);
    }
  }

  #writePiece(pfn: number, off: number, src: Uint8Array, at: number, n: number): void {
    const slot = this.#materialiseSlot(pfn);
    copyBytes(this.#slabs[slot >>> SLAB_SHIFT]!, (slot & (SLAB_PAGES - 1)) * PAGE_SIZE + off, src, at, n);
  }

  /**
   * The little-endian u32 at `pa`, which must not cross a page (ring indices, header words): read()
   * without a destination buffer. Same bounds rule and same bytes as read().
   */
  readU32(pa: number): number {
    this.#checkRange(pa, 4);
    const pfn = Math.floor(pa / PAGE_SIZE);
    const off = pa - pfn * PAGE_SIZE;
    if (off > PAGE_SIZE - 4) throw invalid("phys-range", `u32 at 0x${pa.toString(16)} crosses a page`);
    const slot = this.#slot(pfn);
    if (slot === NO_BYTES) return 0;
    const src = slot === GARBAGE ? GARBAGE_POOL : this.#slabs[slot >>> SLAB_SHIFT]!;
    const at = (slot === GARBAGE ? garbageStart(pfn) : (slot & (SLAB_PAGES - 1)) * PAGE_SIZE) + off;
    return loadU32(src, at);
  }

  /** Stores `value` as a little-endian u32 at `pa`, which must not cross a page: write() of 4 bytes. */
  writeU32(pa: number, value: number): void {
    this.#checkRange(pa, 4);
    const pfn = Math.floor(pa / PAGE_SIZE);
    const off = pa - pfn * PAGE_SIZE;
    if (off > PAGE_SIZE - 4) throw invalid("phys-range", `u32 at 0x${pa.toString(16)} crosses a page`);
    const slot = this.#materialiseSlot(pfn);
    storeU32(this.#slabs[slot >>> SLAB_SHIFT]!, (slot & (SLAB_PAGES - 1)) * PAGE_SIZE + off, value);
  }

  /** Copies `src` to physical address `pa`. */
  write(pa: number, src: Uint8Array): void {
    this.writeFrom(pa, src, 0, src.length);
  }

  /** Copies `src[at..at + len)` to physical address `pa`: write() without a view of `src` per call. */
  writeFrom(pa: number, src: Uint8Array, at: number, len: number): void {
    this.#checkRange(pa, len);
    if (at < 0 || at + len > src.length) throw invalid("phys-range", `write of ${len} bytes past its buffer`);
    let done = 0;
    while (done < len) {
      const addr = pa + done;
      const pfn = Math.floor(addr / PAGE_SIZE);
      const off = addr - pfn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      this.#writePiece(pfn, off, src, at + done, n);
      done += n;
    }
  }

  /**
   * Fills `len` bytes at `pa` with `value`; zero-filling whole pages releases their bytes instead, and
   * zero-filling part of a page that holds no bytes leaves it so.
   */
  fill(pa: number, len: number, value: number): void {
    this.#checkRange(pa, len);
    let done = 0;
    while (done < len) {
      const addr = pa + done;
      const pfn = Math.floor(addr / PAGE_SIZE);
      const off = addr - pfn * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      if (value === 0 && n === PAGE_SIZE) this.zeroPage(pfn);
      // zeros into a page without bytes (it reads as zeros already) change nothing: no bytes are made
      else if (value !== 0 || this.#slot(pfn) !== NO_BYTES) this.#materialise(pfn).fill(value, off, off + n);
      done += n;
    }
  }

  /**
   * Moves page `src`'s contents to page `dst` (migrate_page_copy): the backing slot changes hands, so the
   * bytes arrive intact without a copy; `src` then reads as zeros. O(1), allocation-free.
   */
  migratePage(dst: number, src: number): void {
    this.#release(dst);
    this.#setSlot(dst, this.#slot(src));
    this.#setSlot(src, NO_BYTES);
  }

  /** Copies between physical ranges (may overlap). */
  copy(dstPa: number, srcPa: number, len: number): void {
    const tmp = new Uint8Array(len);
    this.read(srcPa, tmp);
    this.write(dstPa, tmp);
  }

  #checkRange(pa: number, len: number): void {
    if (
      !Number.isSafeInteger(pa) ||
      pa < 0 ||
      !Number.isSafeInteger(len) ||
      len < 0 ||
      pa + len > this.bytes
    ) {
      throw invalid("phys-range", `physical range 0x${pa.toString(16)}+${len} is outside guest RAM`);
    }
  }

  #slot(pfn: number): number {
    const chunk = this.#slotChunks[pfn >>> SLOT_CHUNK_SHIFT];
    return chunk === undefined ? NO_BYTES : chunk[pfn & SLOT_CHUNK_MASK]! - 1;
  }

  #setSlot(pfn: number, slot: number): void {
    let chunk = this.#slotChunks[pfn >>> SLOT_CHUNK_SHIFT];
    if (chunk === undefined) {
      if (slot === NO_BYTES) return;
      chunk = new Int32Array(1 << SLOT_CHUNK_SHIFT);
      this.#slotChunks[pfn >>> SLOT_CHUNK_SHIFT] = chunk;
    }
    const old = chunk[pfn & SLOT_CHUNK_MASK]! - 1;
    // a page that had bytes of its own loses them or gets others: cached backings of it go stale
    if (old >= 0 && old !== slot) this.#backingEpoch++;
    chunk[pfn & SLOT_CHUNK_MASK] = slot + 1;
  }

  #slotBytes(slot: number): Uint8Array {
    const slab = this.#slabs[slot >>> 10]!;
    const start = (slot & (SLAB_PAGES - 1)) * PAGE_SIZE;
    return slab.subarray(start, start + PAGE_SIZE);
  }

  #materialise(pfn: number): Uint8Array {
    return this.#slotBytes(this.#materialiseSlot(pfn));
  }

  /** The page's byte slot, given bytes (zeros, or its garbage) first if it has none. */
  #materialiseSlot(pfn: number): number {
    const slot = this.#slot(pfn);
    if (slot >= 0) return slot;
    // A slot never handed out before lies in a slab fresh from the allocator, which is zeros already:
    // filling it again would only fault its memory in twice. A recycled slot holds its last page's bytes.
    const recycled = this.#freeSlots.length > 0;
    const fresh = recycled ? this.#freeSlots.pop()! : this.#nextSlot++;
    if (fresh >= this.#slabs.length * SLAB_PAGES) this.#slabs.push(new Uint8Array(SLAB_PAGES * PAGE_SIZE));
    this.#setSlot(pfn, fresh);
    // Into the slab by offset: a view per materialised page would cost more than the fill.
    const slab = this.#slabs[fresh >>> SLAB_SHIFT]!;
    const start = (fresh & (SLAB_PAGES - 1)) * PAGE_SIZE;
    if (slot === GARBAGE) slab.set(garbageFor(pfn), start);
    else if (recycled) slab.fill(0, start, start + PAGE_SIZE);
    return fresh;
  }

  #release(pfn: number): void {
    const slot = this.#slot(pfn);
    if (slot >= 0) this.#freeSlots.push(slot);
  }
}

/** Page frame number of a physical address. */
export function pfnOf(pa: number): number {
  return Math.floor(pa / PAGE_SIZE);
}
