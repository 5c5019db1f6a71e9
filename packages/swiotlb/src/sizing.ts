import { badCaller } from "./errors.js";

/** log2 of the slot size (include/linux/swiotlb.h). */
export const IO_TLB_SHIFT = 11 as const;
/** One slot: 2 KiB. */
export const IO_TLB_SIZE = 2048 as const;
/** Slots per segment; no mapping crosses a segment, so the largest mapping is 256 KiB. */
export const IO_TLB_SEGSIZE = 128 as const;
/** The pool size when nothing adjusts it: 64 MiB = 32,768 slots. */
export const IO_TLB_DEFAULT_SIZE: number = 64 * 1024 * 1024;
/** Smallest pool the kernel bothers with (1 MiB); the memblock retry loop stops here. */
export const IO_TLB_MIN_SLABS: number = (1 << 20) >> IO_TLB_SHIFT;
/** x86-64 page size as swiotlb sees it (PAGE_SHIFT 12). */
export const PAGE_SHIFT = 12 as const;
export const PAGE_SIZE = 4096 as const;
/** The SEV/IVM upper clamp (SZ_1G in sev_setup_arch). */
export const SWIOTLB_SEV_MAX_SIZE: number = 1024 * 1024 * 1024;

/** ALIGN(x, a) for a power-of-two `a`, on exact integers below 2^53. */
function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 2 ** 30;
}

/** roundup_pow_of_two for n >= 1 (below 2^53). */
export function roundUpPowerOfTwo(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw badCaller("bad-count", `cannot round ${n} to a power of two`);
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function checkBytes(name: string, bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw badCaller("bad-size", `${name} must be a non-negative safe integer, got ${bytes}`);
  }
}

/**
 * Mirrors sev_setup_arch (arch/x86/mm/mem_encrypt.c, 5.11–5.17; mem_encrypt_amd.c later): 6 % of
 * memblock_phys_mem_size, integer division as the kernel's u64 maths does, clamped to
 * [IO_TLB_DEFAULT_SIZE, SZ_1G]. Returns bytes, before swiotlb_adjust_size rounds them.
 */
export function sevSwiotlbBytes(guestMemBytes: number): number {
  checkBytes("guestMemBytes", guestMemBytes);
  const times6 = guestMemBytes * 6;
  if (!Number.isSafeInteger(times6)) throw badCaller("bad-size", "guest memory too large for exact maths");
  // exact floor(times6 / 100) on integers: subtract the remainder first so the division is exact
  const size = (times6 - (times6 % 100)) / 100;
  return Math.min(Math.max(size, IO_TLB_DEFAULT_SIZE), SWIOTLB_SEV_MAX_SIZE);
}

/**
 * Mirrors swiotlb_adjust_size (kernel/dma/swiotlb.c, 5.15–5.19): bytes are aligned up to a slot,
 * converted to slots, and the slot count aligned up to whole 128-slot segments. Returns nslabs.
 * (6.x additionally calls round_up_default_nslabs here; that only bites when areas were given on the
 * command line, see `swiotlbAreaSizing`.)
 */
export function swiotlbAdjustSize(sizeBytes: number): number {
  checkBytes("sizeBytes", sizeBytes);
  const bytes = alignUp(sizeBytes, IO_TLB_SIZE);
  return alignUp(bytes / IO_TLB_SIZE, IO_TLB_SEGSIZE);
}

/**
 * Mirrors setup_io_tlb_npages for `swiotlb=<slabs>`: the count is aligned up to whole segments and
 * becomes default_nslabs.
 */
export function swiotlbParamSlabs(slabs: number): number {
  checkBytes("slabs", slabs);
  return alignUp(slabs, IO_TLB_SEGSIZE);
}

/** default_nslabs when nothing set it: IO_TLB_DEFAULT_SIZE in slots (32,768). */
export const IO_TLB_DEFAULT_NSLABS: number = IO_TLB_DEFAULT_SIZE / IO_TLB_SIZE;

export interface IvmSwiotlbSizingInput {
  /** memblock_phys_mem_size(): the guest's RAM in bytes. */
  readonly guestMemBytes: number;
  /** `swiotlb=<slabs>` on the kernel command line, if any. */
  readonly swiotlbParamSlabs?: number;
}

/**
 * Slot count of the default pool of a SEV or Hyper-V Isolation VM guest: sev_setup_arch's 6 % rule
 * through swiotlb_adjust_size, unless `swiotlb=` changed default_nslabs. swiotlb_adjust_size only
 * compares default_nslabs with the default, so a `swiotlb=` that aligns to 32,768 slots still gets the
 * IVM sizing. 1 GiB → 32,768; 8 GiB → 251,776; 64 GiB → 524,288.
 */
export function ivmSwiotlbNslabs(input: IvmSwiotlbSizingInput): number {
  if (input.swiotlbParamSlabs !== undefined) {
    const slabs = swiotlbParamSlabs(input.swiotlbParamSlabs);
    if (slabs !== IO_TLB_DEFAULT_NSLABS) return slabs;
  }
  return swiotlbAdjustSize(sevSwiotlbBytes(input.guestMemBytes));
}

/**
 * Which areas rules to apply:
 * - `6.0`: "swiotlb: Split up single swiotlb lock" as merged: nareas must already be a power of two,
 *   and nslabs is rounded up to a power of two only when nareas > 1;
 * - `current` (default): the later 6.x rules (swiotlb_adjust_nareas / round_up_default_nslabs /
 *   limit_nareas): nareas 0 → 1, otherwise rounded up to a power of two; nslabs is raised to at least
 *   128 slots per area and rounded up to a power of two, even with one area (the kernel always calls
 *   swiotlb_adjust_nareas(num_possible_cpus()) before allocating the pool).
 */
export type AreaSizingRules = "6.0" | "current";

export interface AreaSizing {
  readonly nareas: number;
  readonly nslabs: number;
  /** nslabs / nareas, as io_tlb_mem.area_nslabs (integer division). */
  readonly areaNslabs: number;
}

/** Mirrors limit_nareas: no more areas than whole segments in the pool. */
export function limitNareas(nareas: number, nslots: number): number {
  if (nslots < nareas * IO_TLB_SEGSIZE) return Math.floor(nslots / IO_TLB_SEGSIZE);
  return nareas;
}

/**
 * Areas sizing (6.x): `requestedAreas` is num_possible_cpus() or the second `swiotlb=` number.
 * Returns the number of areas and the slot count the pool is then allocated with.
 */
export function swiotlbAreaSizing(
  nslabs: number,
  requestedAreas: number,
  rules: AreaSizingRules = "current",
): AreaSizing {
  checkBytes("nslabs", nslabs);
  checkBytes("requestedAreas", requestedAreas);
  if (rules === "6.0") {
    // the 6.0 swiotlb_adjust_nareas rejects (pr_err) a non-power-of-two count and keeps one area
    const nareas = isPowerOfTwo(requestedAreas) ? requestedAreas : 1;
    const slabs = nareas > 1 ? roundUpPowerOfTwo(nslabs) : nslabs;
    return { nareas, nslabs: slabs, areaNslabs: Math.floor(slabs / nareas) };
  }
  const wanted = requestedAreas === 0 ? 1 : roundUpPowerOfTwo(requestedAreas);
  // round_up_default_nslabs
  let slabs = nslabs;
  if (slabs < IO_TLB_SEGSIZE * wanted) slabs = IO_TLB_SEGSIZE * wanted;
  else if (!isPowerOfTwo(slabs)) slabs = roundUpPowerOfTwo(slabs);
  const nareas = limitNareas(wanted, slabs);
  return { nareas, nslabs: slabs, areaNslabs: Math.floor(slabs / nareas) };
}
