import { IvmError } from "@ivm/errors";

/** Errno-like codes of the hypercall layer, as the kernel's wrappers return them. */
export type HypercallErrorCode = "EINVAL" | "EFAULT" | "EIO" | "ENOMEM" | "EACCES" | "EPROTO" | "EDEADLK";

/**
 * The hypercall layer's error family. `reason` is a stable tag for counting; `status` carries the
 * hypervisor's HV_STATUS when one caused it.
 */
export class HypercallError extends IvmError<string, HypercallErrorCode> {
  override readonly name: string = "HypercallError";
  readonly status: number | undefined;
  constructor(code: HypercallErrorCode, reason: string, message: string, status?: number) {
    super("hypercall", code, reason, message);
    this.status = status;
  }
}
