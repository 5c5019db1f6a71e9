/**
 * GPADL establishment messages: mirrors create_gpadl_header (drivers/hv/channel.c). The PFN list of
 * a buffer is sent as one CHANNELMSG_GPADL_HEADER (one gpa_range, up to 26 PFNs) followed by
 * CHANNELMSG_GPADL_BODY messages of up to 28 PFNs each.
 */
import { err, invariant, ok, type Result } from "../errors.js";
import { readU64Number, viewOf } from "./bytes.js";
import { CHANNEL_MESSAGE_SIZE, CHANNELMSG, MAX_SIZE_CHANNEL_MESSAGE } from "./channel-message.js";

/** HV_HYP_PAGE_SIZE. */
export const HV_HYP_PAGE_SIZE = 4096;
/** sizeof(struct gpa_range) without its pfn_array: byte_count u32 + byte_offset u32. */
export const GPA_RANGE_HEADER_SIZE = 8;
/** (240 − 20 − 8) / 8 in C integer division: 26 (the header message is 236 bytes at most). */
export const GPADL_HEADER_MAX_PFNS: number = Math.floor(
  (MAX_SIZE_CHANNEL_MESSAGE - CHANNEL_MESSAGE_SIZE.GPADL_HEADER - GPA_RANGE_HEADER_SIZE) / 8,
);
/** (240 − 16) / 8 = 28. */
export const GPADL_BODY_MAX_PFNS: number = Math.floor(
  (MAX_SIZE_CHANNEL_MESSAGE - CHANNEL_MESSAGE_SIZE.GPADL_BODY) / 8,
);
/** connection.c: the first handle vmbus_establish_gpadl hands out (atomic counter, never reused). */
export const GPADL_HANDLE_START = 0xe1e10;

/**
 * Writes PFNs [first, first + n) of `pfns` as u64s (two u32 halves, low first) from `offset`: the pfn_array
 * of a gpa_range or a GPADL body. A PFN outside [0, 2^53) is a model bug (the guest produced it) and throws.
 */
function writePfns(out: DataView, offset: number, pfns: ArrayLike<number>, first: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const pfn = pfns[first + i]!;
    if (!(Number.isSafeInteger(pfn) && pfn >= 0))
      invariant(false, `PFN ${pfn} is not a safe non-negative integer`);
    // ToUint32 of an integer is its value mod 2^32 (no float modulus per PFN).
    const lo = pfn >>> 0;
    out.setUint32(offset + 8 * i, lo, true);
    out.setUint32(offset + 8 * i + 4, (pfn - lo) / 0x1_0000_0000, true);
  }
}

/** Messages needed for N pages: 1 if N ≤ 26, else 1 + ceil((N − 26) / 28). */
export function gpadlMessageCount(pageCount: number): number {
  invariant(Number.isInteger(pageCount) && pageCount >= 0, "page count must be a non-negative integer");
  if (pageCount <= GPADL_HEADER_MAX_PFNS) return 1;
  return 1 + Math.ceil((pageCount - GPADL_HEADER_MAX_PFNS) / GPADL_BODY_MAX_PFNS);
}

/**
 * range_buflen as the kernel computes it into a u16: sizeof(gpa_range) + 8·N, truncated. It wraps
 * for N > 8190 pages (65536 → 0); the model keeps the truncation so the host side sees it.
 */
export function gpadlRangeBufLen(pageCount: number): number {
  return (GPA_RANGE_HEADER_SIZE + 8 * pageCount) & 0xffff;
}

export interface GpadlMessagesInput {
  readonly childRelid: number;
  readonly gpadl: number;
  /** Buffer size in bytes (u32); pagecount = size >> 12 as in create_gpadl_header. */
  readonly sizeBytes: number;
  /** One PFN per 4 KiB page of the buffer, in buffer order (the private-alias PFN in both eras). */
  readonly pfns: ArrayLike<number>;
}

export interface GpadlMessages {
  /** CHANNELMSG_GPADL_HEADER, 28 + 8·min(N, 26) bytes. */
  readonly header: Uint8Array;
  /** CHANNELMSG_GPADL_BODY messages, 16 + 8·k bytes each (k ≤ 28), msgnumber left 0. */
  readonly bodies: readonly Uint8Array[];
  readonly pageCount: number;
}

/**
 * create_gpadl_header: rangecount 1, byte_offset 0, byte_count = size, range_buflen counting all N
 * PFNs (u16-truncated), header with min(N, 26) PFNs, then bodies. PFNs go out as u64 (two u32
 * halves). A PFN list that does not match the size is a caller bug and throws.
 */
export function createGpadlMessages(input: GpadlMessagesInput): GpadlMessages {
  const { childRelid, gpadl, sizeBytes, pfns } = input;
  const pageCount = gpadlPageCount(sizeBytes, pfns);
  const inHeader = Math.min(pageCount, GPADL_HEADER_MAX_PFNS);
  const header = new Uint8Array(CHANNEL_MESSAGE_SIZE.GPADL_HEADER + GPA_RANGE_HEADER_SIZE + 8 * inHeader);
  encodeGpadlHeader(viewOf(header), childRelid, gpadl, sizeBytes, pfns);
  const bodies: Uint8Array[] = [];
  for (let first = inHeader; first < pageCount; first += GPADL_BODY_MAX_PFNS) {
    const n = Math.min(GPADL_BODY_MAX_PFNS, pageCount - first);
    const body = new Uint8Array(CHANNEL_MESSAGE_SIZE.GPADL_BODY + 8 * n);
    encodeGpadlBody(viewOf(body), gpadl, pfns, first);
    bodies.push(body);
  }
  return { header, bodies, pageCount };
}

/** pagecount = size >> 12 as create_gpadl_header computes it; a PFN list of another length throws. */
export function gpadlPageCount(sizeBytes: number, pfns: ArrayLike<number>): number {
  invariant(Number.isInteger(sizeBytes) && sizeBytes >= 0 && sizeBytes <= 0xffff_ffff, "size is a u32");
  const pageCount = Math.floor(sizeBytes / HV_HYP_PAGE_SIZE);
  if (pfns.length !== pageCount) {
    invariant(false, `GPADL of ${sizeBytes} bytes needs ${pageCount} PFNs, got ${pfns.length}`);
  }
  return pageCount;
}

/**
 * The CHANNELMSG_GPADL_HEADER create_gpadl_header builds, written at offset 0 of `out` (at least 236
 * bytes; what lies past the message is left as it was). Returns the message's length, 28 + 8·min(N, 26).
 * With encodeGpadlBody, the encoder for callers that post each message from one reused buffer.
 */
export function encodeGpadlHeader(
  out: DataView,
  childRelid: number,
  gpadl: number,
  sizeBytes: number,
  pfns: ArrayLike<number>,
): number {
  const pageCount = gpadlPageCount(sizeBytes, pfns);
  const inHeader = Math.min(pageCount, GPADL_HEADER_MAX_PFNS);
  out.setUint32(0, CHANNELMSG.GPADL_HEADER, true);
  out.setUint32(4, 0, true);
  out.setUint32(8, childRelid, true);
  out.setUint32(12, gpadl, true);
  out.setUint16(16, gpadlRangeBufLen(pageCount), true);
  out.setUint16(18, 1, true);
  out.setUint32(20, sizeBytes, true); // range[0].byte_count
  out.setUint32(24, 0, true); // range[0].byte_offset
  writePfns(out, 28, pfns, 0, inHeader);
  return CHANNEL_MESSAGE_SIZE.GPADL_HEADER + GPA_RANGE_HEADER_SIZE + 8 * inHeader;
}

/**
 * The CHANNELMSG_GPADL_BODY carrying PFNs [first, first + 28) of `pfns` (fewer for the last one), msgnumber
 * left 0 as the kernel does, written at offset 0 of `out`. Returns its length, 16 + 8·k.
 */
export function encodeGpadlBody(
  out: DataView,
  gpadl: number,
  pfns: ArrayLike<number>,
  first: number,
): number {
  const n = Math.min(GPADL_BODY_MAX_PFNS, pfns.length - first);
  if (!(n > 0)) invariant(false, `no PFNs left for a GPADL body from PFN ${first}`);
  out.setUint32(0, CHANNELMSG.GPADL_BODY, true);
  out.setUint32(4, 0, true);
  out.setUint32(8, 0, true);
  out.setUint32(12, gpadl, true);
  writePfns(out, 16, pfns, first, n);
  return CHANNEL_MESSAGE_SIZE.GPADL_BODY + 8 * n;
}

/**
 * Decodes a u64 PFN array (a GPADL body's data, or a gpa_range's pfn_array) from host-visible bytes.
 * A length that is not whole u64s, or a PFN of 2^53 or more, is an EPROTO result.
 */
export function decodePfnArray(bytes: Uint8Array): Result<Float64Array> {
  if (bytes.length % 8 !== 0)
    return err("EPROTO", "malformed", `${bytes.length} bytes is not whole u64 PFNs`);
  const v = viewOf(bytes);
  const out = new Float64Array(bytes.length / 8);
  for (let i = 0; i < out.length; i++) {
    const pfn = readU64Number(v, 8 * i);
    if (pfn < 0) return err("EPROTO", "pfn-out-of-range", `PFN ${i} is 2^53 or more`);
    out[i] = pfn;
  }
  return ok(out);
}
