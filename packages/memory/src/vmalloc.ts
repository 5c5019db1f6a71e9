import { type BuddyAllocator, Gfp } from "./buddy.js";
import { IOREMAP_MAX_ORDER, PAGE_SIZE, VMALLOC_END, VMALLOC_START } from "./constants.js";
import { invalid, MemoryError } from "./errors.js";
import type { FaultInjector } from "./fault-injector.js";
import type { Kmalloc } from "./kmalloc.js";
import { type PageTables, Pte, pteFlags, pteFrame } from "./page-table.js";
import { PageFlag, type PhysicalMemory } from "./phys.js";

/** What created a vmalloc-range area (the flag /proc/vmallocinfo would print). */
export type VmAreaKind = "vmalloc" | "vmap" | "ioremap";

export interface VmArea {
  readonly start: number;
  /** Bytes mapped (nrPages × 4 KiB). */
  readonly size: number;
  /** Address space reserved: size plus the guard page. */
  readonly reserved: number;
  readonly align: number;
  readonly kind: VmAreaKind;
  readonly tag: string;
  /** Frames mapped, in order (RAM pfns, or pfn | vTOM for the shared alias). */
  readonly frames: Float64Array;
  /** vmalloc only: where its struct page array lives (kmalloc'd or a nested vmalloc area). */
  readonly pageArray: { readonly va: number; readonly bytes: number; readonly vmalloc: boolean } | null;
}

export interface VmallocOptions {
  readonly tag: string;
  readonly gfp?: number;
}

export interface VmapOptions {
  readonly tag: string;
  /** pgprot_decrypted(PAGE_KERNEL): the PTEs carry the vTOM bit (how 6.4+ maps VMBus rings). */
  readonly decrypted?: boolean;
}

/** The area's own copy of the frames it maps (a typed array's copy is one memcpy, not an iteration). */
function copyFrames(pfns: ArrayLike<number>): Float64Array {
  return pfns instanceof Float64Array ? pfns.slice() : Float64Array.from(pfns);
}

/** get_count_order_long(): ceil(log2(n)). */
function countOrder(n: number): number {
  let order = 0;
  while (2 ** order < n) order++;
  return order;
}

/**
 * The vmalloc range of mm/vmalloc.c: a lowest-address-first area allocator with one guard page per area,
 * the VM_IOREMAP alignment rule, lazy freeing of address space (purged past lazy_max_pages), and
 * vmalloc/vzalloc, vmap, vmap_pfn, vunmap, vfree and vmalloc_to_pfn on top of the kernel page tables.
 */
export class Vmalloc {
  readonly #buddy: BuddyAllocator;
  readonly #kmalloc: Kmalloc;
  readonly #tables: PageTables;
  readonly #phys: PhysicalMemory;
  readonly #faults: FaultInjector | undefined;
  readonly #vtomPfn: number;
  /** The vTOM pfn physical_mask removes from a PTE's frame (pte-bit era), else 0. */
  readonly #physicalMaskStrip: number;
  /** Busy and lazily freed areas, sorted by start. */
  #areas: { start: number; end: number; lazy: boolean }[] = [];
  readonly #live = new Map<number, VmArea>();
  #lazyPages = 0;
  readonly lazyMaxPages: number;
  purges = 0;
  failures = 0;
  /** Refusals of vmap_pfn for PFNs that have a struct page (WARN_ON_ONCE in the kernel). */
  vmapPfnRefusals = 0;
  /** Page-table walks made by vmalloc_to_pfn. */
  pageWalks = 0;

  constructor(
    phys: PhysicalMemory,
    buddy: BuddyAllocator,
    kmalloc: Kmalloc,
    tables: PageTables,
    options: { vtomPfn: number; pteBit: boolean; cpus: number; faults?: FaultInjector | undefined },
  ) {
    this.#phys = phys;
    this.#buddy = buddy;
    this.#kmalloc = kmalloc;
    this.#tables = tables;
    this.#vtomPfn = options.vtomPfn;
    this.#physicalMaskStrip = options.pteBit && options.vtomPfn > 0 ? options.vtomPfn : 0;
    this.#faults = options.faults;
    // lazy_max_pages(): fls(online CPUs) × 32 MiB.
    this.lazyMaxPages = (32 * 2 ** 20 * (32 - Math.clz32(options.cpus))) / PAGE_SIZE;
  }

  isVmallocAddr(va: number): boolean {
    return va >= VMALLOC_START && va < VMALLOC_END;
  }

  /** The live area that starts at `va` (find_vm_area), if any. */
  findArea(va: number): VmArea | undefined {
    return this.#live.get(va);
  }

  /** Live areas, as /proc/vmallocinfo lists them. */
  areas(): VmArea[] {
    return [...this.#live.values()].sort((a, b) => a.start - b.start);
  }

  /** vmalloc(): order-0 pages mapped contiguously in the vmalloc range; null on failure. */
  vmalloc(size: number, options: VmallocOptions): number | null {
    if (!Number.isSafeInteger(size) || size <= 0)
      throw invalid("vmalloc-size", `vmalloc size must be > 0, got ${size}`);
    if (this.#faults?.shouldFail("vmalloc")) return this.#fail();
    const nrPages = Math.ceil(size / PAGE_SIZE);
    const start = this.#reserve(nrPages * PAGE_SIZE, PAGE_SIZE);
    if (start === null) return this.#fail();
    // The struct page array: kmalloc'd when it fits a page, else a nested vmalloc (__vmalloc_area_node).
    const arrayBytes = nrPages * 8;
    const nested = arrayBytes > PAGE_SIZE;
    const arrayVa = nested
      ? this.vmalloc(arrayBytes, { tag: "vmalloc-page-array" })
      : this.#kmalloc.kmalloc(arrayBytes, { tag: "vmalloc-page-array" });
    if (arrayVa === null) {
      this.#unreserve(start);
      return this.#fail();
    }
    const frames = new Float64Array(nrPages);
    // vm_area_alloc_pages: order-0 GFP_KERNEL pages (unmovable, not costly: the slow path reclaims and retries).
    const gfp = (options.gfp ?? 0) & Gfp.Zero;
    const got = this.#buddy.allocPagesBulk(nrPages, { tag: options.tag, gfp }, frames);
    const mapped = got === nrPages && this.#mapFrames(start, frames, Pte.Present | Pte.Rw);
    if (!mapped) {
      for (let i = 0; i < got; i++) this.#buddy.freePages(frames[i]!, 0);
      if (nested) this.vfree(arrayVa);
      else this.#kmalloc.kfree(arrayVa);
      this.#unreserve(start);
      return this.#fail();
    }
    this.#record(start, {
      start,
      size: nrPages * PAGE_SIZE,
      reserved: nrPages * PAGE_SIZE + PAGE_SIZE,
      align: PAGE_SIZE,
      kind: "vmalloc",
      tag: options.tag,
      frames,
      pageArray: { va: arrayVa, bytes: arrayBytes, vmalloc: nested },
    });
    return start;
  }

  /** vzalloc(). */
  vzalloc(size: number, options: VmallocOptions): number | null {
    return this.vmalloc(size, { tag: options.tag, gfp: (options.gfp ?? 0) | Gfp.Zero });
  }

  /** vmap(pages, VM_MAP, PAGE_KERNEL): maps existing RAM pages contiguously. */
  vmap(pfns: ArrayLike<number>, options: VmapOptions): number | null {
    if (pfns.length === 0) throw invalid("vmap-empty", "vmap of zero pages");
    for (let i = 0; i < pfns.length; i++) {
      if (!this.#phys.pfnValid(pfns[i]!))
        throw invalid("vmap-pfn", `vmap of pfn ${pfns[i]}, which is not RAM`);
    }
    const frames = copyFrames(pfns);
    if (options.decrypted) {
      if (this.#vtomPfn === 0) throw invalid("vmap-decrypted", "no shared bit exists in a VM without vTOM");
      for (let i = 0; i < frames.length; i++) frames[i]! += this.#vtomPfn;
    }
    return this.#mapArea(frames, "vmap", PAGE_SIZE, Pte.Present | Pte.Rw, options.tag);
  }

  /**
   * vmap_pfn(pfns, PAGE_KERNEL_IO): a VM_IOREMAP area of special PTEs. PFNs that have a struct page are
   * refused (WARN_ON_ONCE, area freed, NULL) — the shared alias pfn + vTOM has none, which is why
   * hv_map_memory can use it.
   */
  vmapPfn(pfns: ArrayLike<number>, options: VmapOptions): number | null {
    if (pfns.length === 0) throw invalid("vmap-empty", "vmap_pfn of zero pages");
    const phys = this.#phys;
    for (let i = 0; i < pfns.length; i++) {
      const pfn = pfns[i]!;
      if (!Number.isSafeInteger(pfn) || pfn < 0) throw invalid("vmap-pfn", `bad pfn ${pfn}`);
      if (phys.pfnValid(pfn)) {
        this.vmapPfnRefusals++;
        return null;
      }
    }
    const size = pfns.length * PAGE_SIZE;
    const align = 2 ** Math.min(Math.max(countOrder(size), 12), IOREMAP_MAX_ORDER);
    return this.#mapArea(copyFrames(pfns), "ioremap", align, Pte.Present | Pte.Rw | Pte.Special, options.tag);
  }

  /** vunmap(): clears the PTEs and releases the address space lazily; the pages are not freed. */
  vunmap(va: number): void {
    const area = this.#live.get(va);
    if (!area) throw invalid("vunmap-unknown", `vunmap of 0x${va.toString(16)}, which starts no vm area`);
    this.#tables.unmap(va, area.frames.length);
    this.#live.delete(va);
    this.#lazyFree(va, area.reserved);
  }

  /**
   * vfree(): unmaps a vmalloc area and frees its pages and page array. Refuses (changing nothing) if any
   * page may not be freed — leaked or still host-visible.
   */
  vfree(va: number): void {
    const area = this.#live.get(va);
    if (!area) throw invalid("vfree-unknown", `vfree of 0x${va.toString(16)}, which vmalloc did not return`);
    if (area.kind !== "vmalloc") throw invalid("vfree-not-vmalloc", `vfree of a ${area.kind} area`);
    const frames = area.frames;
    this.#checkFreeable(frames);
    this.vunmap(va);
    const buddy = this.#buddy;
    for (let i = 0; i < frames.length; i++) buddy.freePages(frames[i]!, 0);
    const array = area.pageArray!;
    if (array.vmalloc) this.vfree(array.va);
    else this.#kmalloc.kfree(array.va);
  }

  /**
   * vmalloc_to_pfn(): walks the page tables. In the pte-bit era the vTOM bit is masked off as
   * physical_mask does; in the address-bit era an alias above vTOM returns pfn + vTOM.
   */
  vmallocToPfn(va: number): number {
    this.pageWalks++;
    const pte = this.#tables.get(va);
    if (pte === 0) throw invalid("vmalloc-to-pfn", `0x${va.toString(16)} is not mapped`);
    return this.#pfnOfPte(pte);
  }

  /**
   * vmalloc_to_pfn for `pages` consecutive pages from page-aligned `va`, into `out[at..]`: what a
   * caller's loop of vmallocToPfn computes (the same pfns, the same per-page walk count, the same error
   * at the first unmapped page, with the pfns before it written), read with one walk per PTE table.
   */
  vmallocToPfns(va: number, pages: number, out: Float64Array | number[], at = 0): void {
    this.#tables.read(va, pages, out, at);
    for (let i = 0; i < pages; i++) {
      const pte = out[at + i]!;
      if (pte === 0) {
        this.pageWalks += i + 1;
        throw invalid("vmalloc-to-pfn", `0x${(va + i * PAGE_SIZE).toString(16)} is not mapped`);
      }
      out[at + i] = this.#pfnOfPte(pte);
    }
    this.pageWalks += pages;
  }

  #pfnOfPte(pte: number): number {
    const frame = pteFrame(pte);
    const strip = this.#physicalMaskStrip;
    return strip > 0 && frame >= strip ? frame - strip : frame;
  }

  /** The raw PTE of a vmalloc-range address (0 if none). */
  pte(va: number): number {
    return this.#tables.get(va);
  }

  /** Whether the PTE of `va` is present. */
  present(va: number): boolean {
    return (pteFlags(this.#tables.get(va)) & Pte.Present) !== 0;
  }

  /** Address space held by areas freed but not yet purged. */
  get lazyPages(): number {
    return this.#lazyPages;
  }

  /** Makes lazily freed address space reusable (__purge_vmap_area_lazy, with its TLB flush). */
  purge(): void {
    this.#areas = this.#areas.filter((a) => !a.lazy);
    this.#lazyPages = 0;
    this.purges++;
  }

  /**
   * One pass over the pages vfree will free: a page that is not allocated is a model bug (thrown first,
   * wherever it is); otherwise the first leaked or still host-visible page refuses the free (EBUSY).
   */
  #checkFreeable(frames: Float64Array): void {
    const flags = this.#phys.flags;
    let refused = -1;
    for (let i = 0; i < frames.length; i++) {
      const pfn = frames[i]!;
      if (!this.#buddy.isAllocated(pfn)) throw new Error(`vmalloc area page ${pfn} is not allocated`);
      if (refused < 0 && (flags[pfn]! & (PageFlag.Leaked | PageFlag.HostVisible)) !== 0) {
        if ((flags[pfn]! & PageFlag.Leaked) !== 0 || !this.#buddy.visibleFreeAllowed(pfn)) refused = i;
      }
    }
    if (refused < 0) return;
    const pfn = frames[refused]!;
    if (this.#phys.hasFlag(pfn, PageFlag.Leaked)) {
      throw new MemoryError(
        "EBUSY",
        "free-leaked",
        `vfree of a buffer whose page 0x${pfn.toString(16)} is leaked`,
      );
    }
    throw new MemoryError(
      "EBUSY",
      "free-host-visible",
      `vfree of a buffer whose page 0x${pfn.toString(16)} is host-visible`,
    );
  }

  #mapArea(frames: Float64Array, kind: VmAreaKind, align: number, flags: number, tag: string): number | null {
    const size = frames.length * PAGE_SIZE;
    const start = this.#reserve(size, align);
    if (start === null) return this.#fail();
    if (!this.#mapFrames(start, frames, flags)) {
      this.#unreserve(start);
      return this.#fail();
    }
    this.#record(start, {
      start,
      size,
      reserved: size + PAGE_SIZE,
      align,
      kind,
      tag,
      frames,
      pageArray: null,
    });
    return start;
  }

  #mapFrames(start: number, frames: Float64Array, flags: number): boolean {
    const mapped = this.#tables.map(start, frames, flags);
    if (mapped === frames.length) return true;
    this.#tables.unmap(start, mapped);
    return false;
  }

  #record(start: number, area: VmArea): void {
    this.#live.set(start, area);
  }

  /** alloc_vmap_area(): lowest fitting address, size + guard page; purges lazily freed space once on failure. */
  #reserve(size: number, align: number): number | null {
    const reserved = size + PAGE_SIZE;
    let start = this.#findGap(reserved, align);
    if (start === null && this.#lazyPages > 0) {
      this.purge();
      start = this.#findGap(reserved, align);
    }
    if (start === null) return null;
    const entry = { start, end: start + reserved, lazy: false };
    const at = this.#areas.findIndex((a) => a.start > start);
    if (at === -1) this.#areas.push(entry);
    else this.#areas.splice(at, 0, entry);
    return start;
  }

  #unreserve(start: number): void {
    this.#areas = this.#areas.filter((a) => a.start !== start);
  }

  #findGap(reserved: number, align: number): number | null {
    let cursor = VMALLOC_START;
    for (const a of this.#areas) {
      const candidate = Math.ceil(cursor / align) * align;
      if (candidate + reserved <= a.start) return candidate;
      if (a.end > cursor) cursor = a.end;
    }
    const candidate = Math.ceil(cursor / align) * align;
    return candidate + reserved <= VMALLOC_END ? candidate : null;
  }

  #lazyFree(start: number, reserved: number): void {
    const slot = this.#areas.find((a) => a.start === start);
    if (slot) slot.lazy = true;
    this.#lazyPages += reserved / PAGE_SIZE;
    if (this.#lazyPages > this.lazyMaxPages) this.purge();
  }

  #fail(): null {
    this.failures++;
    return null;
  }
}
