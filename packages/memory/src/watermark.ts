import { PAGE_SHIFT } from "./constants.js";

/** The zone watermarks in pages (zone->_watermark[WMARK_MIN/LOW/HIGH]). */
export interface ZoneWatermarks {
  readonly min: number;
  readonly low: number;
  readonly high: number;
}

/** watermark_scale_factor's default: 10 / 10000 of the zone. */
export const WATERMARK_SCALE_FACTOR = 10;

/**
 * calculate_min_free_kbytes() / init_per_zone_wmark_min() (mm/page_alloc.c, 5.x): sqrt(lowmem KiB × 16)
 * with the integer square root, clamped to [128 KiB, 256 MiB] (the upper bound was 64 MiB before 5.8).
 * khugepaged's set_recommended_min_free_kbytes (which raises it when THP is on) is not modelled.
 */
export function minFreeKbytes(managedPages: number): number {
  const lowmemKbytes = managedPages * (1 << (PAGE_SHIFT - 10));
  const k = Math.floor(Math.sqrt(lowmemKbytes * 16));
  return Math.min(262_144, Math.max(128, k));
}

/**
 * __setup_per_zone_wmarks() for a guest with one zone: min is min_free_kbytes in pages (the zone's share
 * of lowmem is all of it); low and high add max(min / 4, managed × watermark_scale_factor / 10000) once and
 * twice. Watermark boosting (boost_watermark after a fallback) is not modelled.
 */
export function zoneWatermarks(managedPages: number): ZoneWatermarks {
  const min = minFreeKbytes(managedPages) >> (PAGE_SHIFT - 10);
  const gap = Math.max(min >> 2, Math.floor((managedPages * WATERMARK_SCALE_FACTOR) / 10_000));
  return { min, low: min + gap, high: min + 2 * gap };
}
