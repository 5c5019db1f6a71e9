/** Errno-like codes of the hypercall layer, as the kernel's wrappers return them. */
export type HypercallErrorCode = "EINVAL" | "EFAULT" | "EIO" | "ENOMEM" | "EACCES" | "EPROTO" | "EDEADLK";

/**
 * The hypercall layer's error family. `reason` is a stable tag for counting; `status` carries the
 * hypervisor's HV_STATUS when one caused it.
 */
export class HypercallError extends Error {
  override readonly name: string = "HypercallError";
  readonly code: HypercallErrorCode;
  readonly reason: string;
  readonly status: number | undefined;
  constructor(code: HypercallErrorCode, reason: string, message: string, status?: number) {
    super(`${code} ${reason}: ${message}`);
    this.code = code;
    this.reason = reason;
    this.status = status;
  }
}
