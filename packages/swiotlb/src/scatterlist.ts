import { type GuestMemory, PAGE_SIZE } from "@ivm/memory";
import { badCaller } from "./errors.js";

/** sizeof(struct scatterlist) on x86-64: page_link 8, offset 4, length 4, dma_address 8, dma_length 4, padded to 32. */
export const SCATTERLIST_SIZE = 32 as const;
/** sizeof(struct sg_table): sgl 8, nents 4, orig_nents 4. */
export const SG_TABLE_SIZE = 16 as const;
/** sizeof(struct dma_sgt_handle): an sg_table and a `struct page **`. */
export const DMA_SGT_HANDLE_SIZE = 24 as const;
/** SG_MAX_SINGLE_ALLOC: scatterlist entries in one page-sized chunk (128); a chained chunk uses 127. */
export const SG_MAX_SINGLE_ALLOC: number = PAGE_SIZE / SCATTERLIST_SIZE;
/** sg_alloc_table_from_pages' segment limit: UINT_MAX rounded down to a page. */
export const SG_DEFAULT_MAX_SEGMENT: number = 0xffff_f000;
/** Default kmalloc tag of scatterlist chunks. */
export const SG_TABLE_TAG = "sg-table" as const;

export interface SgAllocOptions {
  /** kmalloc tag the chunks are charged to (default "sg-table"). */
  readonly tag?: string;
  /** gfp bits passed to kmalloc. */
  readonly gfp?: number;
}

export interface SgFromPagesOptions extends SgAllocOptions {
  /** Longest entry in bytes (rounded down to a page); default SG_DEFAULT_MAX_SEGMENT. */
  readonly maxSegment?: number;
}

/**
 * Entries per scatterlist chunk for a table of `nents` entries, as __sg_alloc_table lays them out: full
 * chunks of SG_MAX_SINGLE_ALLOC entries whose last entry chains to the next chunk, then one chunk of
 * exactly what is left.
 */
export function sgChunkLayout(nents: number): number[] {
  const chunks: number[] = [];
  let left = nents;
  while (left > 0) {
    if (left > SG_MAX_SINGLE_ALLOC) {
      chunks.push(SG_MAX_SINGLE_ALLOC);
      left -= SG_MAX_SINGLE_ALLOC - 1;
    } else {
      chunks.push(left);
      left = 0;
    }
  }
  return chunks;
}

/**
 * struct sg_table with its scatterlist. Entry fields are typed arrays indexed by entry (page frame,
 * offset, length, dma_address, dma_length); the chunks that would hold the 32-byte entries are real
 * kmalloc allocations in guest memory, so a table's cost shows in `kmalloc.statsFor(tag)`. A full
 * 128-entry chunk is a 4096-byte kmalloc (the kernel's sg_kmalloc takes a whole page there with
 * __get_free_page: the same 4 KiB), a partial one `n × 32` bytes.
 *
 * Build one with `SgTable.alloc` (sg_alloc_table) or `SgTable.fromPages` (sg_alloc_table_from_pages)
 * and release the chunks with `free` (sg_free_table).
 */
export class SgTable {
  /** orig_nents: entries describing memory. */
  readonly origNents: number;
  /** nents: entries mapped for DMA (dma_alloc_noncontiguous sets 1). */
  nents: number;
  /** Page frame of each entry's first page (sg_page). */
  readonly pfn: Float64Array;
  readonly offset: Uint32Array;
  readonly length: Uint32Array;
  readonly dmaAddress: Float64Array;
  readonly dmaLength: Uint32Array;
  /** Direct-map addresses of the scatterlist chunks, in chain order. */
  readonly chunkVas: readonly number[];
  /** Entries allocated in each chunk (the chain entry included). */
  readonly chunkEntries: readonly number[];
  readonly tag: string;
  /** Where the struct sg_table itself lives (alloc_single_sgt's kmalloc or a dma_sgt_handle), if anywhere. */
  structVa: number | null = null;
  /** dma_sgt_handle.pages: the page frames an alloc_noncontiguous op keeps for vmap; null otherwise. */
  pages: Float64Array | null = null;
  #freed = false;

  private constructor(nents: number, chunkVas: number[], chunkEntries: number[], tag: string) {
    this.origNents = nents;
    this.nents = nents;
    this.pfn = new Float64Array(nents);
    this.offset = new Uint32Array(nents);
    this.length = new Uint32Array(nents);
    this.dmaAddress = new Float64Array(nents);
    this.dmaLength = new Uint32Array(nents);
    this.chunkVas = chunkVas;
    this.chunkEntries = chunkEntries;
    this.tag = tag;
  }

  /** Number of scatterlist chunks. */
  get chunks(): number {
    return this.chunkVas.length;
  }

  /** Bytes the chunks occupy as allocated (4096 per full chunk, 32 per entry otherwise). */
  get chunkBytes(): number {
    let bytes = 0;
    for (const n of this.chunkEntries) bytes += chunkAllocBytes(n);
    return bytes;
  }

  /** Sum of the entries' lengths. */
  get totalLength(): number {
    let sum = 0;
    for (let i = 0; i < this.origNents; i++) sum += this.length[i] ?? 0;
    return sum;
  }

  /**
   * Mirrors sg_alloc_table: `nents` zeroed entries in chained chunks. Returns null (having freed any
   * chunk it got) when kmalloc fails, as the kernel returns -ENOMEM.
   */
  static alloc(memory: GuestMemory, nents: number, options: SgAllocOptions = {}): SgTable | null {
    if (!Number.isSafeInteger(nents) || nents <= 0)
      throw badCaller("bad-nents", `sg table of ${nents} entries`);
    const tag = options.tag ?? SG_TABLE_TAG;
    const layout = sgChunkLayout(nents);
    const vas: number[] = [];
    for (const entries of layout) {
      const va = memory.kmalloc.kmalloc(chunkAllocBytes(entries), {
        tag,
        ...(options.gfp === undefined ? {} : { gfp: options.gfp }),
      });
      if (va === null) {
        for (const done of vas) memory.kmalloc.kfree(done);
        return null;
      }
      vas.push(va);
    }
    return new SgTable(nents, vas, layout, tag);
  }

  /**
   * Mirrors sg_alloc_table_from_pages: one entry per run of physically adjacent pages (a run also ends
   * at `maxSegment` bytes); the first entry starts at `offset`, the last is clipped so the entries add up
   * to `size`.
   */
  static fromPages(
    memory: GuestMemory,
    pfns: ArrayLike<number>,
    offset: number,
    size: number,
    options: SgFromPagesOptions = {},
  ): SgTable | null {
    const n = pfns.length;
    if (n === 0) throw badCaller("bad-pages", "sg table from zero pages");
    if (!Number.isInteger(offset) || offset < 0 || offset >= PAGE_SIZE) {
      throw badCaller("bad-offset", `offset ${offset} must lie inside the first page`);
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size > n * PAGE_SIZE - offset) {
      throw badCaller("bad-size", `size ${size} does not fit ${n} pages at offset ${offset}`);
    }
    const maxSegment = Math.floor((options.maxSegment ?? SG_DEFAULT_MAX_SEGMENT) / PAGE_SIZE) * PAGE_SIZE;
    if (maxSegment < PAGE_SIZE || maxSegment > SG_DEFAULT_MAX_SEGMENT) {
      throw badCaller("bad-segment", `max segment ${options.maxSegment} must be 4 KiB .. 4 GiB - 4 KiB`);
    }
    for (let i = 0; i < n; i++) {
      if (!memory.phys.pfnValid(pfns[i] ?? -1)) throw badCaller("bad-pages", `pfn ${pfns[i]} is not RAM`);
    }
    // first pass: count the runs, so the table is allocated once at its final size
    let nents = 1;
    let runBytes = 0;
    for (let i = 1; i < n; i++) {
      runBytes += PAGE_SIZE;
      if (runBytes >= maxSegment || pfns[i] !== (pfns[i - 1] ?? 0) + 1) {
        nents++;
        runBytes = 0;
      }
    }
    const table = SgTable.alloc(memory, nents, options);
    if (table === null) return null;
    // second pass: fill the entries with the same run boundaries
    let cur = 0;
    let left = size;
    let off = offset;
    for (let e = 0; e < nents; e++) {
      let j = cur + 1;
      runBytes = 0;
      for (; j < n; j++) {
        runBytes += PAGE_SIZE;
        if (runBytes >= maxSegment || pfns[j] !== (pfns[j - 1] ?? 0) + 1) break;
      }
      const chunk = (j - cur) * PAGE_SIZE - off;
      table.pfn[e] = pfns[cur] ?? 0;
      table.offset[e] = off;
      table.length[e] = Math.min(left, chunk);
      left -= chunk;
      off = 0;
      cur = j;
    }
    return table;
  }

  /** Mirrors sg_free_table: frees the chunks (not the struct itself, nor the pages the entries name). */
  free(memory: GuestMemory): void {
    if (this.#freed) throw badCaller("sg-double-free", "sg table freed twice");
    this.#freed = true;
    for (const va of this.chunkVas) memory.kmalloc.kfree(va);
  }
}

function chunkAllocBytes(entries: number): number {
  return entries === SG_MAX_SINGLE_ALLOC ? PAGE_SIZE : entries * SCATTERLIST_SIZE;
}

/**
 * kmalloc of a struct dma_sgt_handle (24 B), which an alloc_noncontiguous op returns the sg_table of;
 * record the address on the table (`structVa`) and the page list (`pages`) so the generic vmap path and
 * the op's free can find them. Returns null when kmalloc fails.
 */
export function allocDmaSgtHandle(memory: GuestMemory, tag: string, gfp?: number): number | null {
  return memory.kmalloc.kmalloc(DMA_SGT_HANDLE_SIZE, { tag, ...(gfp === undefined ? {} : { gfp }) });
}
