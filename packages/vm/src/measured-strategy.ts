import { type AllocatorWork, type GuestMemory, snapshotWork, workSince } from "@ivm/memory";
import type { BufferPurpose, SharedBuffer, SharedBufferStrategy } from "@ivm/shared-buffer";

/** What one buffer cost the strategy itself, measured around its own calls (allocate and map). */
export interface StrategyCallCost {
  readonly purpose: BufferPurpose;
  readonly pages: number;
  /** Data pages the strategy allocated, as buddy blocks per order (0..10). */
  readonly pagesByOrder: readonly number[];
  /** Metadata the strategy still holds once the buffer is mapped: kmalloc'd bytes plus metadata pages. */
  readonly persistentMetadataBytes: number;
  /** The most its temporary allocations held at once during allocate and map (freed by then). */
  readonly transientPeakBytes: number;
  /** Page-table walks (vmalloc_to_pfn) the strategy made. */
  readonly pageWalks: number;
  /**
   * The allocator work the strategy's allocate call caused (compaction, reclaim, fallbacks): what its
   * higher-order attempts cost, whether or not they succeeded.
   */
  readonly allocatorWork: AllocatorWork;
}

interface Snapshot {
  readonly kmallocLive: number;
  readonly allocated: number;
  readonly tables: number;
  readonly slab: number;
  readonly large: number;
  readonly data: number;
  readonly walks: number;
  readonly work: AllocatorWork;
}

function snapshot(memory: GuestMemory, purpose: string): Snapshot {
  return {
    kmallocLive: memory.kmalloc.totalLive,
    allocated: memory.buddy.totalPages - memory.buddy.nrFreePages,
    tables: memory.pageTables.totalTablePages,
    slab: memory.buddy.pagesOwnedBy("slab"),
    large: memory.kmalloc.largePages,
    data: memory.buddy.pagesOwnedBy(purpose),
    walks: memory.vmalloc.pageWalks,
    work: snapshotWork(memory.buddy.work),
  };
}

/** Metadata bytes a call left held: kmalloc'd bytes plus pages that are not data, page tables, slab or kmalloc_large. */
function metadataDelta(b: Snapshot, a: Snapshot): number {
  const dataPages = a.data - b.data;
  const pages =
    a.allocated - b.allocated - dataPages - (a.tables - b.tables) - (a.slab - b.slab) - (a.large - b.large);
  return a.kmallocLive - b.kmallocLive + pages * 4096;
}

/**
 * Decorates a strategy with measurement, the way a composition root can wrap any injected dependency:
 * the calls pass through unchanged, and the memory model's counters are read before and after them, so
 * the costs are the model's, never the strategy's own claims. Metadata pages are whatever the calls took
 * beyond the buffer's own data pages, page tables, slab pages and kmalloc_large pages (the last two are
 * already in the kmalloc bytes). `onAllocated` runs after each successful allocate (the VM's named faults
 * arm there).
 */
export function measuredStrategy(
  strategy: SharedBufferStrategy,
  memory: GuestMemory,
  onAllocated?: (purpose: BufferPurpose, pages: number) => void,
): SharedBufferStrategy & { readonly costs: readonly StrategyCallCost[] } {
  const costs: StrategyCallCost[] = [];
  // Only what happens inside the strategy's own calls counts: the driver's GPADL work between allocate
  // and map is not the strategy's.
  const pending = new Map<SharedBuffer, { before: Snapshot; after: Snapshot; peak: number }>();
  const measure = <T>(_purpose: string, call: () => T): { result: T; peak: number } => {
    memory.kmalloc.resetPeak();
    const result = call();
    return { result, peak: memory.kmalloc.peakTotalLive };
  };
  return {
    name: strategy.name,
    contractVersion: strategy.contractVersion,
    eras: strategy.eras,
    costs,
    allocate(bytes, purpose) {
      const before = snapshot(memory, purpose);
      const { result, peak } = measure(purpose, () => strategy.allocate(bytes, purpose));
      if (result) {
        pending.set(result, { before, after: snapshot(memory, purpose), peak });
        onAllocated?.(purpose, result.pages);
      }
      return result;
    },
    map(buffer) {
      const entry = pending.get(buffer);
      const mapBefore = snapshot(memory, buffer.purpose);
      const { result, peak } = measure(buffer.purpose, () => strategy.map(buffer));
      if (entry && result !== null) {
        pending.delete(buffer);
        const mapAfter = snapshot(memory, buffer.purpose);
        const allocDelta = metadataDelta(entry.before, entry.after);
        const mapDelta = metadataDelta(mapBefore, mapAfter);
        const blocks = memory.buddy.blocksOwnedBy(buffer.purpose) ?? [];
        costs.push({
          purpose: buffer.purpose,
          pages: buffer.pages,
          pagesByOrder: Array.from({ length: 11 }, (_, o) => blocks[o] ?? 0),
          persistentMetadataBytes: allocDelta + mapDelta,
          // Peaks above what each call left behind: the temporaries it freed before returning.
          transientPeakBytes: Math.max(entry.peak - entry.after.kmallocLive, peak - mapAfter.kmallocLive),
          pageWalks: entry.after.walks - entry.before.walks + mapAfter.walks - mapBefore.walks,
          allocatorWork: workSince(entry.after.work, entry.before.work),
        });
      }
      return result;
    },
    unmap: (buffer) => strategy.unmap(buffer),
    free: (buffer) => strategy.free(buffer),
    leak: (buffer) => strategy.leak(buffer),
    state: (buffer) => strategy.state(buffer),
  };
}
