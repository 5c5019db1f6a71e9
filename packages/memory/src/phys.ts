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
 * memcpy of `n` bytes between two buffers: a loop for the short pieces (packet headers, ring indices)
 * where a view for Uint8Array.set would cost more than the copy, set() for the rest.
 */
function copyBytes(dst: Uint8Array, d: number, src: Uint8Array, s: number, n: number): void {
  if (n <= 64) {
    for (let i = 0; i < n; i++) dst[d + i] = src[s + i]!;
  } else if (s === 0 && n === src.length) {
    dst.set(src, d);
  } else {
    dst.set(src.subarray(s, s + n), d);
  }
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
      const slot = this.#slot(pfn);
      const d = at + done;
      if (slot === NO_BYTES) dst.fill(0, d, d + n);
      else {
        const src = slot === GARBAGE ? GARBAGE_POOL : this.#slabs[slot >>> SLAB_SHIFT]!;
        const from = (slot === GARBAGE ? garbageStart(pfn) : (slot & (SLAB_PAGES - 1)) * PAGE_SIZE) + off;
        copyBytes(dst, d, src, from, n);
      }
      done += n;
    }
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
      const slot = this.#materialiseSlot(pfn);
      copyBytes(
        this.#slabs[slot >>> SLAB_SHIFT]!,
        (slot & (SLAB_PAGES - 1)) * PAGE_SIZE + off,
        src,
        at + done,
        n,
      );
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
    const fresh = this.#freeSlots.pop() ?? this.#nextSlot++;
    if (fresh >= this.#slabs.length * SLAB_PAGES) this.#slabs.push(new Uint8Array(SLAB_PAGES * PAGE_SIZE));
    this.#setSlot(pfn, fresh);
    const bytes = this.#slotBytes(fresh);
    if (slot === GARBAGE) bytes.set(garbageFor(pfn));
    else bytes.fill(0);
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
