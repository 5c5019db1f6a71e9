import { describe, expect, it } from "vitest";
import { PrefixViews } from "./prefix-views.js";

describe("PrefixViews", () => {
  it("gives buffer[0, n) as one kept view per n, the buffer itself for its whole length", () => {
    const buf = Uint8Array.from({ length: 64 }, (_, i) => i);
    const p = new PrefixViews(buf);
    const v = p.of(10);
    expect(Array.from(v)).toEqual(Array.from(buf.subarray(0, 10)));
    expect(v.buffer).toBe(buf.buffer);
    expect(p.of(10)).toBe(v);
    expect(p.of(64)).toBe(buf);
    expect(p.of(0).length).toBe(0);
  });

  it("refuses a length outside the buffer", () => {
    const p = new PrefixViews(new Uint8Array(8));
    expect(() => p.of(9)).toThrow(RangeError);
    expect(() => p.of(-1)).toThrow(RangeError);
    expect(() => p.of(1.5)).toThrow(RangeError);
  });

  it("grows into a larger buffer that keeps the bytes, and views of the new one", () => {
    const p = new PrefixViews(Uint8Array.of(1, 2, 3, 4));
    const old = p.of(2);
    p.grow(3);
    expect(p.buffer.length).toBe(4); // already large enough
    p.grow(6);
    expect(p.buffer.length).toBe(8);
    expect(Array.from(p.buffer.subarray(0, 4))).toEqual([1, 2, 3, 4]);
    const fresh = p.of(2);
    expect(fresh).not.toBe(old);
    expect(fresh.buffer).toBe(p.buffer.buffer);
  });
});
