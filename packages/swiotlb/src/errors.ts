/**
 * Errno-like codes the swiotlb layer reports. The kernel's swiotlb itself returns only -1 /
 * DMA_MAPPING_ERROR (the model does too, see `findSlots` and `tblMapSingle`); these codes cover what
 * the kernel would BUG_ON, spin on, or silently corrupt, which the model refuses loudly instead.
 */
export const SWIOTLB_ERRNO = {
  EINVAL: 22,
  ENOMEM: 12,
  EFAULT: 14,
  EDEADLK: 35,
} as const;

export type SwiotlbErrorCode = keyof typeof SWIOTLB_ERRNO;

/**
 * Who is at fault:
 * - `bad-caller`: an argument the kernel would not check (or would BUG_ON): freeing slots that are not
 *   mapped, a wrong offset, a DMA direction of DMA_NONE, a pool that does not fit the slot maths;
 * - `invariant`: the model's own bookkeeping disagrees with itself (a model bug);
 * - `lockup`: the kernel's slot search would spin forever under its spinlock (see `IoTlbMem.findSlots`).
 */
export type SwiotlbFault = "bad-caller" | "invariant" | "lockup";

/**
 * The swiotlb layer's one error family. `reason` is a stable machine-readable tag (for counting and
 * tests); the message is for people.
 */
export class SwiotlbError extends Error {
  override readonly name: string = "SwiotlbError";
  readonly code: SwiotlbErrorCode;
  readonly errno: number;
  readonly fault: SwiotlbFault;
  readonly reason: string;
  constructor(code: SwiotlbErrorCode, fault: SwiotlbFault, reason: string, message: string) {
    super(`${code} ${reason}: ${message}`);
    this.code = code;
    this.errno = SWIOTLB_ERRNO[code];
    this.fault = fault;
    this.reason = reason;
  }
}

export function badCaller(reason: string, message: string): SwiotlbError {
  return new SwiotlbError("EINVAL", "bad-caller", reason, message);
}

/** Throws when `cond` is false; for the model's own bugs only. */
export function invariant(cond: boolean, reason: string, message: string): asserts cond {
  if (!cond) throw new SwiotlbError("EFAULT", "invariant", reason, message);
}
