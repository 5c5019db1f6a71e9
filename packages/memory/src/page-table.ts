import { type BuddyAllocator, Gfp } from "./buddy.js";
import { PAGE_SIZE, PTRS_PER_TABLE } from "./constants.js";

/** PTE flag bits the model uses (x86 layout: present bit 0, RW bit 1, _PAGE_SPECIAL = software bit 9). */
export const Pte = {
  Present: 0x1,
  Rw: 0x2,
  Special: 0x200,
} as const;

/** A PTE is one JS number: frame × 4096 + flag bits. The frame may carry the vTOM bit (pfn | vTOM pfn). */
export function makePte(frame: number, flags: number): number {
  return frame * PAGE_SIZE + flags;
}
export function pteFrame(pte: number): number {
  return Math.floor(pte / PAGE_SIZE);
}
export function pteFlags(pte: number): number {
  return pte - Math.floor(pte / PAGE_SIZE) * PAGE_SIZE;
}

export const TABLE_LEVELS = ["pgd", "pud", "pmd", "pte"] as const;
export type TableLevel = (typeof TABLE_LEVELS)[number];

/** Bytes one PTE table maps (PMD_SIZE, 2 MiB): the unit of every range walk. */
const PMD_SPAN = PTRS_PER_TABLE * PAGE_SIZE;
/** The model keeps kernel VAs as their low 48 bits (4-level paging): anything else has no PTE. */
const VA_LIMIT = 2 ** 48;

/** One table page: its 512 entries, and for the upper levels the tables its entries point to. */
interface Table {
  readonly entries: Float64Array;
  readonly children: (Table | null)[] | null;
}

/**
 * Kernel 4-level page tables (init_mm) for the vmalloc range. Every table page is a real order-0 page
 * from the buddy allocator (tag "pagetable"), counted by level. Table pages are not freed when a range is
 * unmapped, as vunmap leaves the vmalloc page tables in place.
 *
 * The entries are kept beside the page (a Float64Array of 512 per table page) rather than in its bytes:
 * nothing but the MMU walks them, and the host can never see a private table page. The tables form a tree
 * of child references, and the index arithmetic works on the PMD-sized chunk number (va / 2 MiB, below
 * 2^27), so every index is a small-integer shift and mask. Range operations walk from the root once per
 * PTE table (512 pages), as the kernel's vmap_pte_range / apply_to_page_range do; the last PTE table
 * reached is remembered, since table pages are never freed.
 */
export class PageTables {
  readonly #buddy: BuddyAllocator;
  readonly #root: Table;
  readonly #onChange: (va: number, pages: number) => void;
  #lastChunk = -1;
  #lastLeaf: Float64Array | null = null;
  readonly root: number;
  /** Table pages allocated, per level (pgd, pud, pmd, pte). */
  readonly tablePages: Record<TableLevel, number> = { pgd: 0, pud: 0, pmd: 0, pte: 0 };

  /** `onChange(va, pages)` is told of every PTE write (for TLB invalidation). */
  constructor(buddy: BuddyAllocator, onChange: (va: number, pages: number) => void) {
    this.#buddy = buddy;
    this.#onChange = onChange;
    const root = this.#newTable(0);
    if (root === null) throw new Error("no memory for the kernel page-table root");
    this.root = root.pfn;
    this.#root = root.table;
  }

  get totalTablePages(): number {
    return this.tablePages.pgd + this.tablePages.pud + this.tablePages.pmd + this.tablePages.pte;
  }

  /** Reads the PTE for `va`; 0 when no table or entry exists. */
  get(va: number): number {
    const leaf = this.#leaf(va, false);
    return leaf === null ? 0 : leaf[pteIndex(va)]!;
  }

  /**
   * Writes the PTE for `va`, allocating missing table pages (pte_alloc_kernel). Returns false, writing
   * nothing, when a table page cannot be allocated.
   */
  set(va: number, pte: number): boolean {
    const leaf = this.#leaf(va, true);
    if (leaf === null) return false;
    leaf[pteIndex(va)] = pte;
    this.#onChange(va, 1);
    return true;
  }

  /** Rewrites an existing PTE through `update`; false if there is none. Used by change_page_attr. */
  update(va: number, update: (pte: number) => number): boolean {
    const leaf = this.#leaf(va, false);
    if (leaf === null) return false;
    const index = pteIndex(va);
    if (leaf[index] === 0) return false;
    leaf[index] = update(leaf[index]!);
    this.#onChange(va, 1);
    return true;
  }

  /** Clears the PTE for `va` (the table pages stay). */
  clear(va: number): void {
    const leaf = this.#leaf(va, false);
    if (leaf === null) return;
    leaf[pteIndex(va)] = 0;
    this.#onChange(va, 1);
  }

  /**
   * vmap_pages_range(): maps `frames.length` pages at page-aligned `va`, page i to frame `frames[i]`
   * with `flags`, allocating table pages as it goes. Stops at the first table page that cannot be
   * allocated and returns how many PTEs it wrote (the caller unmaps them, as vmap's error path does);
   * `frames.length` on success. Equal to `set` page by page, with one walk per PTE table.
   */
  map(va: number, frames: ArrayLike<number>, flags: number): number {
    return this.#walk(va, frames.length, true, (leaf, first, n, done) => {
      for (let i = 0; i < n; i++) leaf![first + i] = frames[done + i]! * PAGE_SIZE + flags;
      this.#onChange(va + done * PAGE_SIZE, n);
      return true;
    });
  }

  /** `map` for a physically contiguous run: page i to frame `frame + i`. Returns the PTEs written. */
  mapRun(va: number, frame: number, pages: number, flags: number): number {
    return this.#walk(va, pages, true, (leaf, first, n, done) => {
      const pte = (frame + done) * PAGE_SIZE + flags;
      for (let i = 0; i < n; i++) leaf![first + i] = pte + i * PAGE_SIZE;
      this.#onChange(va + done * PAGE_SIZE, n);
      return true;
    });
  }

  /** vunmap_range(): clears the PTEs of `pages` pages at `va` (missing tables are skipped; tables stay). */
  unmap(va: number, pages: number): void {
    this.#walk(va, pages, false, (leaf, first, n, done) => {
      if (leaf === null) return true;
      leaf.fill(0, first, first + n);
      this.#onChange(va + done * PAGE_SIZE, n);
      return true;
    });
  }

  /**
   * Copies the PTEs of `pages` pages at `va` into `out[at..]` (0 where none exists): one walk per PTE
   * table. What vmalloc_to_page over a range and the CPA checks read.
   */
  read(va: number, pages: number, out: Float64Array | number[], at = 0): void {
    this.#walk(va, pages, false, (leaf, first, n, done) => {
      if (leaf === null) for (let i = 0; i < n; i++) out[at + done + i] = 0;
      else if (out instanceof Float64Array) out.set(leaf.subarray(first, first + n), at + done);
      else for (let i = 0; i < n; i++) out[at + done + i] = leaf[first + i]!;
      return true;
    });
  }

  /** The first page-aligned address in [va, va + pages × 4 KiB) without a PTE, or -1 if all have one. */
  firstUnmapped(va: number, pages: number): number {
    let hole = -1;
    this.#walk(va, pages, false, (leaf, first, n, done) => {
      for (let i = 0; i < n && hole === -1; i++) {
        if (leaf === null || leaf[first + i] === 0) hole = va + (done + i) * PAGE_SIZE;
      }
      return hole === -1;
    });
    return hole;
  }

  /**
   * set_memory_p / set_memory_np over a range: sets or clears the present bit of every existing PTE
   * (missing ones are skipped, as `update` skips them). Returns the PTEs changed.
   */
  setPresent(va: number, pages: number, present: boolean): number {
    let changed = 0;
    this.#walk(va, pages, false, (leaf, first, n, done) => {
      if (leaf === null) return true;
      for (let i = first; i < first + n; i++) {
        const pte = leaf[i]!;
        if (pte === 0) continue;
        const hasPresent = (pteFlags(pte) & Pte.Present) !== 0;
        if (present && !hasPresent) leaf[i] = pte + Pte.Present;
        else if (!present && hasPresent) leaf[i] = pte - Pte.Present;
        changed++;
      }
      this.#onChange(va + done * PAGE_SIZE, n);
      return true;
    });
    return changed;
  }

  /**
   * cc_mkdec / cc_mkenc over a range: adds the vTOM bit (frame + `vtomPfn`) to, or removes it from,
   * every existing PTE whose frame lacks or has it; other PTEs and missing ones are left alone. Returns
   * the PTEs visited (existing ones).
   */
  setShared(va: number, pages: number, vtomPfn: number, shared: boolean): number {
    let visited = 0;
    // frame >= vtomPfn exactly when pte >= vtomPfn × 4096 (the flags sit below one frame).
    const boundary = vtomPfn * PAGE_SIZE;
    this.#walk(va, pages, false, (leaf, first, n, done) => {
      if (leaf === null) return true;
      for (let i = first; i < first + n; i++) {
        const pte = leaf[i]!;
        if (pte === 0) continue;
        const isShared = vtomPfn > 0 && pte >= boundary;
        if (shared && !isShared) leaf[i] = pte + boundary;
        else if (!shared && isShared) leaf[i] = pte - boundary;
        visited++;
      }
      this.#onChange(va + done * PAGE_SIZE, n);
      return true;
    });
    return visited;
  }

  /** Table pages that a mapping of [va, va + bytes) would need beyond those that exist now. */
  missingTablePages(va: number, bytes: number): number {
    if (!(bytes > 0)) return 0;
    const pages = Math.ceil(bytes / PAGE_SIZE);
    const firstChunk = Math.floor(va / PMD_SPAN);
    const lastChunk = Math.floor((va + (pages - 1) * PAGE_SIZE) / PMD_SPAN);
    let missing = 0;
    let countedPud = -1;
    let countedPmd = -1;
    for (let chunk = firstChunk; chunk <= lastChunk; chunk++) {
      const pgdIndex = chunk >>> 18;
      const pmdKey = chunk >>> 9;
      const pud = this.#root.children![pgdIndex] ?? null;
      if (pud === null) {
        if (countedPud !== pgdIndex) {
          countedPud = pgdIndex;
          missing++;
        }
      }
      const pmd = pud === null ? null : (pud.children![pmdKey & 511] ?? null);
      if (pmd === null) {
        if (countedPmd !== pmdKey) {
          countedPmd = pmdKey;
          missing++;
        }
      }
      if (pmd === null || (pmd.children![chunk & 511] ?? null) === null) missing++;
    }
    return missing;
  }

  /**
   * The one range walk: for each PTE table over `pages` pages from `va`, `visit(leaf, first, n, done)`
   * with the table (null if missing and not `create`d), the index of the range's first entry in it,
   * how many entries of the range it holds, and the pages before them. Stops when `visit` returns
   * false or, with `create`, when a table page cannot be allocated; returns the pages visited.
   */
  #walk(
    va: number,
    pages: number,
    create: boolean,
    visit: (leaf: Float64Array | null, first: number, n: number, done: number) => boolean,
  ): number {
    let done = 0;
    while (done < pages) {
      const addr = va + done * PAGE_SIZE;
      const leaf = this.#leaf(addr, create);
      if (leaf === null && create) break;
      const first = pteIndex(addr);
      const n = Math.min(PTRS_PER_TABLE - first, pages - done);
      if (!visit(leaf, first, n, done)) break;
      done += n;
    }
    return done;
  }

  /**
   * The PTE table covering `va` (walking pgd → pud → pmd), or null when a level is missing and `create`
   * is false or a table page cannot be allocated. Missing levels are allocated top down, as
   * pud_alloc / pmd_alloc / pte_alloc_kernel do; a failed allocation keeps the levels made before it.
   */
  #leaf(va: number, create: boolean): Float64Array | null {
    if (!(va >= 0 && va < VA_LIMIT)) return null;
    const chunk = Math.floor(va / PMD_SPAN);
    if (chunk === this.#lastChunk) return this.#lastLeaf;
    let table = this.#root;
    // chunk < 2^27: its bits 18..26 index the PGD, 9..17 the PUD, 0..8 the PMD.
    for (let level = 0; level < 3; level++) {
      const index = (chunk >>> (18 - 9 * level)) & 511;
      let child = table.children![index] ?? null;
      if (child === null) {
        if (!create) return null;
        const made = this.#newTable(level + 1);
        if (made === null) return null;
        child = made.table;
        table.children![index] = child;
        table.entries[index] = makePte(made.pfn, Pte.Present | Pte.Rw);
      }
      table = child;
    }
    this.#lastChunk = chunk;
    this.#lastLeaf = table.entries;
    return table.entries;
  }

  #newTable(level: number): { pfn: number; table: Table } | null {
    const pfn = this.#buddy.allocPages(0, { tag: "pagetable", gfp: Gfp.Zero });
    if (pfn === null) return null;
    const table: Table = {
      entries: new Float64Array(PTRS_PER_TABLE),
      children: level < 3 ? new Array<Table | null>(PTRS_PER_TABLE).fill(null) : null,
    };
    this.tablePages[TABLE_LEVELS[level]!]++;
    return { pfn, table };
  }
}

/** The PTE index of `va` inside its table: bits 12..20, from the offset inside the 2 MiB chunk. */
function pteIndex(va: number): number {
  return ((va - Math.floor(va / PMD_SPAN) * PMD_SPAN) / PAGE_SIZE) | 0;
}
