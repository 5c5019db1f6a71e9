import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { BuddyAllocator, Gfp } from "./buddy.js";
import { MAX_ORDER, PAGE_SIZE } from "./constants.js";
import { MemoryError } from "./errors.js";
import { PhysicalMemory } from "./phys.js";

function buddyOf(pages: number): { phys: PhysicalMemory; buddy: BuddyAllocator } {
  const phys = new PhysicalMemory(pages * PAGE_SIZE);
  return { phys, buddy: new BuddyAllocator(phys) };
}

/** Walks every free list and the whole zone; throws on any inconsistency. */
function checkConsistent(phys: PhysicalMemory, buddy: BuddyAllocator): void {
  let listed = 0;
  const seen = new Set<number>();
  for (let order = 0; order < MAX_ORDER; order++) {
    let n = 0;
    for (const head of buddy.freeList(order)) {
      expect(head % 2 ** order).toBe(0);
      expect(phys.order[head]).toBe(order);
      expect(seen.has(head)).toBe(false);
      seen.add(head);
      listed += 2 ** order;
      n++;
    }
    expect(n).toBe(buddy.buddyinfo()[order]);
  }
  expect(listed).toBe(buddy.nrFreePages);
  let covered = 0;
  let free = 0;
  buddy.forEachBlock((head, order, isFree) => {
    expect(head).toBe(covered);
    covered += 2 ** order;
    if (isFree) {
      free += 2 ** order;
      expect(seen.has(head)).toBe(true);
      // A free block never has a free buddy of the same order (it would have merged).
      const buddyPfn = head ^ (2 ** order);
      if (order < MAX_ORDER - 1 && buddyPfn < phys.pages) {
        const b = buddy.blockOf(buddyPfn);
        expect(b?.free === true && b.head === buddyPfn && b.order === order).toBe(false);
      }
    }
  });
  expect(covered).toBe(phys.pages);
  expect(free).toBe(buddy.nrFreePages);
}

describe("buddy allocator", () => {
  it("starts with the largest aligned blocks, as memblock_free_all hands them over", () => {
    const { buddy } = buddyOf(3000); // 2 × 1024 + 512 + 256 + 128 + 32 + 16 + 8
    expect(buddy.buddyinfo()).toEqual([0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 2]);
    expect(buddy.nrFreePages).toBe(3000);
  });

  it("splits the smallest fitting block and gives back the upper halves (expand)", () => {
    const { phys, buddy } = buddyOf(1024);
    const pfn = buddy.allocPages(0, { tag: "t" });
    expect(pfn).toBe(0);
    // One order-10 block split into order 9..0 upper halves: 512, 256, ..., 1.
    expect(buddy.buddyinfo()).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    expect(buddy.allocPages(2, { tag: "t" })).toBe(4);
    expect(buddy.allocPages(0, { tag: "t" })).toBe(1);
    expect(buddy.allocPages(1, { tag: "t" })).toBe(2);
    expect(buddy.buddyinfo()).toEqual([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0]);
    checkConsistent(phys, buddy);
  });

  it("merges buddies back into one block on free (__free_one_page)", () => {
    const { phys, buddy } = buddyOf(1024);
    const a = buddy.allocPages(0, { tag: "t" })!;
    const b = buddy.allocPages(0, { tag: "t" })!;
    const c = buddy.allocPages(1, { tag: "t" })!;
    expect([a, b, c]).toEqual([0, 1, 2]);
    buddy.freePages(b, 0);
    expect(buddy.buddyinfo()[0]).toBe(1); // pfn 1 waits for its buddy 0
    buddy.freePages(a, 0);
    expect(buddy.buddyinfo()[0]).toBe(0);
    expect(buddy.buddyinfo()[1]).toBe(1); // 0..1 merged, waiting for 2..3
    buddy.freePages(c, 1);
    expect(buddy.buddyinfo()).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    checkConsistent(phys, buddy);
  });

  it("allocPagesBulk takes the pages a loop of allocPages(0) would, with the same counters and failure", () => {
    const run = (bulk: boolean) => {
      const { phys, buddy } = buddyOf(64);
      phys.write(5 * PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(9));
      buddy.allocPages(2, { tag: "pin" });
      const out = new Float64Array(70).fill(-1);
      let got = 0;
      if (bulk) got = buddy.allocPagesBulk(70, { tag: "bulk", gfp: Gfp.Zero }, out, 3);
      else {
        for (; got < 70; got++) {
          const pfn = buddy.allocPages(0, { tag: "bulk", gfp: Gfp.Zero });
          if (pfn === null) break;
          out[3 + got] = pfn;
        }
      }
      const page5 = new Uint8Array(PAGE_SIZE);
      phys.read(5 * PAGE_SIZE, page5);
      return {
        got,
        out: Array.from(out),
        owned: buddy.pagesOwnedBy("bulk"),
        failures: Array.from(buddy.failuresByOrder),
        warnings: buddy.warnings,
        free: buddy.nrFreePages,
        zeroed: page5.every((b) => b === 0),
        blocks: buddy.blocksOwnedBy("bulk"),
      };
    };
    const loop = run(false);
    expect(run(true)).toEqual(loop);
    expect(loop.got).toBe(60);
    expect(loop.failures[0]).toBe(1);
    expect(loop.zeroed).toBe(true);
    expect(loop.blocks?.[0]).toBe(60);
  });

  it("blocksOwnedBy answers blocksByOwner for one tag without registering an unknown one", () => {
    const { phys, buddy } = buddyOf(64);
    buddy.allocPages(1, { tag: "x" });
    buddy.allocPages(0, { tag: "x" });
    expect(buddy.blocksOwnedBy("x")).toEqual(buddy.blocksByOwner().get("x"));
    const names = phys.tags.names.length;
    expect(buddy.blocksOwnedBy("never")).toBeUndefined();
    expect(phys.tags.names.length).toBe(names);
  });

  it("fails without hidden compaction when no block is large enough", () => {
    const { buddy } = buddyOf(1024);
    const pinned: number[] = [];
    for (let i = 0; i < 1024; i++) pinned.push(buddy.allocPages(0, { tag: "t" })!);
    for (let i = 0; i < 1024; i += 2) buddy.freePages(pinned[i]!, 0);
    expect(buddy.nrFreePages).toBe(512);
    expect(buddy.allocPages(1, { tag: "t", gfp: Gfp.NoWarn })).toBeNull();
    expect(buddy.failuresByOrder[1]).toBe(1);
    expect(buddy.warnings).toBe(0);
    expect(buddy.allocPages(1, { tag: "t" })).toBeNull();
    expect(buddy.warnings).toBe(1);
  });

  it("zeroes with __GFP_ZERO and keeps stale bytes without it", () => {
    const { phys, buddy } = buddyOf(16);
    const pfn = buddy.allocPages(0, { tag: "t" })!;
    phys.write(pfn * PAGE_SIZE, new Uint8Array([1, 2, 3]));
    buddy.freePages(pfn, 0);
    const again = buddy.allocPages(0, { tag: "t" })!;
    expect(again).toBe(pfn);
    const out = new Uint8Array(3);
    phys.read(again * PAGE_SIZE, out);
    expect([...out]).toEqual([1, 2, 3]);
    buddy.freePages(again, 0);
    const zeroed = buddy.allocPages(0, { tag: "t", gfp: Gfp.Zero })!;
    phys.read(zeroed * PAGE_SIZE, out);
    expect([...out]).toEqual([0, 0, 0]);
  });

  it("rejects bad frees with typed errors and leaves the allocator unchanged", () => {
    const { phys, buddy } = buddyOf(64);
    const a = buddy.allocPages(2, { tag: "t" })!;
    const before = buddy.buddyinfo();
    const cases: [() => void, string][] = [
      [() => buddy.freePages(a, 1), "free-order"],
      [() => buddy.freePages(a + 1, 0), "free-not-head"],
      [() => buddy.freePages(32, 5), "double-free"],
      [() => buddy.freePages(9999, 0), "free-unknown"],
      [() => buddy.allocPages(11, { tag: "t" }), "order"],
    ];
    for (const [call, reason] of cases) {
      expect(call).toThrowError(MemoryError);
      try {
        call();
      } catch (e) {
        expect((e as MemoryError).reason).toBe(reason);
      }
      expect(buddy.buddyinfo()).toEqual(before);
    }
    buddy.leakPages(a + 1, 1);
    expect(() => buddy.freePages(a, 2)).toThrowError(/leaked/);
    expect(buddy.leakedPages).toBe(1);
    expect(buddy.buddyinfo()).toEqual(before);
    phys.setHostVisible(a + 5, true);
    checkConsistent(phys, buddy);
  });

  it("refuses to free a host-visible page (I1)", () => {
    const { phys, buddy } = buddyOf(64);
    const a = buddy.allocPages(0, { tag: "t" })!;
    phys.setHostVisible(a, true);
    expect(() => buddy.freePages(a, 0)).toThrowError(/host-visible/);
    phys.setHostVisible(a, false);
    buddy.freePages(a, 0);
  });

  it("freeHostVisible: a kernel-exact free of a visible block is done, marked and counted", () => {
    const { phys, buddy } = buddyOf(64);
    const a = buddy.allocPages(1, { tag: "t" })!;
    phys.setHostVisible(a, true); // only the first page of the pair is visible
    expect(buddy.freedWhileVisiblePages).toBe(0);
    expect([...buddy.freedWhileVisible()]).toEqual([]);
    buddy.freeHostVisible(a, 1, "test path");
    expect(buddy.blockOf(a)?.free).toBe(true);
    expect(buddy.freedWhileVisiblePages).toBe(1);
    expect(buddy.isFreedWhileVisible(a)).toBe(true);
    expect(buddy.isFreedWhileVisible(a + 1)).toBe(false);
    expect([...buddy.freedWhileVisible()]).toEqual([a]);
    expect(buddy.freedWhileVisibleLog).toEqual([{ pfn: a, order: 1, reason: "test path" }]);
    checkConsistent(phys, buddy);
    // every other free rule still holds
    expect(() => buddy.freeHostVisible(a, 1, "again")).toThrowError(/already free/);
    const b = buddy.allocPages(0, { tag: "t" })!;
    buddy.leakPages(b, 1);
    expect(() => buddy.freeHostVisible(b, 0, "leaked")).toThrowError(/leaked/);
    // an unrelated visible page is still refused by the ordinary free
    const c = buddy.allocPages(0, { tag: "t" })!;
    phys.setHostVisible(c, true);
    expect(() => buddy.freePages(c, 0)).toThrowError(/host-visible/);
  });

  it("a page freed while visible can be handed out again, and its new owner frees it normally", () => {
    const { phys, buddy } = buddyOf(4);
    const a = buddy.allocPages(0, { tag: "t" })!;
    phys.setHostVisible(a, true);
    buddy.freeHostVisible(a, 0, "test path");
    // LIFO order-0 list: the next order-0 allocation is that page, still visible
    expect(buddy.allocPages(0, { tag: "next" })).toBe(a);
    expect(buddy.isFreedWhileVisible(a)).toBe(true);
    buddy.freePages(a, 0);
    // once private again the page is ordinary
    phys.setHostVisible(a, false);
    expect(buddy.isFreedWhileVisible(a)).toBe(false);
    expect([...buddy.freedWhileVisible()]).toEqual([]);
    expect(buddy.freedWhileVisiblePages).toBe(1); // cumulative
  });

  it("takes an exact range out of the free lists (memblock-style) and gives it back", () => {
    const { phys, buddy } = buddyOf(2048);
    expect(buddy.allocRange(100, 1000, { tag: "swiotlb" })).toBe(true);
    expect(buddy.nrFreePages).toBe(1048);
    expect(buddy.pagesOwnedBy("swiotlb")).toBe(1000);
    expect(buddy.ownerOf(100)).toBe("swiotlb");
    expect(buddy.ownerOf(1099)).toBe("swiotlb");
    expect(buddy.ownerOf(1100)).toBe("free");
    expect(buddy.allocRange(1000, 200, { tag: "x" })).toBe(false);
    checkConsistent(phys, buddy);
    buddy.freeRange(100, 1000);
    expect(buddy.buddyinfo()[10]).toBe(2);
    checkConsistent(phys, buddy);
  });

  test.prop([
    fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 10 }), fc.nat()), { maxLength: 300 }),
  ])("any sequence of allocs and frees keeps the free lists consistent and conserves pages", (ops) => {
    const { phys, buddy } = buddyOf(4096 + 300);
    const live: { pfn: number; order: number }[] = [];
    for (const [alloc, order, pick] of ops) {
      if (alloc || live.length === 0) {
        const pfn = buddy.allocPages(order, { tag: "p", gfp: Gfp.NoWarn });
        if (pfn !== null) live.push({ pfn, order });
      } else {
        const [victim] = live.splice(pick % live.length, 1);
        buddy.freePages(victim!.pfn, victim!.order);
      }
      const used = live.reduce((s, a) => s + 2 ** a.order, 0);
      expect(buddy.nrFreePages + used).toBe(phys.pages);
    }
    checkConsistent(phys, buddy);
    for (const a of live) buddy.freePages(a.pfn, a.order);
    checkConsistent(phys, buddy);
    expect(buddy.nrFreePages).toBe(phys.pages);
  });

  test.prop(
    [fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 10 }), fc.nat()), { maxLength: 200 })],
    { numRuns: 30 },
  )("blockOf and isAllocated agree with a zone walk, across link chunks of a larger zone", (ops) => {
    // 3 × 2^16 + 1000 pages: free-list links spread over several lazily made chunks and the 1024-aligned array.
    const { phys, buddy } = buddyOf(3 * 65536 + 1000);
    const live: { pfn: number; order: number }[] = [];
    for (const [alloc, order, pick] of ops) {
      if (alloc || live.length === 0) {
        const pfn = buddy.allocPages(order, { tag: order % 2 ? "odd" : "even", gfp: Gfp.NoWarn });
        if (pfn !== null) live.push({ pfn, order });
      } else {
        const [victim] = live.splice(pick % live.length, 1);
        buddy.freePages(victim!.pfn, victim!.order);
      }
    }
    checkConsistent(phys, buddy);
    buddy.forEachBlock((head, order, free) => {
      for (const p of [head, head + ((2 ** order) >> 1), head + 2 ** order - 1]) {
        expect(buddy.blockOf(p)).toEqual({ head, order, free });
        expect(buddy.isAllocated(p)).toBe(!free);
      }
    });
    expect(buddy.blockOf(phys.pages)).toBeNull();
    expect(buddy.isAllocated(-1)).toBe(false);
  });
});
