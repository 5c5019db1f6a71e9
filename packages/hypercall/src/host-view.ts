import {
  BackingCache,
  type GuestMemory,
  insidePage,
  PAGE_SIZE,
  PageFlag,
  type PhysicalMemory,
} from "@ivm/memory";
import { HypercallError } from "./errors.js";

/**
 * The host's view of guest memory: by guest physical address, through either alias (below vTOM or
 * pfn | vTOM), and only where the page is host-visible (in a VM without isolation, all RAM). A refused
 * access is counted and thrown as a typed error before any byte moves (invariant I2).
 */
export class HostView {
  // Fixed for the guest's life, read once: every access asks for them.
  readonly #phys: PhysicalMemory;
  /** shared_gpa_boundary in bytes; 0 without isolation. */
  readonly #vtom: number;
  readonly #word = new Uint8Array(4);
  // the word of an access that crosses a page, encoded once per access through a view made once
  readonly #wordView = new DataView(this.#word.buffer);
  refused = 0;
  bytesRead = 0;
  bytesWritten = 0;
  /**
   * Accesses that completed although a page they touched was not host-visible. Invariant I2 says this
   * stays 0; it is re-checked after every copy, independently of the gate, so a bug in the gate's
   * address arithmetic shows up as a count (and a throw) rather than as a silent leak.
   */
  privateHits = 0;
  /**
   * Where the pages the host has just reached keep their bytes (the few pages of its rings it touches
   * for every packet): an access inside one kept page skips the gate's walk and goes straight to the
   * bytes. Only pages that passed the gate are kept, and a visibility flip drops them all.
   */
  readonly #cache: BackingCache;

  constructor(memory: GuestMemory) {
    this.#phys = memory.phys;
    this.#vtom = memory.vtomPfn * PAGE_SIZE;
    this.#cache = new BackingCache(memory.phys);
  }

  /** Whether the host may touch every page of [gpa, gpa + len). */
  accessible(gpa: number, len: number): boolean {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0) return false;
    const pa = this.#private(gpa);
    const phys = this.#phys;
    if (pa + len > phys.bytes) return false;
    if (this.#vtom === 0) return true;
    const first = Math.floor(pa / PAGE_SIZE);
    const last = Math.floor((pa + Math.max(len, 1) - 1) / PAGE_SIZE);
    const flags = phys.flags;
    for (let pfn = first; pfn <= last; pfn++) {
      if ((flags[pfn]! & PageFlag.HostVisible) === 0) return false;
    }
    return true;
  }

  read(gpa: number, dst: Uint8Array): void {
    const n = dst.length;
    const e = this.#kept(gpa, n);
    if (e >= 0) this.#cache.read(e, pageOffset(gpa), dst, 0, n);
    else {
      this.#check(gpa, n);
      this.#phys.read(this.#private(gpa), dst);
      this.#assertVisible(gpa, n);
      this.#keep(gpa, n);
    }
    this.bytesRead += n;
  }

  write(gpa: number, src: Uint8Array): void {
    const n = src.length;
    const e = this.#kept(gpa, n);
    if (e >= 0) this.#cache.write(e, pageOffset(gpa), src, 0, n);
    else {
      this.#check(gpa, n);
      this.#phys.write(this.#private(gpa), src);
      this.#assertVisible(gpa, n);
      this.#keep(gpa, n);
    }
    this.bytesWritten += n;
  }

  /**
   * The little-endian u32 at `gpa`: read() of four bytes (the same gate, refusal, I2 re-check and
   * counters) without a buffer, for a word inside one page (a ring header field); a word that crosses
   * a page goes through read().
   */
  readU32(gpa: number): number {
    if (pageOffset(gpa) > PAGE_SIZE - 4) {
      this.read(gpa, this.#word);
      return this.#wordView.getUint32(0, true);
    }
    const e = this.#kept(gpa, 4);
    if (e >= 0) {
      this.bytesRead += 4;
      return this.#cache.readU32(e, pageOffset(gpa));
    }
    this.#check(gpa, 4);
    const value = this.#phys.readU32(this.#private(gpa));
    this.#assertVisible(gpa, 4);
    this.#keep(gpa, 4);
    this.bytesRead += 4;
    return value;
  }

  /** write() of a little-endian u32 (same gate and counters), without a buffer inside one page. */
  writeU32(gpa: number, value: number): void {
    if (pageOffset(gpa) > PAGE_SIZE - 4) {
      this.#wordView.setUint32(0, value >>> 0, true);
      this.write(gpa, this.#word);
      return;
    }
    const e = this.#kept(gpa, 4);
    if (e >= 0) this.#cache.writeU32(e, pageOffset(gpa), value);
    else {
      this.#check(gpa, 4);
      this.#phys.writeU32(this.#private(gpa), value);
      this.#assertVisible(gpa, 4);
      this.#keep(gpa, 4);
    }
    this.bytesWritten += 4;
  }

  /** I2 post-condition: every page the copy touched is host-visible (a model bug otherwise). */
  #assertVisible(gpa: number, len: number): void {
    const vtom = this.#vtom;
    if (vtom === 0 || len === 0) return;
    const pa = gpa >= vtom ? gpa - vtom : gpa;
    const flags = this.#phys.flags;
    for (let pfn = Math.floor(pa / PAGE_SIZE); pfn * PAGE_SIZE < pa + len; pfn++) {
      if ((flags[pfn]! & PageFlag.HostVisible) === 0) {
        this.privateHits++;
        throw new Error(`I2 broken: host access to 0x${gpa.toString(16)}+${len} reached private pfn ${pfn}`);
      }
    }
  }

  /**
   * The cache entry serving an access of `len` bytes at `gpa` that lies inside one kept page, or -1. The
   * I2 re-check still runs on a hit, before the bytes move: a kept page is host-visible by construction.
   */
  #kept(gpa: number, len: number): number {
    if (!insidePage(pageOffset(gpa), len)) return -1;
    const pfn = Math.floor(this.#private(gpa) / PAGE_SIZE);
    const e = this.#cache.find(pfn);
    if (e >= 0 && this.#vtom > 0 && (this.#phys.flags[pfn]! & PageFlag.HostVisible) === 0) {
      this.#assertVisible(gpa, len);
    }
    return e;
  }

  /** After an access inside one page passed the gate: keep where that page's bytes live. */
  #keep(gpa: number, len: number): void {
    if (insidePage(pageOffset(gpa), len)) this.#cache.remember(Math.floor(this.#private(gpa) / PAGE_SIZE));
  }

  /** The private-alias address of either alias. */
  #private(gpa: number): number {
    const vtom = this.#vtom;
    return vtom > 0 && gpa >= vtom ? gpa - vtom : gpa;
  }

  #check(gpa: number, len: number): void {
    if (!this.accessible(gpa, len)) {
      this.refused++;
      throw new HypercallError(
        "EACCES",
        "host-access-refused",
        `host access to 0x${gpa.toString(16)}+${len} refused`,
      );
    }
  }
}

/**
 * The byte offset of `gpa` in its page, as `gpa % PAGE_SIZE` but without a float remainder (an address
 * above vTOM is no small integer); anything not a valid address is refused by the gate either way.
 */
function pageOffset(gpa: number): number {
  return gpa - Math.floor(gpa / PAGE_SIZE) * PAGE_SIZE;
}
