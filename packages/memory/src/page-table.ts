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
  return pte % PAGE_SIZE;
}

const LEVEL_SHIFT = [39, 30, 21, 12] as const; // PGD, PUD, PMD, PTE index positions
export const TABLE_LEVELS = ["pgd", "pud", "pmd", "pte"] as const;
export type TableLevel = (typeof TABLE_LEVELS)[number];

function indexAt(va: number, level: number): number {
  return Math.floor(va / 2 ** LEVEL_SHIFT[level]!) % PTRS_PER_TABLE;
}

/**
 * Kernel 4-level page tables (init_mm) for the vmalloc range. Every table page is a real order-0 page
 * from the buddy allocator (tag "pagetable"), counted by level. Table pages are not freed when a range is
 * unmapped, as vunmap leaves the vmalloc page tables in place.
 *
 * The entries are kept beside the page (a Float64Array of 512 per table page) rather than in its bytes:
 * nothing but the MMU walks them, and the host can never see a private table page.
 */
export class PageTables {
  readonly #buddy: BuddyAllocator;
  readonly #tables = new Map<number, Float64Array>();
  readonly #onChange: (va: number) => void;
  readonly root: number;
  /** Table pages allocated, per level (pgd, pud, pmd, pte). */
  readonly tablePages: Record<TableLevel, number> = { pgd: 0, pud: 0, pmd: 0, pte: 0 };

  constructor(buddy: BuddyAllocator, onChange: (va: number) => void) {
    this.#buddy = buddy;
    this.#onChange = onChange;
    const root = this.#newTable(0);
    if (root === null) throw new Error("no memory for the kernel page-table root");
    this.root = root;
  }

  get totalTablePages(): number {
    return this.tablePages.pgd + this.tablePages.pud + this.tablePages.pmd + this.tablePages.pte;
  }

  /** Reads the PTE for `va`; 0 when no table or entry exists. */
  get(va: number): number {
    let table = this.#tables.get(this.root)!;
    for (let level = 0; level < 3; level++) {
      const entry = table[indexAt(va, level)]!;
      if (entry === 0) return 0;
      table = this.#tables.get(pteFrame(entry))!;
    }
    return table[indexAt(va, 3)]!;
  }

  /**
   * Writes the PTE for `va`, allocating missing table pages (pte_alloc_kernel). Returns false, writing
   * nothing, when a table page cannot be allocated.
   */
  set(va: number, pte: number): boolean {
    const table = this.#leafTable(va, true);
    if (!table) return false;
    table[indexAt(va, 3)] = pte;
    this.#onChange(va);
    return true;
  }

  /** Rewrites an existing PTE through `update`; false if there is none. Used by change_page_attr. */
  update(va: number, update: (pte: number) => number): boolean {
    const table = this.#leafTable(va, false);
    const index = indexAt(va, 3);
    if (!table || table[index] === 0) return false;
    table[index] = update(table[index]!);
    this.#onChange(va);
    return true;
  }

  /** Clears the PTE for `va` (the table pages stay). */
  clear(va: number): void {
    const table = this.#leafTable(va, false);
    if (!table) return;
    table[indexAt(va, 3)] = 0;
    this.#onChange(va);
  }

  /** Table pages that a mapping of [va, va + bytes) would need beyond those that exist now. */
  missingTablePages(va: number, bytes: number): number {
    let missing = 0;
    const seen = new Set<string>();
    for (let addr = va; addr < va + bytes; addr += PAGE_SIZE) {
      let table: Float64Array | undefined = this.#tables.get(this.root);
      for (let level = 0; level < 3; level++) {
        const key = `${level}:${Math.floor(addr / 2 ** LEVEL_SHIFT[level]!)}`;
        const entry = table ? table[indexAt(addr, level)]! : 0;
        if (entry === 0) {
          if (!seen.has(key)) {
            seen.add(key);
            missing++;
          }
          table = undefined;
        } else table = this.#tables.get(pteFrame(entry));
      }
    }
    return missing;
  }

  #leafTable(va: number, create: boolean): Float64Array | null {
    let table = this.#tables.get(this.root)!;
    for (let level = 0; level < 3; level++) {
      const index = indexAt(va, level);
      let entry = table[index]!;
      if (entry === 0) {
        if (!create) return null;
        const pfn = this.#newTable(level + 1);
        if (pfn === null) return null;
        entry = makePte(pfn, Pte.Present | Pte.Rw);
        table[index] = entry;
      }
      table = this.#tables.get(pteFrame(entry))!;
    }
    return table;
  }

  #newTable(level: number): number | null {
    const pfn = this.#buddy.allocPages(0, { tag: "pagetable", gfp: Gfp.Zero });
    if (pfn === null) return null;
    this.#tables.set(pfn, new Float64Array(PTRS_PER_TABLE));
    this.tablePages[TABLE_LEVELS[level]!]++;
    return pfn;
  }
}
