import { GuestMemory } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { SG_MAX_SINGLE_ALLOC, SG_TABLE_TAG, SgTable, sgChunkLayout } from "./scatterlist.js";

const fresh = (): GuestMemory => new GuestMemory({ bytes: 2 ** 28 });

describe("sg_alloc_table chunk layout", () => {
  it("uses 128-entry chunks, 127 usable when chained, and an exact last chunk", () => {
    expect(SG_MAX_SINGLE_ALLOC).toBe(128);
    expect(sgChunkLayout(1)).toEqual([1]);
    expect(sgChunkLayout(128)).toEqual([128]);
    expect(sgChunkLayout(129)).toEqual([128, 2]);
    expect(sgChunkLayout(254)).toEqual([128, 127]);
    expect(sgChunkLayout(255)).toEqual([128, 128]);
    expect(sgChunkLayout(4096)).toHaveLength(33);
  });
});

describe("sg_alloc_table_from_pages", () => {
  it("merges 4096 physically adjacent pages into one entry in one chunk", () => {
    const memory = fresh();
    const pfns = Array.from({ length: 4096 }, (_, i) => 1000 + i);
    const sgt = SgTable.fromPages(memory, pfns, 0, 4096 * 4096)!;
    expect(sgt.origNents).toBe(1);
    expect(sgt.chunks).toBe(1);
    expect(sgt.length[0]).toBe(16 * 2 ** 20);
    expect(sgt.pfn[0]).toBe(1000);
    expect(memory.kmalloc.statsFor(SG_TABLE_TAG).live).toBe(32);
    sgt.free(memory);
    expect(memory.kmalloc.statsFor(SG_TABLE_TAG).live).toBe(0);
  });

  it("gives 4096 non-adjacent pages 4096 entries in 33 chunks, charged to kmalloc", () => {
    const memory = fresh();
    const pfns = Array.from({ length: 4096 }, (_, i) => 2 * i + 10);
    const sgt = SgTable.fromPages(memory, pfns, 0, 4096 * 4096)!;
    expect(sgt.origNents).toBe(4096);
    expect(sgt.chunks).toBe(33);
    // 32 full chunks of a page, then the 32 entries left: 1 KiB
    expect(sgt.chunkBytes).toBe(32 * 4096 + 32 * 32);
    expect(memory.kmalloc.statsFor(SG_TABLE_TAG).live).toBe(32 * 4096 + 1024);
    expect(sgt.totalLength).toBe(16 * 2 ** 20);
    expect(sgt.pfn[4095]).toBe(2 * 4095 + 10);
    sgt.free(memory);
    expect(() => sgt.free(memory)).toThrow(/sg-double-free/);
  });

  it("starts the first entry at the offset, clips the last to the size, and splits runs at max_segment", () => {
    const memory = fresh();
    const pfns = [50, 51, 52, 60, 61];
    const sgt = SgTable.fromPages(memory, pfns, 100, 5 * 4096 - 100 - 300)!;
    expect(Array.from(sgt.offset)).toEqual([100, 0]);
    expect(Array.from(sgt.length)).toEqual([3 * 4096 - 100, 2 * 4096 - 300]);
    const split = SgTable.fromPages(memory, [1, 2, 3, 4, 5], 0, 5 * 4096, { maxSegment: 2 * 4096 })!;
    expect(Array.from(split.pfn)).toEqual([1, 3, 5]);
    expect(Array.from(split.length)).toEqual([8192, 8192, 4096]);
  });

  it("frees what it got when kmalloc fails part-way", () => {
    const memory = fresh();
    memory.faults.failCall("kmalloc", 3);
    const pfns = Array.from({ length: 1000 }, (_, i) => 3 * i);
    expect(SgTable.fromPages(memory, pfns, 0, 1000 * 4096)).toBeNull();
    expect(memory.kmalloc.statsFor(SG_TABLE_TAG).live).toBe(0);
  });
});
