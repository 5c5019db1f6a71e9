// @ivm/errors: the one error type every layer of the lab reports with. Linux returns a negative errno;
// the model carries the same errno, which layer refused, and a stable reason from that layer's own
// literal union (so a user can enumerate every reason), keeping the lower layer's error as `cause`.

/** The errno values the layers use, as on x86-64 Linux (for reports that print -22 as the kernel logs do). */
export const ERRNO = {
  EIO: 5,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  EDEADLK: 35,
  EPROTO: 71,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
  EDQUOT: 122,
} as const;

export type Errno = keyof typeof ERRNO;

/** The layers that report errors. */
export type IvmLayer = "memory" | "hypercall" | "vmbus" | "swiotlb" | "shared-buffer" | "netvsc";

/**
 * The lab's error. `code` is the errno name, `errno` the negative value the kernel function would
 * return, `layer` who refused, `reason` a stable machine-readable tag (counted and matched by tests),
 * the message is for people. A layer may subclass it only to name itself (`VmbusError`…), never to add
 * behaviour.
 */
export class IvmError<R extends string = string, C extends Errno = Errno> extends Error {
  override readonly name: string = "IvmError";
  readonly layer: IvmLayer;
  readonly code: C;
  readonly reason: R;
  constructor(layer: IvmLayer, code: C, reason: R, message: string, options?: { readonly cause?: unknown }) {
    super(
      `${code} ${reason}: ${message}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.layer = layer;
    this.code = code;
    this.reason = reason;
  }

  /** The negative errno the kernel function would return (-22 for EINVAL). */
  get errno(): number {
    return -ERRNO[this.code];
  }
}

export function isIvmError(e: unknown): e is IvmError {
  return e instanceof IvmError;
}
