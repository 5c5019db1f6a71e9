import { BuddyAllocator, Gfp } from "./buddy.js";
import { PAGE_OFFSET, PAGE_SIZE } from "./constants.js";
import { invalid } from "./errors.js";
import { FaultInjector } from "./fault-injector.js";
import { extfragIndex, unusableIndex } from "./fragmentation.js";
import { checkMemoryInvariants, type InvariantViolation } from "./invariants.js";
import { Kmalloc, type KmallocOptions } from "./kmalloc.js";
import { Mmu } from "./mmu.js";
import { PageTables, pteFrame } from "./page-table.js";
import { PageFlag, PhysicalMemory } from "./phys.js";
import { Vmalloc } from "./vmalloc.js";
import type { ZoneWatermarks } from "./watermark.js";

/**
 * How the vTOM bit appears in page tables: as part of the physical address (Linux 5.16–6.3, a buffer needs a
 * second mapping above vTOM) or as a protection bit that set_memory_decrypted adds to existing PTEs (6.4+).
 */
export type VtomMode = "address-bit" | "pte-bit";

export interface GuestMemoryOptions {
  /** Guest RAM in bytes (a multiple of 4 KiB). */
  readonly bytes: number;
  /** shared_gpa_boundary in bytes (vTOM); 0 or absent for a VM that is not isolated. */
  readonly sharedGpaBoundary?: number;
  readonly vtomMode?: VtomMode;
  /** Online CPUs (lazy_max_pages scales with them). */
  readonly cpus?: number;
  /**
   * Zone watermarks: "kernel" (the default) as __setup_per_zone_wmarks computes them for this size, or
   * explicit marks in pages (all zero lets a test fill memory to the last page).
   */
  readonly watermarks?: ZoneWatermarks | "kernel";
}

/** Page attribute changes of __change_page_attr_set_clr that the model supports. */
export interface PageAttrChange {
  /** Add (true) or remove (false) the shared/decrypted bit (cc_mkdec / cc_mkenc). */
  readonly shared?: boolean;
  /** Make the PTE present or not present (set_memory_p / set_memory_np). */
  readonly present?: boolean;
}

/**
 * A guest's memory: physical pages, the buddy allocator, slab kmalloc, the vmalloc range over real page
 * tables, and an MMU that checks the vTOM alias rules. Every layer above takes one of these.
 */
export class GuestMemory {
  readonly phys: PhysicalMemory;
  readonly buddy: BuddyAllocator;
  readonly kmalloc: Kmalloc;
  readonly pageTables: PageTables;
  readonly vmalloc: Vmalloc;
  readonly mmu: Mmu;
  readonly faults: FaultInjector = new FaultInjector();
  /** shared_gpa_boundary >> PAGE_SHIFT; 0 when not isolated. */
  readonly vtomPfn: number;
  readonly vtomMode: VtomMode;
  /** Page-attribute changes made (pages), for cost accounting. */
  cpaPages = 0;

  constructor(options: GuestMemoryOptions) {
    const boundary = options.sharedGpaBoundary ?? 0;
    if (!Number.isSafeInteger(boundary) || boundary < 0 || boundary % PAGE_SIZE !== 0) {
      throw invalid("vtom", `shared_gpa_boundary must be a page-aligned byte address, got ${boundary}`);
    }
    if (boundary > 0 && boundary < options.bytes) {
      throw invalid("vtom", "shared_gpa_boundary must lie above all guest RAM");
    }
    const cpus = options.cpus ?? 2;
    if (!Number.isInteger(cpus) || cpus < 1) throw invalid("cpus", `cpus must be >= 1, got ${cpus}`);
    this.vtomPfn = boundary / PAGE_SIZE;
    this.vtomMode = options.vtomMode ?? "address-bit";
    this.phys = new PhysicalMemory(options.bytes);
    this.buddy = new BuddyAllocator(this.phys, this.faults, options.watermarks ?? "kernel");
    this.kmalloc = new Kmalloc(this.phys, this.buddy, this.faults);
    let mmu: Mmu | undefined;
    this.pageTables = new PageTables(this.buddy, (va, pages) => mmu?.invalidateRange(va, pages));
    mmu = new Mmu(this.phys, this.pageTables, this.vtomPfn);
    this.mmu = mmu;
    this.vmalloc = new Vmalloc(this.phys, this.buddy, this.kmalloc, this.pageTables, {
      vtomPfn: this.vtomPfn,
      pteBit: this.vtomMode === "pte-bit",
      cpus,
      faults: this.faults,
    });
  }

  get isolated(): boolean {
    return this.vtomPfn > 0;
  }

  /** The direct-map address of a RAM page (page_address / __va). */
  pageToVirt(pfn: number): number {
    if (!this.phys.pfnValid(pfn)) throw invalid("pfn", `pfn ${pfn} is not guest RAM`);
    return PAGE_OFFSET + pfn * PAGE_SIZE;
  }

  isDirectMap(va: number): boolean {
    return va >= PAGE_OFFSET && va < PAGE_OFFSET + this.phys.bytes;
  }

  /** virt_to_phys(): linear-map addresses only, as on x86-64. */
  virtToPhys(va: number): number {
    if (!this.isDirectMap(va))
      throw invalid("virt-to-phys", `0x${va.toString(16)} is not a direct-map address`);
    return va - PAGE_OFFSET;
  }

  /**
   * The private-alias pfn behind a kernel address (virt_to_hvpfn / slow_virt_to_phys >> 12): linear
   * arithmetic for the direct map, a page-table walk for the vmalloc range.
   */
  virtToPfn(va: number): number {
    if (this.isDirectMap(va)) return Math.floor((va - PAGE_OFFSET) / PAGE_SIZE);
    if (this.vmalloc.isVmallocAddr(va)) {
      const frame = this.vmalloc.vmallocToPfn(va);
      return this.vtomPfn > 0 && frame >= this.vtomPfn ? frame - this.vtomPfn : frame;
    }
    throw invalid("virt-to-pfn", `0x${va.toString(16)} is neither direct-map nor vmalloc`);
  }

  /**
   * virtToPfn for `pages` consecutive pages from page-aligned `va`, into `out[at..]`: the pfns (and, for
   * a vmalloc range, the page-walk count and the first error) a loop of virtToPfn gives, read with one
   * walk per PTE table. What a caller filling a hypercall's PFN list (510 per page) wants.
   */
  virtToPfns(va: number, pages: number, out: Float64Array | number[], at = 0): void {
    if (this.isDirectMap(va) && this.isDirectMap(va + (pages - 1) * PAGE_SIZE)) {
      const first = Math.floor((va - PAGE_OFFSET) / PAGE_SIZE);
      for (let i = 0; i < pages; i++) out[at + i] = first + i;
      return;
    }
    if (this.vmalloc.isVmallocAddr(va) && this.vmalloc.isVmallocAddr(va + (pages - 1) * PAGE_SIZE)) {
      try {
        this.vmalloc.vmallocToPfns(va, pages, out, at);
      } finally {
        // The shared alias's frame names the same RAM page (entries from a failing page on are unspecified).
        if (this.vtomPfn > 0) {
          for (let i = at; i < at + pages; i++) if (out[i]! >= this.vtomPfn) out[i]! -= this.vtomPfn;
        }
      }
      return;
    }
    // A range that leaves its region: page by page, so the error is the one the loop would meet.
    for (let i = 0; i < pages; i++) out[at + i] = this.virtToPfn(va + i * PAGE_SIZE);
  }

  /** kvmalloc(): kmalloc first (without retry or warning above a page), vmalloc as the fallback. */
  kvmalloc(size: number, options: KmallocOptions): number | null {
    const gfp = options.gfp ?? 0;
    const kmallocGfp = size > PAGE_SIZE ? gfp | Gfp.NoRetry | Gfp.NoWarn : gfp;
    const va = this.kmalloc.kmalloc(size, { tag: options.tag, gfp: kmallocGfp });
    if (va !== null || size <= PAGE_SIZE) return va;
    return this.vmalloc.vmalloc(size, { tag: options.tag, gfp });
  }

  /** kvfree(). */
  kvfree(va: number): void {
    if (this.vmalloc.isVmallocAddr(va)) this.vmalloc.vfree(va);
    else this.kmalloc.kfree(va);
  }

  /**
   * __change_page_attr_set_clr() for `pages` pages at `va` (direct map or vmalloc range): adds or removes
   * the shared bit (frame ± vTOM) and/or the present bit, invalidating cached translations. A shared-bit
   * change on a vmalloc address also changes the page's direct-map alias (present-bit changes do not, as
   * change_page_attr_set_clr skips alias checks for _PAGE_PRESENT alone). Validates the whole range
   * before changing anything.
   */
  changePageAttr(va: number, pages: number, change: PageAttrChange): void {
    if (!Number.isInteger(pages) || pages <= 0)
      throw invalid("cpa-pages", `page count must be > 0, got ${pages}`);
    if (va % PAGE_SIZE !== 0) throw invalid("cpa-align", `0x${va.toString(16)} is not page aligned`);
    if (change.shared !== undefined && this.vtomPfn === 0) {
      throw invalid("cpa-not-isolated", "no shared bit exists in a VM without vTOM");
    }
    const direct = this.isDirectMap(va);
    if (direct) {
      const last = va + (pages - 1) * PAGE_SIZE;
      if (!this.isDirectMap(last)) {
        // The first page past the direct map's end is the one without a PTE.
        throw invalid("cpa-unmapped", `0x${(PAGE_OFFSET + this.phys.bytes).toString(16)} has no PTE`);
      }
      this.#changeDirectMap((va - PAGE_OFFSET) / PAGE_SIZE, pages, change);
    } else {
      const hole = this.pageTables.firstUnmapped(va, pages);
      if (hole !== -1) throw invalid("cpa-unmapped", `0x${hole.toString(16)} has no PTE`);
      if (change.shared !== undefined) {
        // cpa_process_alias: the direct-map alias of a vmalloc page changes with it, so that no
        // mapping keeps reaching the page through the wrong alias.
        const ptes = this.#scratch(pages);
        this.pageTables.read(va, pages, ptes);
        const flags = this.phys.flags;
        for (let i = 0; i < pages; i++) {
          const frame = pteFrame(ptes[i]!);
          const pfn = frame >= this.vtomPfn ? frame - this.vtomPfn : frame;
          if (!this.phys.pfnValid(pfn)) continue;
          if (change.shared) flags[pfn]! |= PageFlag.DirectMapShared;
          else flags[pfn]! &= ~PageFlag.DirectMapShared;
        }
        this.pageTables.setShared(va, pages, this.vtomPfn, change.shared);
      }
      if (change.present !== undefined) this.pageTables.setPresent(va, pages, change.present);
    }
    // direct-map attributes live in the page flags, not in PTEs the MMU's cache would drop
    this.phys.directMapChanged();
    this.cpaPages += pages;
  }

  /** The direct-map half of changePageAttr: the per-page flags of `pages` pages from `pfn`. */
  #changeDirectMap(pfn: number, pages: number, change: PageAttrChange): void {
    let set = 0;
    let clear = 0;
    if (change.shared === true) set |= PageFlag.DirectMapShared;
    if (change.shared === false) clear |= PageFlag.DirectMapShared;
    if (change.present === false) set |= PageFlag.DirectMapNotPresent;
    if (change.present === true) clear |= PageFlag.DirectMapNotPresent;
    const flags = this.phys.flags;
    for (let p = pfn; p < pfn + pages; p++) flags[p] = (flags[p]! | set) & ~clear;
  }

  #ptes = new Float64Array(0);

  /** A reused buffer of at least `pages` entries (no allocation per call once it has grown). */
  #scratch(pages: number): Float64Array {
    if (this.#ptes.length < pages) this.#ptes = new Float64Array(Math.max(pages, 2 * this.#ptes.length));
    return this.#ptes;
  }

  /** Whether the mapping of `va` currently carries the shared bit. */
  isSharedMapping(va: number): boolean {
    if (this.isDirectMap(va))
      return this.phys.hasFlag((va - PAGE_OFFSET) / PAGE_SIZE, PageFlag.DirectMapShared);
    const frame = pteFrame(this.pageTables.get(va));
    return this.vtomPfn > 0 && frame >= this.vtomPfn;
  }

  /** Invariants I1 and I4 (see `checkMemoryInvariants`). */
  checkInvariants(): InvariantViolation[] {
    return checkMemoryInvariants(this.phys, this.buddy);
  }

  /** Pages whose host visibility is unknown after a failed conversion (never reused). */
  get leakedPages(): number {
    return this.buddy.leakedPages;
  }

  /** /proc/buddyinfo for the one zone. */
  buddyinfo(): number[] {
    return this.buddy.buddyinfo();
  }

  /** Fragmentation indices (thousandths) for every order. */
  fragmentation(): { order: number; extfrag: number; unusable: number }[] {
    const info = this.buddy.buddyinfo();
    return info.map((_, order) => ({
      order,
      extfrag: extfragIndex(info, order),
      unusable: unusableIndex(info, order),
    }));
  }
}
