import { describe, expect, it } from "vitest";
import { PAGE_SIZE } from "./constants.js";
import { extfragIndex, unusableIndex } from "./fragmentation.js";
import { GuestMemory } from "./guest-memory.js";
import { ageMemory } from "./uptime.js";

const MiB = 2 ** 20;
const GiB = 2 ** 30;

describe("guest memory", () => {
  it("a 64 GiB guest constructs with a heap far below its size and no backing bytes", () => {
    const before = process.memoryUsage();
    const mem = new GuestMemory({ bytes: 64 * GiB, sharedGpaBoundary: 2 ** 46 });
    const after = process.memoryUsage();
    const grown = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
    expect(mem.phys.pages).toBe(16 * 2 ** 20);
    expect(mem.phys.backedPages).toBe(0);
    expect(grown).toBeLessThan(0.01 * 64 * GiB); // < 1 % of the guest's size (about 0.4 % in practice)
    expect(mem.buddyinfo()[10]).toBe(16384 - 1); // one block split for the page-table root
  });

  it("counts real visibility flips only (what page-state checkers key their caches on)", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: 2 ** 46 });
    const pfn = mem.buddy.allocPages(0, { tag: "x" })!;
    expect(mem.phys.visibilityChanges).toBe(0);
    expect(mem.phys.setHostVisible(pfn, true)).toBe(true);
    expect(mem.phys.setHostVisible(pfn, true)).toBe(false);
    expect(mem.phys.setHostVisible(pfn, false)).toBe(true);
    expect(mem.phys.visibilityChanges).toBe(2);
    expect(mem.phys.hostVisiblePages).toBe(0);
  });

  it("setHostVisibleRange flips a range as setHostVisible page by page does: flags, counts, contents", () => {
    const one = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: 2 ** 46 });
    const range = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: 2 ** 46 });
    for (const mem of [one, range]) {
      mem.phys.write(100 * PAGE_SIZE, new Uint8Array(8 * PAGE_SIZE).fill(3));
      mem.phys.setHostVisible(102, true);
    }
    for (let p = 100; p < 108; p++) one.phys.setHostVisible(p, true);
    expect(range.phys.setHostVisibleRange(100, 8, true)).toBe(7);
    for (const mem of [one, range]) expect(mem.phys.hostVisiblePages).toBe(8);
    expect(range.phys.visibilityChanges).toBe(one.phys.visibilityChanges);
    expect(Array.from(range.phys.flags.subarray(99, 109))).toEqual(
      Array.from(one.phys.flags.subarray(99, 109)),
    );
    const a = new Uint8Array(10 * PAGE_SIZE);
    const b = new Uint8Array(10 * PAGE_SIZE);
    one.phys.read(99 * PAGE_SIZE, a);
    range.phys.read(99 * PAGE_SIZE, b);
    expect(b).toEqual(a);
    expect(() => range.phys.setHostVisibleRange(range.phys.pages - 1, 2, true)).toThrowError();
  });

  it("zeroing part of a page that holds no bytes makes none; other values and backed pages are written", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB });
    mem.phys.fill(10 * PAGE_SIZE + 100, 200, 0);
    expect(mem.phys.backedPages).toBe(0);
    mem.phys.fill(11 * PAGE_SIZE + 100, 200, 7);
    expect(mem.phys.backedPages).toBe(1);
    mem.phys.fill(11 * PAGE_SIZE + 150, 50, 0);
    const out = new Uint8Array(300);
    mem.phys.read(11 * PAGE_SIZE, out);
    expect(Array.from(out.subarray(99, 102))).toEqual([0, 7, 7]);
    expect(Array.from(out.subarray(149, 151))).toEqual([7, 0]);
    expect(out[200]).toBe(7);
    mem.phys.read(10 * PAGE_SIZE, out);
    expect(out.every((x) => x === 0)).toBe(true);
  });

  it("kvmalloc of 32 KiB takes an order-3 block and falls back to vmalloc when none is free", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB });
    const va = mem.kvmalloc(32768, { tag: "pfns" })!;
    expect(mem.isDirectMap(va)).toBe(true);
    expect(mem.buddy.blocksByOwner().get("pfns")![3]).toBe(1);
    mem.kvfree(va);
    mem.faults.failCall("pages", 1);
    const fallback = mem.kvmalloc(32768, { tag: "pfns" })!;
    expect(mem.vmalloc.isVmallocAddr(fallback)).toBe(true);
    expect(mem.buddy.warnings).toBe(0); // the kmalloc attempt was __GFP_NOWARN
    mem.kvfree(fallback);
  });

  it("kmalloc rounds to size classes and tracks live and peak bytes by tag", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB });
    const a = mem.kmalloc.kmalloc(1728, { tag: "rxbuf" })!;
    const b = mem.kmalloc.kmalloc(100, { tag: "rxbuf" })!;
    expect(mem.kmalloc.ksize(a)).toBe(2048);
    expect(mem.kmalloc.ksize(b)).toBe(128);
    expect(mem.kmalloc.statsFor("rxbuf")).toMatchObject({ live: 1828, liveFootprint: 2176, peak: 1828 });
    mem.kmalloc.kfree(a);
    expect(mem.kmalloc.statsFor("rxbuf")).toMatchObject({ live: 100, peak: 1828 });
    expect(() => mem.kmalloc.kfree(a)).toThrowError(/kfree-unknown/);
  });

  it("computes the kernel's fragmentation indices", () => {
    // 100 free order-0 pages only: an order-3 request fails for fragmentation.
    const info = [100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    expect(extfragIndex(info, 3)).toBe(1000 - Math.floor((1000 + Math.floor(100_000 / 8)) / 100));
    expect(extfragIndex(info, 0)).toBe(-1000);
    expect(unusableIndex(info, 3)).toBe(1000);
    expect(unusableIndex([0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], 1)).toBe(0);
    expect(unusableIndex([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1)).toBe(1000);
  });
});

describe("uptime workload", () => {
  it("is reproducible from a seed", () => {
    const run = (seed: number): number[] => {
      const mem = new GuestMemory({ bytes: 256 * MiB });
      ageMemory(mem.buddy, seed, "moderate");
      return mem.buddyinfo();
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it("leaves no free 4 MiB block after heavy aging, but keeps most after light aging", () => {
    const heavy = new GuestMemory({ bytes: 512 * MiB });
    const report = ageMemory(heavy.buddy, 1, "heavy");
    expect(report.pinnedPages).toBeGreaterThan(0);
    expect(heavy.buddy.pagesOwnedBy("uptime-pinned")).toBe(report.pinnedPages);
    expect(heavy.buddy.pagesOwnedBy("uptime")).toBe(0);
    expect(heavy.buddyinfo()[10]).toBe(0);
    expect(heavy.fragmentation()[10]!.extfrag).toBeGreaterThan(900);

    const light = new GuestMemory({ bytes: 512 * MiB });
    ageMemory(light.buddy, 1, "light");
    expect(light.buddyinfo()[10]).toBeGreaterThan(64);
  });

  it("rejects nonsense parameters", () => {
    const mem = new GuestMemory({ bytes: 16 * MiB });
    expect(() =>
      ageMemory(mem.buddy, 1, { rounds: 1, fill: 1.5, pinned: 0, medium: 0, orderWeights: [1] }),
    ).toThrow(/uptime-params/);
    expect(mem.phys.pages * PAGE_SIZE).toBe(16 * MiB);
  });
});

describe("memory invariants", () => {
  it("reports a free host-visible page (I1) and a free leaked page (I4)", () => {
    const mem = new GuestMemory({ bytes: 16 * MiB, sharedGpaBoundary: 2 ** 46 });
    expect(mem.checkInvariants()).toEqual([]);
    const freePfn = mem.buddy.allocPages(0, { tag: "x" })!;
    mem.buddy.freePages(freePfn, 0);
    mem.phys.setHostVisible(freePfn, true); // what a buggy caller could do behind the allocator's back
    expect(mem.checkInvariants()).toEqual([
      { invariant: "I1", pfn: freePfn, detail: "free page is host-visible" },
    ]);
  });

  it("attributes a page a kernel freed while visible (freeHostVisible) to that kernel, not to I1", () => {
    const mem = new GuestMemory({ bytes: 16 * MiB, sharedGpaBoundary: 2 ** 46 });
    const pfn = mem.buddy.allocPages(0, { tag: "x" })!;
    const other = mem.buddy.allocPages(0, { tag: "x" })!;
    mem.phys.setHostVisible(pfn, true);
    mem.buddy.freeHostVisible(pfn, 0, "test");
    expect(mem.checkInvariants()).toEqual([]);
    // a second visible free page that nobody freed that way is still a violation
    mem.buddy.freePages(other, 0);
    mem.phys.setHostVisible(other, true);
    expect(mem.checkInvariants()).toEqual([
      { invariant: "I1", pfn: other, detail: "free page is host-visible" },
    ]);
  });

  it("freeingHostVisible: a vfree of a partly visible buffer frees it all, marking only the visible pages", () => {
    const mem = new GuestMemory({ bytes: 16 * MiB, sharedGpaBoundary: 2 ** 46 });
    const va = mem.vmalloc.vzalloc(4 * 4096, { tag: "buf" })!;
    const pfns = [0, 1, 2, 3].map((i) => mem.virtToPfn(va + i * 4096));
    mem.phys.setHostVisible(pfns[1]!, true);
    mem.phys.setHostVisible(pfns[2]!, true);
    expect(() => mem.vmalloc.vfree(va)).toThrowError(/host-visible/);
    mem.buddy.freeingHostVisible("test vfree", () => mem.vmalloc.vfree(va));
    expect(mem.buddy.pagesOwnedBy("buf")).toBe(0);
    expect(mem.buddy.freedWhileVisiblePages).toBe(2);
    expect([...mem.buddy.freedWhileVisible()].sort((a, b) => a - b)).toEqual(
      [pfns[1], pfns[2]].sort((a, b) => a! - b!),
    );
    expect(mem.checkInvariants()).toEqual([]);
    // the scope ends with the call: an ordinary free refuses a visible page again
    const p = mem.buddy.allocPages(0, { tag: "x" })!;
    mem.phys.setHostVisible(p, true);
    expect(() => mem.buddy.freePages(p, 0)).toThrowError(/host-visible/);
  });
});

describe("kmalloc totals", () => {
  it("tracks live, peak and kmalloc_large pages over all tags", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB });
    mem.kmalloc.resetPeak();
    const a = mem.kmalloc.kmalloc(32768, { tag: "a" })!;
    const b = mem.kmalloc.kmalloc(100, { tag: "b" })!;
    expect(mem.kmalloc.totalLive).toBe(32868);
    expect(mem.kmalloc.largePages).toBe(8);
    mem.kmalloc.kfree(a);
    expect(mem.kmalloc.totalLive).toBe(100);
    expect(mem.kmalloc.largePages).toBe(0);
    expect(mem.kmalloc.peakTotalLive).toBe(32868);
    mem.kmalloc.kfree(b);
  });

  it("returns a slab's pages when it empties and builds the next slab of the cache on fresh pages", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB });
    // 2048-byte objects live in order-3 slabs of 16 objects: fill one, spill into a second
    const objs = Array.from({ length: 17 }, () => mem.kmalloc.kmalloc(1600, { tag: "skb" })!);
    const slabPages = mem.buddy.pagesOwnedBy("slab");
    expect(objs[1]! - objs[0]!).toBe(2048);
    expect(objs[8]! - objs[0]!).toBe(4 * PAGE_SIZE); // an object in a tail page of the slab
    expect(mem.kmalloc.owns(objs[8]!)).toBe(true);
    expect(mem.kmalloc.owns(objs[8]! + 8)).toBe(false);
    expect(() => mem.kmalloc.kfree(objs[8]! + 8)).toThrowError(/kfree-unknown/);
    mem.kmalloc.kfree(objs[16]!); // the second slab empties: its 8 pages go back
    expect(mem.buddy.pagesOwnedBy("slab")).toBe(slabPages - 8);
    for (const va of objs.slice(0, 16)) mem.kmalloc.kfree(va);
    expect(mem.buddy.pagesOwnedBy("slab")).toBe(slabPages - 16);
    expect(mem.kmalloc.statsFor("skb")).toMatchObject({ live: 0, liveFootprint: 0, allocations: 17 });
    // the lowest free object of a slab made anew, as before; a freed address is no longer owned
    const again = mem.kmalloc.kmalloc(1600, { tag: "skb" })!;
    expect(mem.kmalloc.ksize(again)).toBe(2048);
    for (const va of objs) expect(mem.kmalloc.owns(va)).toBe(va === again);
    expect(() => mem.kmalloc.kfree(objs[16]!)).toThrowError(/kfree-unknown/);
    mem.kmalloc.kfree(again);
    expect(mem.kmalloc.totalLive).toBe(0);
  });
});
