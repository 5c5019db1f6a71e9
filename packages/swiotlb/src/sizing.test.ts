import { describe, expect, it } from "vitest";
import {
  IO_TLB_DEFAULT_SIZE,
  IO_TLB_SEGSIZE,
  IO_TLB_SIZE,
  ivmSwiotlbNslabs,
  limitNareas,
  sevSwiotlbBytes,
  swiotlbAdjustSize,
  swiotlbAreaSizing,
} from "./sizing.js";

const GiB = 1024 ** 3;

describe("5.17 SEV/IVM pool size (sev_setup_arch + swiotlb_adjust_size)", () => {
  it("gives 32,768 / 251,776 / 524,288 slots for 1, 8 and 64 GiB guests", () => {
    expect(ivmSwiotlbNslabs({ guestMemBytes: 1 * GiB })).toBe(32_768);
    expect(ivmSwiotlbNslabs({ guestMemBytes: 8 * GiB })).toBe(251_776);
    expect(ivmSwiotlbNslabs({ guestMemBytes: 64 * GiB })).toBe(524_288);
  });

  it("takes 6 % with integer division, then clamps to [64 MiB, 1 GiB]", () => {
    // 8 GiB * 6 / 100 = 515,396,075.52 → 515,396,075
    expect(sevSwiotlbBytes(8 * GiB)).toBe(515_396_075);
    expect(sevSwiotlbBytes(1 * GiB)).toBe(IO_TLB_DEFAULT_SIZE);
    expect(sevSwiotlbBytes(64 * GiB)).toBe(GiB);
  });

  it("aligns bytes to a slot, then slots to whole segments", () => {
    // 515,396,075 B → 251,659 slots (515,397,632 B) → 1,967 segments
    expect(swiotlbAdjustSize(515_396_075)).toBe(1967 * IO_TLB_SEGSIZE);
    expect(swiotlbAdjustSize(1)).toBe(IO_TLB_SEGSIZE);
    expect(swiotlbAdjustSize(IO_TLB_SIZE * IO_TLB_SEGSIZE)).toBe(IO_TLB_SEGSIZE);
  });

  it("lets swiotlb=<slabs> win, aligned to a segment", () => {
    expect(ivmSwiotlbNslabs({ guestMemBytes: 64 * GiB, swiotlbParamSlabs: 1000 })).toBe(1024);
  });
});

describe("areas sizing (6.x)", () => {
  it("later 6.x: power-of-two areas, >= 128 slots each, power-of-two pool even with one area", () => {
    expect(swiotlbAreaSizing(251_776, 1)).toEqual({ nareas: 1, nslabs: 262_144, areaNslabs: 262_144 });
    expect(swiotlbAreaSizing(251_776, 6)).toEqual({ nareas: 8, nslabs: 262_144, areaNslabs: 32_768 });
    expect(swiotlbAreaSizing(512, 16)).toEqual({ nareas: 16, nslabs: 2048, areaNslabs: 128 });
    expect(swiotlbAreaSizing(32_768, 0)).toEqual({ nareas: 1, nslabs: 32_768, areaNslabs: 32_768 });
  });

  it("6.0 as merged: rounds the pool only with several areas, rejects a non-power-of-two count", () => {
    expect(swiotlbAreaSizing(251_776, 1, "6.0")).toEqual({ nareas: 1, nslabs: 251_776, areaNslabs: 251_776 });
    expect(swiotlbAreaSizing(251_776, 6, "6.0")).toEqual({ nareas: 1, nslabs: 251_776, areaNslabs: 251_776 });
    expect(swiotlbAreaSizing(251_776, 8, "6.0")).toEqual({ nareas: 8, nslabs: 262_144, areaNslabs: 32_768 });
  });

  it("limit_nareas keeps at least one segment per area", () => {
    expect(limitNareas(8, 512)).toBe(4);
    expect(limitNareas(4, 512)).toBe(4);
  });
});
