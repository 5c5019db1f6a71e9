import { describe, expect, it } from "vitest";
import { PAGE_SIZE } from "./constants.js";
import { MemoryError } from "./errors.js";
import { PhysicalMemory } from "./phys.js";

describe("PhysicalMemory page pieces", () => {
  it("reads, writes and copies pieces of pages with readInto/writeFrom's bytes", () => {
    const phys = new PhysicalMemory(4 * PAGE_SIZE);
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 13) & 0xff);
    phys.writePage(1, 4000, data, 4, 96);
    const whole = new Uint8Array(96);
    phys.readInto(PAGE_SIZE + 4000, whole, 0, 96);
    expect(whole).toEqual(data.subarray(4, 100));
    const out = new Uint8Array(10);
    phys.readPage(1, 4010, out, 2, 8);
    expect(out.subarray(2)).toEqual(data.subarray(14, 22));
    // a page without bytes copies as zeros; one with bytes copies them, within a page too
    phys.copyPage(1, 4000, 3, 0, 50);
    phys.readPage(1, 4000, whole, 0, 96);
    expect(whole.subarray(0, 50)).toEqual(new Uint8Array(50));
    expect(whole.subarray(50)).toEqual(data.subarray(54, 100));
    phys.copyPage(2, 0, 1, 4050, 46);
    phys.copyPage(2, 10, 2, 0, 46); // overlapping, as memmove
    const moved = new Uint8Array(56);
    phys.readPage(2, 0, moved, 0, 56);
    expect(moved.subarray(10)).toEqual(data.subarray(54, 100));
    expect(moved.subarray(0, 10)).toEqual(data.subarray(54, 64));
    // a short overlapping piece too (forwards: a byte loop would copy bytes it had just written)
    phys.copyPage(2, 3, 2, 1, 6);
    phys.readPage(2, 0, moved, 0, 9);
    expect(Array.from(moved.subarray(0, 9))).toEqual(
      [54, 55, 56, 55, 56, 57, 58, 59, 60].map((i) => data[i]!),
    );
  });

  it("refuses a piece that leaves its page, its buffer or guest RAM, before any byte moves", () => {
    const phys = new PhysicalMemory(2 * PAGE_SIZE);
    const buf = new Uint8Array(16);
    const cases: (() => void)[] = [
      () => phys.writePage(2, 0, buf, 0, 4),
      () => phys.writePage(0, PAGE_SIZE - 2, buf, 0, 4),
      () => phys.writePage(0, 0, buf, 14, 4),
      () => phys.readPage(-1, 0, buf, 0, 4),
      () => phys.readPage(0, 0.5, buf, 0, 4),
      () => phys.copyPage(0, 0, 2, 0, 4),
      () => phys.copyPage(1, PAGE_SIZE - 1, 0, 0, 2),
    ];
    for (const attempt of cases) expect(attempt).toThrowError(MemoryError);
    expect(phys.backedPages).toBe(0);
  });
});
