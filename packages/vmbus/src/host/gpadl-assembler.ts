/**
 * Host-side reassembly of a GPADL from CHANNELMSG_GPADL_HEADER + CHANNELMSG_GPADL_BODY messages, in
 * the spirit of OpenVMM's vmbus_server: the header's range bytes and every body's PFN bytes form one
 * stream of range_buflen bytes holding `rangecount` gpa_range structs. Malformed input is rejected
 * with a typed reason, counted, and the half-built state dropped so the handle can be reused.
 */
import { err, type GpadlRejectReason, ok, type Result, VmbusError } from "../errors.js";
import { readU64Number, viewOf } from "../wire/bytes.js";
import type { GpadlBodyMessage, GpadlHeaderMessage } from "../wire/channel-message.js";
import { GPA_RANGE_HEADER_SIZE, HV_HYP_PAGE_SIZE } from "../wire/gpadl.js";

export type { GpadlRejectReason };

export interface GpadlRange {
  readonly byteCount: number;
  readonly byteOffset: number;
  readonly pfns: Float64Array;
}

export interface AssembledGpadl {
  readonly childRelid: number;
  readonly gpadl: number;
  readonly ranges: readonly GpadlRange[];
  /** All PFNs of all ranges, in order. */
  readonly pfns: Float64Array;
}

export type GpadlStep =
  | { readonly kind: "pending"; readonly gpadl: number; readonly received: number; readonly expected: number }
  | { readonly kind: "complete"; readonly value: AssembledGpadl }
  | {
      readonly kind: "rejected";
      readonly gpadl: number;
      readonly reason: GpadlRejectReason;
      readonly error: VmbusError;
    };

interface InProgress {
  readonly childRelid: number;
  readonly rangeCount: number;
  readonly stream: Uint8Array;
  filled: number;
}

export type GpadlRejectCounters = Record<GpadlRejectReason, number>;

function zeroCounters(): GpadlRejectCounters {
  return {
    "count-mismatch": 0,
    "range-buflen-inconsistent": 0,
    "range-inconsistent": 0,
    "no-ranges": 0,
    malformed: 0,
    "pfn-out-of-range": 0,
    "unknown-handle": 0,
    "duplicate-handle": 0,
    "body-for-no-header": 0,
  };
}

export class GpadlAssembler {
  readonly rejected: GpadlRejectCounters = zeroCounters();
  private readonly inProgress = new Map<number, InProgress>();
  private readonly established = new Map<number, AssembledGpadl>();
  /**
   * The stream of the last GPADL finished (or dropped), kept for the next header: a 4096-page GPADL's
   * stream is 32 KiB, and a fresh one per GPADL costs more than the whole assembly. Every byte of a
   * stream is written before it is parsed, so a reused one needs no clearing.
   */
  private spare: Uint8Array | undefined;

  private takeStream(len: number): Uint8Array {
    const spare = this.spare;
    if (spare === undefined || spare.length < len) return new Uint8Array(len);
    this.spare = undefined;
    return spare.subarray(0, len);
  }

  private releaseStream(entry: InProgress): void {
    const whole = new Uint8Array(entry.stream.buffer, 0, entry.stream.buffer.byteLength);
    if (this.spare === undefined || whole.length > this.spare.length) this.spare = whole;
  }

  /** Established GPADLs by handle (the host's table). */
  get(gpadl: number): AssembledGpadl | undefined {
    return this.established.get(gpadl);
  }

  get establishedCount(): number {
    return this.established.size;
  }

  header(msg: GpadlHeaderMessage): GpadlStep {
    const { gpadl } = msg;
    if (this.established.has(gpadl) || this.inProgress.has(gpadl)) {
      // The existing GPADL (or the one being built) is kept; only the new header is refused.
      return this.reject(gpadl, "duplicate-handle", "handle already in use", false);
    }
    if (msg.rangeCount === 0) return this.reject(gpadl, "no-ranges", "rangecount is 0", false);
    const len = msg.rangeBufLen;
    if (len < GPA_RANGE_HEADER_SIZE || len % 8 !== 0) {
      return this.reject(gpadl, "range-buflen-inconsistent", `range_buflen ${len}`, false);
    }
    if (msg.rangeData.length % 8 !== 0) {
      return this.reject(gpadl, "malformed", "header range data is not whole u64s", false);
    }
    if (msg.rangeData.length > len) {
      return this.reject(
        gpadl,
        "range-buflen-inconsistent",
        `header carries ${msg.rangeData.length} range bytes, range_buflen is ${len}`,
        false,
      );
    }
    const entry: InProgress = {
      childRelid: msg.childRelid,
      rangeCount: msg.rangeCount,
      stream: this.takeStream(len),
      filled: msg.rangeData.length,
    };
    entry.stream.set(msg.rangeData);
    this.inProgress.set(gpadl, entry);
    return this.progress(gpadl, entry);
  }

  body(msg: GpadlBodyMessage): GpadlStep {
    const { gpadl } = msg;
    const entry = this.inProgress.get(gpadl);
    if (entry === undefined)
      return this.reject(gpadl, "body-for-no-header", "no GPADL header for this handle", false);
    if (msg.data.length === 0 || msg.data.length % 8 !== 0) {
      return this.reject(gpadl, "malformed", `body carries ${msg.data.length} bytes`, true);
    }
    if (entry.filled + msg.data.length > entry.stream.length) {
      return this.reject(
        gpadl,
        "count-mismatch",
        `${entry.filled + msg.data.length} range bytes exceed range_buflen ${entry.stream.length}`,
        true,
      );
    }
    entry.stream.set(msg.data, entry.filled);
    entry.filled += msg.data.length;
    return this.progress(gpadl, entry);
  }

  /** CHANNELMSG_GPADL_TEARDOWN on the host: forget the handle; unknown handles are refused. */
  teardown(gpadl: number): Result<AssembledGpadl | undefined> {
    const done = this.established.get(gpadl);
    if (done !== undefined) {
      this.established.delete(gpadl);
      return ok(done);
    }
    const half = this.inProgress.get(gpadl);
    if (half !== undefined) {
      this.inProgress.delete(gpadl);
      this.releaseStream(half);
      return ok(undefined);
    }
    this.rejected["unknown-handle"]++;
    return err("EINVAL", "unknown-handle", `teardown of unknown GPADL 0x${gpadl.toString(16)}`);
  }

  private progress(gpadl: number, entry: InProgress): GpadlStep {
    if (entry.filled < entry.stream.length) {
      return { kind: "pending", gpadl, received: entry.filled, expected: entry.stream.length };
    }
    const parsed = parseRanges(entry.stream, entry.rangeCount);
    if (!parsed.ok) return this.reject(gpadl, parsed.reason, parsed.message, true);
    this.inProgress.delete(gpadl);
    this.releaseStream(entry);
    const value: AssembledGpadl = {
      childRelid: entry.childRelid,
      gpadl,
      ranges: parsed.ranges,
      pfns: parsed.pfns,
    };
    this.established.set(gpadl, value);
    return { kind: "complete", value };
  }

  private reject(
    gpadl: number,
    reason: GpadlRejectReason,
    message: string,
    dropInProgress: boolean,
  ): GpadlStep {
    this.rejected[reason]++;
    const entry = dropInProgress ? this.inProgress.get(gpadl) : undefined;
    if (entry !== undefined) {
      this.inProgress.delete(gpadl);
      this.releaseStream(entry);
    }
    const code = reason === "duplicate-handle" || reason === "unknown-handle" ? "EINVAL" : "EPROTO";
    return { kind: "rejected", gpadl, reason, error: new VmbusError(code, reason, message) };
  }
}

type ParsedRanges =
  | { readonly ok: true; readonly ranges: GpadlRange[]; readonly pfns: Float64Array }
  | { readonly ok: false; readonly reason: GpadlRejectReason; readonly message: string };

function parseRanges(stream: Uint8Array, rangeCount: number): ParsedRanges {
  const v = viewOf(stream);
  const total = (stream.length - GPA_RANGE_HEADER_SIZE * rangeCount) / 8;
  if (total < 0 || !Number.isInteger(total)) {
    return {
      ok: false,
      reason: "range-buflen-inconsistent",
      message: `${rangeCount} ranges need more bytes`,
    };
  }
  const all = new Float64Array(total);
  const ranges: GpadlRange[] = [];
  let pos = 0;
  let k = 0;
  for (let r = 0; r < rangeCount; r++) {
    if (pos + GPA_RANGE_HEADER_SIZE > stream.length) {
      return {
        ok: false,
        reason: "range-buflen-inconsistent",
        message: `range ${r} starts past range_buflen`,
      };
    }
    const byteCount = v.getUint32(pos, true);
    const byteOffset = v.getUint32(pos + 4, true);
    pos += GPA_RANGE_HEADER_SIZE;
    if (byteCount === 0 || byteOffset >= HV_HYP_PAGE_SIZE) {
      return {
        ok: false,
        reason: "range-inconsistent",
        message: `range ${r}: offset ${byteOffset}, count ${byteCount}`,
      };
    }
    const n = Math.ceil((byteOffset + byteCount) / HV_HYP_PAGE_SIZE);
    if (pos + 8 * n > stream.length || k + n > total) {
      return {
        ok: false,
        reason: "range-inconsistent",
        message: `range ${r} spans ${n} pages, fewer PFNs sent`,
      };
    }
    const start = k;
    for (let i = 0; i < n; i++, pos += 8) {
      const pfn = readU64Number(v, pos);
      if (pfn < 0)
        return { ok: false, reason: "pfn-out-of-range", message: `range ${r} PFN ${i} is 2^53 or more` };
      all[k++] = pfn;
    }
    ranges.push({ byteCount, byteOffset, pfns: all.subarray(start, k) });
  }
  if (pos !== stream.length) {
    return {
      ok: false,
      reason: "range-inconsistent",
      message: `${(stream.length - pos) / 8} PFNs beyond what byte_offset/byte_count describe`,
    };
  }
  return { ok: true, ranges, pfns: all };
}
