import { ERRNO, IvmError } from "@ivm/errors";

/**
 * Errno-like codes the netvsc layer reports. The kernel returns -EINVAL for a bad host reply during
 * buffer setup (netvsc_init_buf), -EPROTO when no NVSP version is accepted (netvsc_connect_vsp),
 * -ENOMEM/-ENOSPC/-EAGAIN on the send path. Receive-path rejections have no errno in the kernel (the
 * packet is dropped or completed with NVSP_STAT_FAIL); the model files them under EINVAL.
 */
export type NetvscErrorCode =
  | "EINVAL"
  | "EPROTO"
  | "ENOMEM"
  | "ENOSPC"
  | "EAGAIN"
  | "ENODEV"
  /** Passed up from VMBus by the driver: a post or ring error, a refused GPADL, a visibility change. */
  | "EIO"
  | "EDQUOT"
  | "ENOBUFS"
  | "EFAULT"
  /** The model stopped waiting for a host that never answered (the kernel would sleep forever). */
  | "ETIMEDOUT";

/** Numeric values as on x86-64 Linux (@ivm/errors' table), for reports that print `-22` as the kernel does. */
export const NETVSC_ERRNO: { readonly [K in NetvscErrorCode]: number } = {
  EINVAL: ERRNO.EINVAL,
  EPROTO: ERRNO.EPROTO,
  ENOMEM: ERRNO.ENOMEM,
  ENOSPC: ERRNO.ENOSPC,
  EAGAIN: ERRNO.EAGAIN,
  ENODEV: ERRNO.ENODEV,
  EIO: ERRNO.EIO,
  EDQUOT: ERRNO.EDQUOT,
  ENOBUFS: ERRNO.ENOBUFS,
  EFAULT: ERRNO.EFAULT,
  ETIMEDOUT: ERRNO.ETIMEDOUT,
};

/**
 * The netvsc layer's one error family. `reason` is a stable machine-readable tag (counted by the
 * driver and matched by tests); the message is for people. Decoders of host bytes return these inside
 * a {@link NetvscResult} rather than throwing, because a rejection is an expected, counted event.
 */
export class NetvscError<R extends string = string> extends IvmError<R, NetvscErrorCode> {
  override readonly name: string = "NetvscError";
  constructor(code: NetvscErrorCode, reason: R, message: string, options?: { readonly cause?: unknown }) {
    super("netvsc", code, reason, message, options);
  }
}

/** Outcome of validating host input: a value, or the typed rejection the driver counts. */
export type NetvscResult<T, R extends string = string> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: NetvscError<R> };

export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

export function reject<R extends string>(
  code: NetvscErrorCode,
  reason: R,
  message: string,
): { readonly ok: false; readonly error: NetvscError<R> } {
  return { ok: false, error: new NetvscError(code, reason, message) };
}

export function isNetvscError(e: unknown): e is NetvscError {
  return e instanceof NetvscError;
}

/**
 * Counts rejections by reason, the way the driver's ethtool/rx_err counters would. Kept here so every
 * module files its reasons in one place; the driver owns the instance. `R` is the union of the reasons
 * a counter takes (a reason outside it does not build); the default takes any string.
 */
export class RejectionCounter<R extends string = string> {
  readonly #counts: Map<string, number> = new Map();

  /** Counts `n` events (default one) of `reason`: a dropped batch is one drop per frame in it. */
  count(reason: R, n = 1): void {
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + n);
  }

  /** Count the rejection in `result` (if any) and hand the result back, for chaining. */
  track<T extends NetvscResult<unknown, R>>(result: T): T {
    if (!result.ok) this.count(result.error.reason);
    return result;
  }

  get(reason: R): number {
    return this.#counts.get(reason) ?? 0;
  }

  get total(): number {
    let n = 0;
    for (const v of this.#counts.values()) n += v;
    return n;
  }

  snapshot(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.#counts);
  }
}
