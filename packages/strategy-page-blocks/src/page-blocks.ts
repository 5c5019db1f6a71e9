import { vmapSharedAlias } from "@ivm/hypercall";
import { writtenFor } from "@ivm/kernel";
import { Gfp, MAX_ORDER, PAGE_SIZE } from "@ivm/memory";
import {
  defineStrategy,
  type SharedBuffer,
  type SharedBufferStrategy,
  type StrategyDescriptor,
  type StrategyServices,
} from "@ivm/shared-buffer";

/** How allocation falls back when a 4 MiB block is not available. */
export type PageBlocksFallback =
  /** Patch v5: the first failure frees everything and retries the whole buffer with order-0 pages. */
  | "v5-all-or-nothing"
  /** Orders 10 down to 0: each chunk takes the largest block that is free. */
  | "graded";

export interface PageBlocksOptions {
  readonly fallback?: PageBlocksFallback;
}

/** One physically contiguous run of the buffer. */
interface Block {
  readonly pfn: number;
  readonly order: number;
}

interface PageBlocksBuffer extends SharedBuffer {
  /** The kept PFN/range list: the blocks in buffer order. */
  readonly blocks: readonly Block[];
  /** Where the kept list lives (kmalloc'd, 8 bytes per block pointer). */
  readonly listVa: number;
  /** The transient vmap the GPADL is built over, until map() replaces it. */
  transient: number | null;
  alias: number | null;
}

const LARGEST = MAX_ORDER - 1; // 1024 pages, 4 MiB

/**
 * Approach (4), patch v5 12/12 (Sep 2021): alloc_pages in 4 MiB blocks (or order 0 for a buffer smaller than
 * one block) with __GFP_ZERO, a kept list of the blocks, a transient vmap of the pages for the GPADL, then
 * one vmap_pfn mapping above vTOM built from the kept list — one live mapping during traffic.
 *
 * Not reproduced from v5: `__free_pages(page, 1024)` (a count passed as an order), freeing pages[i]
 * instead of pages[j] in the error loop, and sizes that are not a multiple of 4 MiB being truncated (the
 * remainder here takes smaller blocks).
 */
export const pageBlocks: StrategyDescriptor<Pick<StrategyServices, "memory">, PageBlocksOptions> = {
  name: "page-blocks",
  approach: 4,
  summary: "alloc_pages in 4 MiB blocks, one vmap_pfn mapping (patch v5)",
  packageName: "@ivm/strategy-page-blocks",
  eras: ["address-bit"],
  ...writtenFor("page-blocks", {
    from: "5.17",
    through: "5.17",
    written: "approach (4): the alloc_pages/vmap_pfn series was posted against 5.16/5.17 and never merged",
  }),
  create: (services, options) => create(services, options),
};

function create(
  { memory }: Pick<StrategyServices, "memory">,
  options: PageBlocksOptions = {},
): SharedBufferStrategy {
  const fallback = options.fallback ?? "v5-all-or-nothing";

  const freeBlocks = (blocks: readonly Block[]): void => {
    for (const b of blocks) memory.buddy.freePages(b.pfn, b.order);
  };

  /** Takes `pages` pages in blocks of at most `maxOrder`; all or nothing. */
  const take = (pages: number, maxOrder: number, tag: string, graded: boolean): Block[] | null => {
    const blocks: Block[] = [];
    let left = pages;
    while (left > 0) {
      let order = maxOrder;
      while (2 ** order > left) order--;
      // v5: GFP_KERNEL | __GFP_ZERO — at order 10 a costly request without __GFP_NORETRY: on an aged guest
      // each attempt runs async compaction, direct reclaim and sync compaction before it fails (and warns).
      let pfn = memory.buddy.allocPages(order, { tag, gfp: Gfp.Zero });
      while (pfn === null && graded && order > 0) {
        order--;
        pfn = memory.buddy.allocPages(order, { tag, gfp: Gfp.Zero | Gfp.NoWarn });
      }
      if (pfn === null) {
        freeBlocks(blocks);
        return null;
      }
      blocks.push({ pfn, order });
      left -= 2 ** order;
    }
    return blocks;
  };

  const pfnsOf = (blocks: readonly Block[], pages: number): Float64Array => {
    const pfns = new Float64Array(pages);
    let i = 0;
    for (const b of blocks) for (let k = 0; k < 2 ** b.order; k++) pfns[i++] = b.pfn + k;
    return pfns;
  };

  // Patch v5 took this path only in an isolated guest; otherwise netvsc vzalloc'd as before.
  return defineStrategy<PageBlocksBuffer>(pageBlocks, memory, {
    isolatedOnly: true,
    allocate(bytes, purpose) {
      const pages = bytes / PAGE_SIZE;
      const maxOrder = pages >= 2 ** LARGEST ? LARGEST : 0;
      const blocks =
        fallback === "graded"
          ? take(pages, maxOrder, purpose, true)
          : (take(pages, maxOrder, purpose, false) ?? (maxOrder > 0 ? take(pages, 0, purpose, false) : null));
      if (!blocks) return null;
      const listVa = memory.kmalloc.kmalloc(blocks.length * 8, { tag: "page-blocks-list" });
      if (listVa === null) {
        freeBlocks(blocks);
        return null;
      }
      // The transient mapping for the GPADL: a temporary page array, vmap, array freed.
      const arrayVa = memory.kmalloc.kmalloc(pages * 8, { tag: "page-blocks-pages" });
      const transient =
        arrayVa === null ? null : memory.vmalloc.vmap(pfnsOf(blocks, pages), { tag: `${purpose}-transient` });
      if (arrayVa !== null) memory.kmalloc.kfree(arrayVa);
      if (transient === null) {
        memory.kmalloc.kfree(listVa);
        freeBlocks(blocks);
        return null;
      }
      return { gpadlVa: transient, blocks, listVa, transient, alias: null };
    },
    map(buffer) {
      const pfns = pfnsOf(buffer.blocks, buffer.pages);
      const alias = vmapSharedAlias(memory, buffer.pages, (out) => out.set(pfns), {
        tag: `${buffer.purpose}-alias`,
      });
      if (alias === null) return null;
      memory.vmalloc.vunmap(buffer.transient!);
      buffer.transient = null;
      buffer.alias = alias;
      // The GPADL's pages are now reached through the alias only: its teardown re-encrypts through it.
      return { va: alias, gpadlVa: alias };
    },
    unmap() {
      // Teardown still needs a mapping to walk for re-encryption; the alias stays until free or leak.
    },
    free(buffer) {
      if (buffer.alias !== null) memory.vmalloc.vunmap(buffer.alias);
      if (buffer.transient !== null) memory.vmalloc.vunmap(buffer.transient);
      memory.kmalloc.kfree(buffer.listVa);
      freeBlocks(buffer.blocks);
    },
    leak(buffer) {
      for (const b of buffer.blocks) memory.buddy.leakPages(b.pfn, 2 ** b.order);
    },
  });
}
