/**
 * The hypercall ABI (hvgdk_mini.h): control and status words, status codes, and the input page of
 * HvCallModifySparseGpaPageHostVisibility. Control and status words are u64s with fields above bit 32,
 * so they are BigInts: the one place a u64 must be exact.
 */
export const HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY = 0x00db;

export const HvStatus = {
  Success: 0x0000,
  InvalidHypercallCode: 0x0002,
  InvalidHypercallInput: 0x0003,
  InvalidAlignment: 0x0004,
  InvalidParameter: 0x0005,
  AccessDenied: 0x0006,
  OperationDenied: 0x0008,
  InsufficientMemory: 0x000b,
  InvalidPartitionId: 0x000d,
} as const;

/** enum hv_mem_host_visibility: Linux uses only NOT_VISIBLE and READ_WRITE. */
export const HostVisibility = { NotVisible: 0, ReadOnly: 1, ReadWrite: 3 } as const;

/** HV_PARTITION_ID_SELF = (u64)-1. */
export const HV_PARTITION_ID_SELF: bigint = 0xffff_ffff_ffff_ffffn;
export const HV_HYP_PAGE_SIZE = 4096;
/** HV_MAX_MODIFY_GPA_REP_COUNT: (4096 − 16-byte header) / 8 = 510 PFNs per call. */
export const HV_MAX_MODIFY_GPA_REP_COUNT: number = HV_HYP_PAGE_SIZE / 8 - 2;

export interface HypercallControl {
  readonly code: number;
  readonly fast: boolean;
  readonly varHeadSize: number;
  readonly repCount: number;
  readonly repStart: number;
}

/** Encodes a control word: code 0–15, fast 16, varhead 17–26, rep count 32–43, rep start 48–59. */
export function encodeControl(c: HypercallControl): bigint {
  return (
    BigInt(c.code & 0xffff) |
    (c.fast ? 1n << 16n : 0n) |
    (BigInt(c.varHeadSize & 0x3ff) << 17n) |
    (BigInt(c.repCount & 0xfff) << 32n) |
    (BigInt(c.repStart & 0xfff) << 48n)
  );
}

export function decodeControl(word: bigint): HypercallControl {
  return {
    code: Number(word & 0xffffn),
    fast: ((word >> 16n) & 1n) === 1n,
    varHeadSize: Number((word >> 17n) & 0x3ffn),
    repCount: Number((word >> 32n) & 0xfffn),
    repStart: Number((word >> 48n) & 0xfffn),
  };
}

/** Status word: result 0–15, reps completed 32–43. */
export function encodeStatus(result: number, repsCompleted: number): bigint {
  return BigInt(result & 0xffff) | (BigInt(repsCompleted & 0xfff) << 32n);
}

export function decodeStatus(word: bigint): { readonly result: number; readonly repsCompleted: number } {
  return { result: Number(word & 0xffffn), repsCompleted: Number((word >> 32n) & 0xfffn) };
}

/** struct hv_gpa_range_for_visibility: partition_id u64 @0, host_visibility:2 @8, reserved, gpa_page_list @16. */
export interface VisibilityInput {
  readonly partitionId: bigint;
  readonly hostVisibility: number;
  readonly pfns: readonly number[];
}

/** Lays the input page out as the kernel fills it (the unused tail of the page is left as it was). */
export function writeVisibilityInput(
  page: DataView,
  partitionId: bigint,
  visibility: number,
  pfns: ArrayLike<number>,
): void {
  page.setBigUint64(0, partitionId, true);
  page.setUint32(8, visibility & 0x3, true); // host_visibility:2, reserved0:30
  page.setUint32(12, 0, true);
  for (let i = 0; i < pfns.length; i++) {
    const pfn = pfns[i]!;
    // The low half is ToUint32 (exact for any PFN below 2^53), the high half what is left.
    const low = pfn >>> 0;
    page.setUint32(16 + i * 8, low, true);
    page.setUint32(20 + i * 8, (pfn - low) / 0x1_0000_0000, true);
  }
}

/** Reads the header and PFNs [start, start + count) of an input page. */
export function readVisibilityInput(page: DataView, start: number, count: number): VisibilityInput {
  const pfns: number[] = [];
  for (let i = start; i < start + count; i++) {
    pfns.push(page.getUint32(16 + i * 8, true) + page.getUint32(20 + i * 8, true) * 2 ** 32);
  }
  return { partitionId: page.getBigUint64(0, true), hostVisibility: page.getUint32(8, true) & 0x3, pfns };
}
