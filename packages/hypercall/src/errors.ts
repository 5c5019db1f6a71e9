import { IvmError } from "@ivm/errors";

/** Errno-like codes of the hypercall layer, as the kernel's wrappers return them. */
export type HypercallErrorCode = "EINVAL" | "EFAULT" | "EIO" | "ENOMEM" | "EACCES" | "EPROTO" | "EDEADLK";

/** Every reason a HypercallError carries. */
export type HypercallErrorReason =
  | "boundary-bits"
  | "host-access-refused"
  | "hypercall-failed"
  | "input-page"
  | "no-hv-map-memory"
  | "no-progress"
  | "page-count"
  | "pfn-array"
  | "rep-spin"
  | "reps-over-count"
  | "too-many-pfns";

/**
 * The hypercall layer's error family. `reason` is a stable tag for counting; `status` carries the
 * hypervisor's HV_STATUS when one caused it.
 */
export class HypercallError extends IvmError<HypercallErrorReason, HypercallErrorCode> {
  override readonly name: string = "HypercallError";
  readonly status: number | undefined;
  constructor(
    code: HypercallErrorCode,
    reason: HypercallErrorReason,
    message: string,
    status?: number,
    options?: { readonly cause?: unknown },
  ) {
    super("hypercall", code, reason, message, options);
    this.status = status;
  }
}
