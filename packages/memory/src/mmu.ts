import { PAGE_OFFSET, PAGE_SIZE } from "./constants.js";
import { type FaultKind, MemoryFault } from "./errors.js";
import type { PageTables } from "./page-table.js";
import { Pte, pteFrame } from "./page-table.js";
import { copyBytes, loadU32, PageFlag, type PhysicalMemory, storeU32 } from "./phys.js";

const TLB_ENTRIES = 4096;
/** Direct-map pages whose backing the MMU keeps (by pfn, direct-mapped), after the TLB's entries. */
const DIRECT_ENTRIES = 1024;

/** How the MMU resolves one page: the RAM pfn it reaches and through which alias. */
export interface Translation {
  readonly pfn: number;
  readonly shared: boolean;
}

/**
 * The guest's view of memory by kernel virtual address. The direct map is linear (virt_to_phys); the
 * vmalloc range is walked through the page tables, with a direct-mapped translation cache that every PTE
 * change invalidates.
 *
 * In an isolated guest (vTOM > 0) each access is checked against the page's host visibility: the private
 * alias may touch only private pages, the shared alias (frame ≥ vTOM) only host-visible ones. A wrong
 * alias, a not-present PTE or an unmapped address is a typed `MemoryFault`, counted by kind.
 */
export class Mmu {
  readonly #phys: PhysicalMemory;
  readonly #tables: PageTables;
  readonly #vtomPfn: number;
  // An empty slot's tag is NaN, which equals no page number (-1 would match the page of [-4096, 0)).
  readonly #tlbTag = new Float64Array(TLB_ENTRIES).fill(Number.NaN);
  readonly #tlbPte = new Float64Array(TLB_ENTRIES);
  /**
   * What a translation resolved to, kept (as a hardware TLB keeps the frame): the slab holding the
   * page's bytes, the page's offset in it and whether the alias is the shared one. Entries
   * [0, TLB_ENTRIES) sit beside the translation cache's, for vmalloc pages; the DIRECT_ENTRIES after them
   * are direct-map pages by pfn (`#directTag`). An entry is valid while its tag holds and the physical
   * layer's backing epoch is the one recorded (-1: none): every check the translation made (presence,
   * frame, alias against visibility) depends only on the PTE, which a change evicts, and on the page's
   * visibility and direct-map flags, whose changes bump the epoch.
   */
  readonly #keptSlab: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(
    TLB_ENTRIES + DIRECT_ENTRIES,
  ).fill(undefined);
  readonly #keptBase = new Float64Array(TLB_ENTRIES + DIRECT_ENTRIES);
  readonly #keptShared = new Uint8Array(TLB_ENTRIES + DIRECT_ENTRIES);
  readonly #keptEpoch = new Float64Array(TLB_ENTRIES + DIRECT_ENTRIES).fill(-1);
  readonly #directTag = new Float64Array(DIRECT_ENTRIES).fill(-1);
  #bounce = new Uint8Array(PAGE_SIZE);
  readonly #word = new Uint8Array(4);
  // the word of an access that crosses a page, encoded once per access through a view made once
  readonly #wordView = new DataView(this.#word.buffer);
  readonly faults: Record<FaultKind, number> = {
    unmapped: 0,
    "not-present": 0,
    "no-memory": 0,
    "private-alias-to-shared-page": 0,
    "shared-alias-to-private-page": 0,
  };
  tlbHits = 0;
  tlbMisses = 0;
  bytesRead = 0;
  /**
   * Reads (read and copy calls) that touched at least one page through its shared alias: the guest
   * fetching bytes the host can change. Callers that promise to parse only private copies (I3)
   * compare this counter around their parse.
   */
  sharedReads = 0;
  bytesWritten = 0;

  constructor(phys: PhysicalMemory, tables: PageTables, vtomPfn: number) {
    this.#phys = phys;
    this.#tables = tables;
    this.#vtomPfn = vtomPfn;
  }

  /** Drops the cached translation of the page containing `va` (flush_tlb_kernel_range for one page). */
  invalidate(va: number): void {
    const vpn = Math.floor(va / PAGE_SIZE);
    const slot = tlbSlot(vpn);
    if (this.#tlbTag[slot] === vpn) this.#evict(slot);
  }

  /** Empties a translation-cache slot, and the backing kept beside it. */
  #evict(slot: number): void {
    this.#tlbTag[slot] = Number.NaN;
    this.#keptEpoch[slot] = -1;
  }

  /** flush_tlb_kernel_range(): drops the cached translations of `pages` pages from page-aligned `va`. */
  invalidateRange(va: number, pages: number): void {
    const first = Math.floor(va / PAGE_SIZE);
    if (pages < TLB_ENTRIES) {
      for (let i = 0; i < pages; i++) {
        const slot = tlbSlot(first + i);
        if (this.#tlbTag[slot] === first + i) this.#evict(slot);
      }
      return;
    }
    // A range at least as large as the cache: test every slot once instead.
    for (let slot = 0; slot < TLB_ENTRIES; slot++) {
      const tag = this.#tlbTag[slot]!;
      if (tag >= first && tag < first + pages) this.#evict(slot);
    }
  }

  get totalFaults(): number {
    let n = 0;
    for (const v of Object.values(this.faults)) n += v;
    return n;
  }

  /** Resolves `va` for an access, enforcing presence and the alias rules. */
  translate(va: number): Translation {
    const frameShared = this.#resolve(va);
    return { pfn: Math.floor(frameShared / 2), shared: (frameShared & 1) === 1 };
  }

  read(va: number, dst: Uint8Array): void {
    this.#read(va, dst, 0, dst.length);
  }

  /**
   * read() of `len` bytes at `va` into `dst[at..at + len)`: the same translations, faults and counters,
   * without a view of `dst` per call (a caller's pieces of one scratch buffer).
   */
  readInto(va: number, dst: Uint8Array, at: number, len: number): void {
    checkPiece(dst, at, len);
    this.#read(va, dst, at, len);
  }

  write(va: number, src: Uint8Array): void {
    this.#write(va, src, 0, src.length);
  }

  /** write() of `src[at..at + len)` to `va`, without a view of `src` per call. */
  writeFrom(va: number, src: Uint8Array, at: number, len: number): void {
    checkPiece(src, at, len);
    this.#write(va, src, at, len);
  }

  #read(va: number, dst: Uint8Array, at: number, len: number): void {
    let done = 0;
    let shared = 0;
    while (done < len) {
      const addr = va + done;
      const off = pageOffset(addr);
      const n = Math.min(PAGE_SIZE - off, len - done);
      const slot = this.#cached(addr);
      if (slot >= 0) {
        shared |= this.#keptShared[slot]!;
        copyBytes(dst, at + done, this.#keptSlab[slot]!, this.#keptBase[slot]! + off, n);
      } else {
        const resolved = this.#resolve(addr);
        shared |= resolved & 1;
        this.#phys.readPage(resolved >>> 1, off, dst, at + done, n);
        this.#remember(addr, resolved);
      }
      done += n;
    }
    this.bytesRead += len;
    this.sharedReads += shared;
  }

  #write(va: number, src: Uint8Array, at: number, len: number): void {
    let done = 0;
    while (done < len) {
      const addr = va + done;
      const off = pageOffset(addr);
      const n = Math.min(PAGE_SIZE - off, len - done);
      const slot = this.#cached(addr);
      if (slot >= 0) copyBytes(this.#keptSlab[slot]!, this.#keptBase[slot]! + off, src, at + done, n);
      else {
        const resolved = this.#resolve(addr);
        this.#phys.writePage(resolved >>> 1, off, src, at + done, n);
        this.#remember(addr, resolved);
      }
      done += n;
    }
    this.bytesWritten += len;
  }

  fill(va: number, len: number, value: number): void {
    let done = 0;
    while (done < len) {
      const addr = va + done;
      const off = addr - Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      const pfn = Math.floor(this.#resolve(addr) / 2);
      // memset(0) of a whole page drops its bytes (what phys.fill would do, without its range checks).
      if (value === 0 && n === PAGE_SIZE) this.#phys.zeroPage(pfn);
      else this.#phys.fill(pfn * PAGE_SIZE + off, n, value);
      done += n;
    }
    this.bytesWritten += len;
  }

  /**
   * memcpy between two virtual ranges with memmove's result, as read() of the whole source into a buffer
   * then write() of it: every source page is resolved (and may fault) before any destination byte is
   * written, then the destination pages one by one. The bytes go page to page without the buffer unless
   * a destination page is also a source page (overlapping ranges, or two aliases of one page); then the
   * source is read into a bounce buffer, kept between calls, before the first byte lands there.
   */
  copy(dstVa: number, srcVa: number, len: number): void {
    if (!(Number.isInteger(len) && len > 0 && Number.isInteger(srcVa) && Number.isInteger(dstVa))) {
      this.#copyBounced(dstVa, srcVa, len);
      return;
    }
    // The source pages: resolved in order, at the addresses read() would use, before anything is written.
    const srcOff = pageOffset(srcVa);
    const pages = Math.ceil((srcOff + len) / PAGE_SIZE);
    if (pages > this.#srcPages.length) {
      this.#srcPages = new Float64Array(Math.max(pages, 2 * this.#srcPages.length));
    }
    const srcPages = this.#srcPages;
    let shared = 0;
    for (let i = 0; i < pages; i++) {
      const resolved = this.#resolve(i === 0 ? srcVa : srcVa - srcOff + i * PAGE_SIZE);
      shared |= resolved & 1;
      srcPages[i] = resolved >>> 1;
    }
    this.bytesRead += len;
    this.sharedReads += shared;
    let bounced = false;
    let done = 0;
    while (done < len) {
      const addr = dstVa + done;
      const off = pageOffset(addr);
      const n = Math.min(PAGE_SIZE - off, len - done);
      const dstPfn = this.#resolve(addr) >>> 1;
      if (!bounced && this.#isSourcePage(dstPfn, pages)) {
        // This page is also read: take the whole source (unchanged so far) before writing to it.
        this.#readResolved(srcOff, len, pages);
        bounced = true;
      }
      if (bounced) this.#phys.writePage(dstPfn, off, this.#bounce, done, n);
      else this.#copyFromSource(dstPfn, off, srcOff + done, n);
      done += n;
    }
    this.bytesWritten += len;
  }

  /** copy() as read() into the bounce buffer and write() of it, for arguments that are not plain integers. */
  #copyBounced(dstVa: number, srcVa: number, len: number): void {
    if (len > this.#bounce.length) this.#bounce = new Uint8Array(Math.max(len, 2 * this.#bounce.length));
    const tmp = len === this.#bounce.length ? this.#bounce : this.#bounce.subarray(0, len);
    this.read(srcVa, tmp);
    this.write(dstVa, tmp);
  }

  /** The source page numbers of the copy in progress (resolved once each). */
  #srcPages = new Float64Array(4);

  #isSourcePage(pfn: number, pages: number): boolean {
    for (let i = 0; i < pages; i++) if (this.#srcPages[i] === pfn) return true;
    return false;
  }

  /** Copies `n` bytes of the resolved source from source byte `at` to byte `off` of page `dstPfn`. */
  #copyFromSource(dstPfn: number, off: number, at: number, n: number): void {
    while (n > 0) {
      const page = Math.floor(at / PAGE_SIZE);
      const srcOff = at - page * PAGE_SIZE;
      const piece = Math.min(n, PAGE_SIZE - srcOff);
      this.#phys.copyPage(dstPfn, off, this.#srcPages[page]!, srcOff, piece);
      off += piece;
      at += piece;
      n -= piece;
    }
  }

  /** Reads the resolved source (its first byte at `srcOff` of its first page) into the bounce buffer. */
  #readResolved(srcOff: number, len: number, pages: number): void {
    if (len > this.#bounce.length) this.#bounce = new Uint8Array(Math.max(len, 2 * this.#bounce.length));
    let done = 0;
    for (let i = 0; i < pages; i++) {
      const off = i === 0 ? srcOff : 0;
      const n = Math.min(PAGE_SIZE - off, len - done);
      this.#phys.readPage(this.#srcPages[i]!, off, this.#bounce, done, n);
      done += n;
    }
  }

  /**
   * The u32 at `va`: read() of 4 bytes (same translation, alias checks, faults and counters). A word
   * inside one page (every ring header field) is one translation and no copy.
   */
  readU32(va: number): number {
    const off = pageOffset(va);
    if (off > PAGE_SIZE - 4) {
      this.read(va, this.#word);
      return this.#wordView.getUint32(0, true);
    }
    const slot = this.#cached(va);
    if (slot >= 0) {
      this.bytesRead += 4;
      this.sharedReads += this.#keptShared[slot]!;
      return loadU32(this.#keptSlab[slot]!, this.#keptBase[slot]! + off);
    }
    const resolved = this.#resolve(va);
    const value = this.#phys.readU32(Math.floor(resolved / 2) * PAGE_SIZE + off);
    this.#remember(va, resolved);
    this.bytesRead += 4;
    this.sharedReads += resolved & 1;
    return value;
  }

  /** write() of a little-endian u32; a word inside one page is one translation and no copy. */
  writeU32(va: number, value: number): void {
    const off = pageOffset(va);
    if (off > PAGE_SIZE - 4) {
      this.#wordView.setUint32(0, value >>> 0, true);
      this.write(va, this.#word);
      return;
    }
    const slot = this.#cached(va);
    if (slot >= 0) {
      storeU32(this.#keptSlab[slot]!, this.#keptBase[slot]! + off, value);
    } else {
      const resolved = this.#resolve(va);
      this.#phys.writeU32(Math.floor(resolved / 2) * PAGE_SIZE + off, value);
      this.#remember(va, resolved);
    }
    this.bytesWritten += 4;
  }

  /** Returns pfn × 2 + (shared ? 1 : 0), or throws the fault. Kept numeric: this is the hot path. */
  #resolve(va: number): number {
    let frame: number;
    let present: boolean;
    if (va >= PAGE_OFFSET && va < PAGE_OFFSET + this.#phys.bytes) {
      const pfn = Math.floor((va - PAGE_OFFSET) / PAGE_SIZE);
      const f = this.#phys.flags[pfn]!;
      present = (f & PageFlag.DirectMapNotPresent) === 0;
      frame = (f & PageFlag.DirectMapShared) !== 0 ? pfn + this.#vtomPfn : pfn;
    } else {
      const pte = this.#lookup(va);
      if (pte === 0) return this.#fault("unmapped", va);
      // pteFlags(pte) & Present without the division: the flags are the low 12 bits of the PTE, and
      // `>>> 0` keeps its low 32 bits exactly.
      present = ((pte >>> 0) & Pte.Present) !== 0;
      frame = pteFrame(pte);
    }
    if (!present) return this.#fault("not-present", va);
    const shared = this.#vtomPfn > 0 && frame >= this.#vtomPfn;
    const pfn = shared ? frame - this.#vtomPfn : frame;
    if (pfn >= this.#phys.pages) return this.#fault("no-memory", va);
    if (this.#vtomPfn > 0) {
      const visible = (this.#phys.flags[pfn]! & PageFlag.HostVisible) !== 0;
      if (shared && !visible) return this.#fault("shared-alias-to-private-page", va);
      if (!shared && visible) return this.#fault("private-alias-to-shared-page", va);
    }
    return pfn * 2 + (shared ? 1 : 0);
  }

  /**
   * The kept entry that serves `va`, or -1: a miss of the translation cache (then the full path counts
   * its own hit or miss), a page whose backing is not kept or is stale, or an address that is not a
   * whole number (the full path refuses it). A vmalloc hit counts as the
   * translation-cache hit it is; the direct map has no translation to count.
   */
  #cached(va: number): number {
    // a fractional address takes the full path, whose physical layer refuses it
    if (Math.floor(va) !== va) return -1;
    if (va >= PAGE_OFFSET && va < PAGE_OFFSET + this.#phys.bytes) {
      const pfn = Math.floor((va - PAGE_OFFSET) / PAGE_SIZE);
      const e = pfn & (DIRECT_ENTRIES - 1);
      if (this.#directTag[e] !== pfn || this.#keptEpoch[TLB_ENTRIES + e] !== this.#phys.backingEpoch) {
        return -1;
      }
      return TLB_ENTRIES + e;
    }
    const vpn = Math.floor(va / PAGE_SIZE);
    const slot = tlbSlot(vpn);
    if (this.#tlbTag[slot] !== vpn || this.#keptEpoch[slot] !== this.#phys.backingEpoch) return -1;
    this.tlbHits++;
    return slot;
  }

  /**
   * After the full path resolved `va` (`resolved` = pfn × 2 + shared), keeps where the page's bytes
   * live, when the page has bytes of its own: beside its translation-cache entry, or by pfn for the
   * direct map.
   */
  #remember(va: number, resolved: number): void {
    const pfn = Math.floor(resolved / 2);
    const slab = this.#phys.backingSlab(pfn);
    if (slab === undefined) return;
    let e: number;
    if (va >= PAGE_OFFSET && va < PAGE_OFFSET + this.#phys.bytes) {
      const d = pfn & (DIRECT_ENTRIES - 1);
      this.#directTag[d] = pfn;
      e = TLB_ENTRIES + d;
    } else {
      const vpn = Math.floor(va / PAGE_SIZE);
      e = tlbSlot(vpn);
      if (this.#tlbTag[e] !== vpn) return;
    }
    this.#keptSlab[e] = slab;
    this.#keptBase[e] = this.#phys.backingOffset(pfn);
    this.#keptShared[e] = resolved & 1;
    this.#keptEpoch[e] = this.#phys.backingEpoch;
  }

  #lookup(va: number): number {
    const vpn = Math.floor(va / PAGE_SIZE);
    const slot = tlbSlot(vpn);
    if (this.#tlbTag[slot] === vpn) {
      this.tlbHits++;
      return this.#tlbPte[slot]!;
    }
    this.tlbMisses++;
    const pte = this.#tables.get(va);
    if (pte !== 0) {
      this.#tlbTag[slot] = vpn;
      this.#tlbPte[slot] = pte;
      this.#keptEpoch[slot] = -1;
    }
    return pte;
  }

  #fault(kind: FaultKind, va: number): never {
    this.faults[kind]++;
    throw new MemoryFault(kind, va);
  }
}

/**
 * The translation-cache slot of a virtual page number: vpn mod 4096, as its low 12 bits (`>>> 0` keeps the
 * low 32 bits of any vpn below 2^53 exactly), without a float division.
 */
function tlbSlot(vpn: number): number {
  return (vpn >>> 0) & (TLB_ENTRIES - 1);
}

/** A piece [at, at + len) of `buf` for readInto / writeFrom: whole bytes inside the buffer. */
function checkPiece(buf: Uint8Array, at: number, len: number): void {
  if (!(at >>> 0 === at && len >>> 0 === len && at + len <= buf.length)) {
    throw new RangeError(`${len} bytes at ${at} of a ${buf.length}-byte buffer`);
  }
}

/** The byte offset of `va` in its page (a fraction stays, for the physical layer to refuse). */
function pageOffset(va: number): number {
  return va - Math.floor(va / PAGE_SIZE) * PAGE_SIZE;
}
