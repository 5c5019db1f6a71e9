import { describe, expect, it } from "vitest";
import { VmbusInvariantError } from "../errors.js";
import { RING_HEADER } from "../wire/ring-header.js";
import { bytesToRead, bytesToWrite, FlatRingMem, initRingHeader } from "./ring-mem.js";

describe("FlatRingMem (double-mapped data area)", () => {
  it("mirrors a wrapping write so a linear read at any offset sees the ring", () => {
    const m = new FlatRingMem(64);
    const src = Uint8Array.from({ length: 24 }, (_, i) => i + 1);
    m.write(56, src); // 8 bytes at the end, 16 wrap to the start
    const linear = new Uint8Array(24);
    m.read(56, linear);
    expect(Array.from(linear)).toEqual(Array.from(src));
    const start = new Uint8Array(16);
    m.read(0, start);
    expect(Array.from(start)).toEqual(Array.from(src.subarray(8)));
    expect(Array.from(m.dataView().subarray(56))).toEqual(Array.from(src.subarray(0, 8)));
    // whole-ring read from the middle
    const all = new Uint8Array(64);
    m.read(40, all);
    expect(all[16]).toBe(1);
  });

  it("refuses accesses the double mapping would not cover (a model bug)", () => {
    const m = new FlatRingMem(64);
    expect(() => m.read(64, new Uint8Array(1))).toThrow(VmbusInvariantError);
    expect(() => m.write(0, new Uint8Array(65))).toThrow(VmbusInvariantError);
  });

  it("initialises the header as hv_ringbuffer_init does and computes avail like the kernel", () => {
    const m = new FlatRingMem(4096);
    m.writeHeaderU32(RING_HEADER.WRITE_INDEX, 40);
    initRingHeader(m);
    expect(m.readHeaderU32(RING_HEADER.WRITE_INDEX)).toBe(0);
    expect(m.readHeaderU32(RING_HEADER.FEATURE_BITS)).toBe(1);
    expect(m.header[64]).toBe(1);
    expect(bytesToWrite(4096, 0, 0)).toBe(4096);
    expect(bytesToWrite(4096, 100, 40)).toBe(4036);
    expect(bytesToWrite(4096, 40, 100)).toBe(60);
    expect(bytesToRead(4096, 40, 100)).toBe(4036);
  });
});
