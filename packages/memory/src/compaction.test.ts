import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { BuddyAllocator, Gfp } from "./buddy.js";
import { COMPACT_MAX_DEFER_SHIFT, CompactionDeferral } from "./compaction.js";
import { MAX_ORDER, PAGE_SIZE, PAGEBLOCK_ORDER } from "./constants.js";
import { GuestMemory } from "./guest-memory.js";
import { MIGRATE_TYPES, Migratetype } from "./migratetype.js";
import { PhysicalMemory } from "./phys.js";
import { ageMemory } from "./uptime.js";
import type { MovablePageOwner } from "./vmscan.js";
import { minFreeKbytes, zoneWatermarks } from "./watermark.js";

const MiB = 2 ** 20;
const NONE = { min: 0, low: 0, high: 0 };

/** A movable-page owner for tests: id → pfn, with a reverse map, and a pin set. */
class TestOwner implements MovablePageOwner {
  readonly where = new Map<number, number>(); // id → pfn
  readonly idAt = new Map<number, number>(); // pfn → id
  readonly pinned = new Set<number>(); // ids
  moves = 0;
  add(id: number, pfn: number): void {
    this.where.set(id, pfn);
    this.idAt.set(pfn, id);
  }
  isolatable(pfn: number): boolean {
    const id = this.idAt.get(pfn);
    return id !== undefined && !this.pinned.has(id);
  }
  migrated(from: number, to: number): void {
    const id = this.idAt.get(from)!;
    expect(this.pinned.has(id)).toBe(false);
    this.idAt.delete(from);
    this.idAt.set(to, id);
    this.where.set(id, to);
    this.moves++;
  }
  lruPages(): number {
    return 0;
  }
  shrinkLru(_n: number, out: Float64Array): void {
    out[0] = 0;
    out[1] = 0;
  }
}

/** Free lists, page states, per-type counts and pageblock counts agree with a full walk of the zone. */
function checkZone(buddy: BuddyAllocator): void {
  let free = 0;
  const byOrder = new Array<number>(MAX_ORDER).fill(0);
  for (let o = 0; o < MAX_ORDER; o++) {
    for (let t = 0; t < MIGRATE_TYPES; t++) {
      let n = 0;
      for (const head of buddy.freeList(o, t as Migratetype)) {
        const b = buddy.blockOf(head)!;
        expect(b).toEqual({ head, order: o, free: true });
        expect(buddy.blockType(head)).toBe(t);
        n++;
      }
      expect(buddy.pagetypeinfo(t as Migratetype)[o]).toBe(n);
      byOrder[o]! += n;
      free += n << o;
    }
  }
  expect(buddy.buddyinfo()).toEqual(byOrder);
  expect(buddy.nrFreePages).toBe(free);
  let walked = 0;
  let p = 0;
  buddy.forEachBlock((head, order, isFree) => {
    expect(head).toBeGreaterThanOrEqual(p);
    p = head + (1 << order);
    if (isFree) walked += 1 << order;
  });
  expect(walked).toBe(free);
  const blocks = new Array<number>(MIGRATE_TYPES).fill(0);
  for (let b = 0; b < Math.ceil(buddy.totalPages / (1 << PAGEBLOCK_ORDER)); b++) {
    blocks[buddy.pageblockType(b << PAGEBLOCK_ORDER)]!++;
  }
  expect(buddy.pageblockCounts()).toEqual(blocks);
}

const op = fc.oneof(
  fc.record({ kind: fc.constant("pinned" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("unmovable" as const), order: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ kind: fc.constant("visible" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("leaked" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("free" as const), pick: fc.nat() }),
);

let totalMoves = 0;

describe("direct compaction (property)", () => {
  test.prop(
    [
      fc.array(op, { minLength: 20, maxLength: 200 }),
      fc.integer({ min: 6, max: 9 }),
      fc.integer({ min: 2, max: 3 }),
    ],
    { numRuns: 20 },
  )(
    "never moves unmovable, pinned, host-visible or leaked pages; migrated bytes arrive intact; lists stay consistent",
    (ops, order, holeEvery) => {
      // 16 MiB: with every 2nd or 3rd page free there are more than compact_gap(9) = 1024 free pages.
      const mem = new GuestMemory({ bytes: 16 * MiB, watermarks: NONE });
      const { buddy, phys } = mem;
      const owner = new TestOwner();
      buddy.registerMovableOwner("movable", owner);
      const stamp = (pfn: number, id: number): void => {
        const b = new Uint8Array(16);
        new DataView(b.buffer).setUint32(0, id * 2654435761);
        b[8] = id & 0xff;
        phys.write(pfn * PAGE_SIZE + 100, b);
      };
      const stampOf = (pfn: number): Uint8Array => {
        const b = new Uint8Array(16);
        phys.read(pfn * PAGE_SIZE + 100, b);
        return b;
      };
      // Memory full of stamped movable pages, then every holeEvery-th freed: no large block is left, and
      // compaction has something to move and somewhere to put it.
      const expected = new Map<number, Uint8Array>();
      let movableIds: number[] = [];
      for (let id = 1; ; id++) {
        const pfn = buddy.allocPages(0, { tag: "movable", gfp: Gfp.Movable | Gfp.NoWarn | Gfp.Atomic });
        if (pfn === null) break;
        owner.add(id, pfn);
        stamp(pfn, id);
        expected.set(id, stampOf(pfn));
        movableIds.push(id);
      }
      const drop = (id: number): void => {
        const pfn = owner.where.get(id)!;
        owner.where.delete(id);
        owner.idAt.delete(pfn);
        expected.delete(id);
        buddy.freePages(pfn, 0);
      };
      movableIds = movableIds.filter((id, i) => {
        if (i % holeEvery !== 0) return true;
        drop(id);
        return false;
      });
      // Then pages all over memory become fixed: pinned, host-visible or leaked movable pages (their owner
      // would let them go; compaction must not), and unmovable allocations in the holes.
      const fixed: { pfn: number; order: number; tag: string }[] = [];
      const takeMovable = (pick: number): number | null => {
        if (movableIds.length === 0) return null;
        const i = pick % movableIds.length;
        const id = movableIds[i]!;
        movableIds.splice(i, 1);
        return id;
      };
      for (const o of ops) {
        if (o.kind === "unmovable") {
          const pfn = buddy.allocPages(o.order, { tag: "kernel", gfp: Gfp.NoWarn | Gfp.Atomic });
          if (pfn !== null) fixed.push({ pfn, order: o.order, tag: "kernel" });
          continue;
        }
        const id = takeMovable(o.pick);
        if (id === null) continue;
        const pfn = owner.where.get(id)!;
        if (o.kind === "free") {
          drop(id);
          continue;
        }
        if (o.kind === "pinned") owner.pinned.add(id);
        else if (o.kind === "visible") phys.setHostVisible(pfn, true);
        else buddy.leakPages(pfn, 1);
        fixed.push({ pfn, order: 0, tag: "movable" });
      }
      const fixedBytes = fixed.map((f) => stampOf(f.pfn));
      checkZone(buddy);
      const before = { ...buddy.work };
      const got = buddy.allocPages(order, { tag: "big", gfp: Gfp.NoWarn | Gfp.RetryMayFail });
      checkZone(buddy);
      // Nothing fixed moved: same block, same owner, same bytes.
      fixed.forEach((f, i) => {
        expect(buddy.blockOf(f.pfn)).toMatchObject({ head: f.pfn, order: f.order, free: false });
        expect(buddy.ownerOf(f.pfn)).toBe(f.tag);
        expect(stampOf(f.pfn)).toEqual(fixedBytes[i]);
      });
      // Every movable page is where its owner thinks, with its bytes.
      for (const id of movableIds) {
        const pfn = owner.where.get(id)!;
        expect(buddy.ownerOf(pfn)).toBe("movable");
        expect(stampOf(pfn)).toEqual(expected.get(id));
      }
      expect(buddy.work.compactionMigrated - before.compactionMigrated).toBe(owner.moves);
      totalMoves += owner.moves;
      if (got !== null) expect(buddy.blockOf(got)).toMatchObject({ head: got, order, free: false });
      expect(mem.checkInvariants()).toEqual([]);
    },
    60_000,
  );

  it("migrated pages in the runs above (the property is not vacuous)", () => {
    expect(totalMoves).toBeGreaterThan(0);
  });
});

describe("page_alloc rules", () => {
  it("computes min_free_kbytes and the watermarks as __setup_per_zone_wmarks does", () => {
    // 2 GiB: sqrt(2097152 × 16) = 5792 KiB → 1448 pages; gap max(362, 524288 × 10 / 10000 = 524).
    expect(minFreeKbytes(524_288)).toBe(5792);
    expect(zoneWatermarks(524_288)).toEqual({ min: 1448, low: 1972, high: 2496 });
    expect(minFreeKbytes(1)).toBe(128);
    expect(minFreeKbytes(2 ** 31)).toBe(262_144);
  });

  it("steals a whole movable pageblock for the first unmovable page, and falls back in fallbacks[] order", () => {
    const buddy = new BuddyAllocator(new PhysicalMemory(8 * MiB));
    expect(buddy.pageblockCounts()).toEqual([0, 4, 0]);
    const pfn = buddy.allocPages(0, { tag: "k" })!;
    // The largest movable block (order 10) was taken: both its pageblocks change type (change_pageblock_range).
    expect(buddy.pageblockCounts()).toEqual([2, 2, 0]);
    expect(buddy.pageblockType(pfn)).toBe(Migratetype.Unmovable);
    expect(buddy.work.allocFallbacks).toBe(1);
    expect(buddy.work.pageblocksStolen).toBe(2);
    // A reclaimable request tries unmovable lists first (fallbacks[RECLAIMABLE] = UNMOVABLE, MOVABLE).
    const r = buddy.allocPages(0, { tag: "r", gfp: Gfp.Reclaimable })!;
    expect(buddy.pageblockType(r)).toBe(Migratetype.Reclaimable);
    checkZone(buddy);
  });

  it("lets a movable order-0 request take a single page without claiming the block (can_steal_fallback)", () => {
    const buddy = new BuddyAllocator(new PhysicalMemory(4 * MiB));
    const k = buddy.allocPages(0, { tag: "k" })!; // the zone's pageblocks are now unmovable
    expect(buddy.pageblockCounts()).toEqual([2, 0, 0]);
    const m = buddy.allocPages(0, { tag: "m", gfp: Gfp.Movable })!;
    expect(buddy.blockType(m)).toBe(Migratetype.Movable);
    // Largest-first would claim (order ≥ 4 steals); only the taken block's pageblock changes, if at all.
    expect(buddy.pageblockType(k)).toBe(Migratetype.Unmovable);
    checkZone(buddy);
  });

  it("defers compaction with a growing shift and resets it on success", () => {
    const d = new CompactionDeferral();
    expect(d.deferred(9)).toBe(false);
    d.defer(9);
    expect(d.deferShift).toBe(1);
    expect(d.deferred(9)).toBe(true); // 1 of 2
    expect(d.deferred(9)).toBe(false); // the 2nd attempt runs
    expect(d.deferred(8)).toBe(false); // below compact_order_failed
    for (let i = 0; i < 10; i++) d.defer(9);
    expect(d.deferShift).toBe(COMPACT_MAX_DEFER_SHIFT);
    let skipped = 0;
    while (d.deferred(9)) skipped++;
    expect(skipped).toBe(63);
    d.reset(9, true);
    expect(d.deferShift).toBe(0);
    expect(d.orderFailed).toBe(10);
  });

  it("gives up a costly __GFP_NORETRY request after a deferred compaction, without reclaim", () => {
    const mem = new GuestMemory({ bytes: 16 * MiB, watermarks: NONE });
    const { buddy } = mem;
    // Fill the zone with unmovable order-0 pages and free every other one: plenty free, nothing compactable.
    const pages: number[] = [];
    for (;;) {
      const p = buddy.allocPages(0, { tag: "k", gfp: Gfp.NoWarn | Gfp.Atomic });
      if (p === null) break;
      pages.push(p);
    }
    for (let i = 0; i < pages.length; i += 2) buddy.freePages(pages[i]!, 0);
    expect(buddy.allocPages(9, { tag: "x", gfp: Gfp.NoWarn })).toBeNull();
    // The sync run failed: compaction is deferred for order 9.
    expect(buddy.deferral.deferShift).toBe(1);
    const stalls = buddy.work.allocStalls;
    expect(buddy.allocPages(9, { tag: "x", gfp: Gfp.NoWarn | Gfp.NoRetry })).toBeNull();
    expect(buddy.work.compactionDeferred).toBe(1);
    expect(buddy.work.allocStalls).toBe(stalls); // gave up before direct reclaim
    // An atomic request never compacts or reclaims.
    const w = { ...buddy.work };
    expect(buddy.allocPages(9, { tag: "x", gfp: Gfp.NoWarn | Gfp.Atomic })).toBeNull();
    expect(buddy.work.compactionStalls).toBe(w.compactionStalls);
    expect(buddy.work.allocStalls).toBe(w.allocStalls);
  });

  it("reclaims page cache when an order-0 request finds the zone below its watermark", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB });
    const { buddy } = mem;
    ageMemory(buddy, 1, {
      rounds: 0,
      fill: 0,
      pinned: 0,
      medium: 0,
      orderWeights: [1],
      resident: 1,
      churn: 0,
    });
    // More pages than are free: only kswapd dropping page cache lets every request succeed.
    const cache = buddy.reclaimablePages();
    const want = buddy.nrFreePages + 1000;
    for (let i = 0; i < want; i++) expect(buddy.allocPages(0, { tag: "k" })).not.toBeNull();
    expect(buddy.work.kswapdReclaimed).toBeGreaterThanOrEqual(1000);
    expect(buddy.reclaimablePages()).toBeLessThanOrEqual(cache - 1000);
    expect(buddy.work.oomWouldKill).toBe(0);
  });
});

describe("heavy uptime", () => {
  it("has no free 2 MiB block, so an order-9 ring costs counted compaction", () => {
    const mem = new GuestMemory({ bytes: 512 * MiB });
    ageMemory(mem.buddy, 1, "heavy");
    expect(mem.buddyinfo()[9]).toBe(0);
    const before = { ...mem.buddy.work };
    const ring = mem.buddy.allocPages(9, { tag: "ring", gfp: Gfp.Zero });
    const w = mem.buddy.work;
    expect(w.compactionStalls - before.compactionStalls).toBeGreaterThan(0);
    if (ring !== null) {
      expect(w.compactionSuccesses - before.compactionSuccesses).toBe(1);
      expect(w.compactionMigrated - before.compactionMigrated).toBeGreaterThan(0);
    }
    checkZone(mem.buddy);
  });
});
