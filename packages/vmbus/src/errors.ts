import { IvmError } from "@ivm/errors";
import type { HypercallErrorReason } from "@ivm/hypercall";

/**
 * Errno-like codes the VMBus layer reports, named after what the kernel's drivers/hv code returns
 * (`hv_ringbuffer_write` -EAGAIN/-ENODEV, `vmbus_sendpacket_pagebuffer` -EINVAL, `hv_ringbuffer_read`
 * -ENOBUFS, `__vmbus_establish_gpadl` -EDQUOT). EIO/EPROTO cover host input the kernel never checks
 * (corrupt ring indices, malformed messages), which the model rejects instead of trusting; ETIMEDOUT
 * is the model's answer to a host that never replies (see Scheduler.runUntil).
 */
export type VmbusErrno =
  | "EAGAIN"
  | "ENODEV"
  | "EINVAL"
  | "ENOBUFS"
  | "EDQUOT"
  | "ENOMEM"
  | "EIO"
  | "EPROTO"
  /** set_memory_decrypted/encrypted in the address-bit era (hv_mark_gpa_visibility's -EFAULT). */
  | "EFAULT"
  /**
   * The model gave up waiting for the host. The kernel has no such error: wait_for_completion in
   * __vmbus_establish_gpadl, __vmbus_open and vmbus_teardown_gpadl waits forever.
   */
  | "ETIMEDOUT";

/** Why the request table refused a completion's trans_id (request-table.ts counts each). */
export type RequestRejectReason =
  /** trans_id 0: reserved for unsolicited host messages. */
  | "zero-id"
  /** trans_id − 1 ≥ table size: a forged id. */
  | "out-of-range"
  /** The slot is free: a duplicate completion, or an id never handed out. */
  | "not-outstanding"
  /** The slot is outstanding for a different request (the caller's rqst_addr check); not freed. */
  | "mismatch";

/** Why the host server refused a GPADL's messages (host/gpadl-assembler.ts counts each). */
export type GpadlRejectReason =
  /** More PFN bytes arrived than range_buflen announced. */
  | "count-mismatch"
  /** range_buflen is not a whole number of u64s, too small for the ranges, or shorter than the header's data. */
  | "range-buflen-inconsistent"
  /** A range's byte_offset/byte_count do not match the PFNs it carries (or byte_offset ≥ 4096, byte_count 0). */
  | "range-inconsistent"
  | "no-ranges"
  | "malformed"
  | "pfn-out-of-range"
  | "unknown-handle"
  | "duplicate-handle"
  | "body-for-no-header";

/** Every reason a VmbusError carries; a refused visibility change is `set-memory:` and the HypercallError's reason (kept as `cause`). */
export type VmbusErrorReason =
  | "already-connected"
  | "bad-offsets"
  | "bad-range"
  | "bad-state"
  | "corrupt-ring"
  /** A CpuTopology that cannot exist (vp-index.ts). */
  | "cpu-topology"
  | "gpadl-creation-failed"
  | "host-never-answered"
  | "malformed"
  | "monitor-pages"
  | "monitor-pages-decrypt"
  | "monitor-pages-memremap"
  | "msginfo"
  | "no-common-version"
  | "no-gpadl"
  | "no-ranges"
  | "no-request-table"
  | "not-open"
  | "open-refused"
  | "oversize-message"
  | "pfn-out-of-range"
  | "pkt-buffer"
  | "post-failed"
  | "post-retry-exhausted"
  | "ranges-overflow"
  | "rebase-pfn-mismatch"
  | "rebase-unmapped"
  | "request-table-full"
  | "requestor"
  | "rescinded"
  | "ring-full"
  | "ring-map"
  | "ring-pages"
  | "ring-size"
  | "ring-wraparound"
  | "round-limit"
  | "short-message"
  | "short-packet"
  | "too-many-page-buffers"
  | "u64-out-of-range"
  | "unknown-handle"
  | "userdata-too-long"
  | "version-too-old"
  | "zero-range-count"
  | `set-memory:${HypercallErrorReason}`
  /** The host server's refusals of a GPADL (host/gpadl-assembler.ts; declared here, which both sides import). */
  | GpadlRejectReason
  /** A completion that matches no outstanding request (request-table.ts). */
  | RequestRejectReason;

/**
 * The VMBus layer's one error family. `reason` is a stable machine-readable tag (for counting and
 * tests); the message is for people. Bad host input is reported with this type, never thrown as
 * anything else.
 */
export class VmbusError extends IvmError<VmbusErrorReason, VmbusErrno> {
  override readonly name: string = "VmbusError";
  constructor(
    code: VmbusErrno,
    reason: VmbusErrorReason,
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super("vmbus", code, reason, message, options);
  }
}

/**
 * A broken invariant inside the model itself (a caller bug, never host input). Thrown loudly, as
 * OpenHCL `assert!`s its own invariants; tests treat it as a failure.
 */
export class VmbusInvariantError extends Error {
  override readonly name: string = "VmbusInvariantError";
}

/** Outcome of an operation that can fail on host input: a value or a typed error, never a throw. */
export type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: VmbusError };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

/** The one success value of a void operation, shared so that a hot path allocates nothing. */
export const OK_VOID: Result<void> = Object.freeze({ ok: true, value: undefined });

export function err<T = never>(code: VmbusErrno, reason: VmbusErrorReason, message: string): Result<T> {
  return { ok: false, error: new VmbusError(code, reason, message) };
}

/** Throws a VmbusInvariantError when `cond` is false; for the model's own bugs only. */
export function invariant(cond: boolean, message: string): asserts cond {
  if (!cond) throw new VmbusInvariantError(message);
}
