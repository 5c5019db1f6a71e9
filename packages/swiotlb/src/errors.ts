import { ERRNO, IvmError } from "@ivm/errors";

/**
 * Errno-like codes the swiotlb layer reports. The kernel's swiotlb itself returns only -1 /
 * DMA_MAPPING_ERROR (the model does too, see `findSlots` and `tblMapSingle`); these codes cover what
 * the kernel would BUG_ON, spin on, or silently corrupt, which the model refuses loudly instead.
 */
export const SWIOTLB_ERRNO: { readonly [K in SwiotlbErrorCode]: number } = {
  EINVAL: ERRNO.EINVAL,
  ENOMEM: ERRNO.ENOMEM,
  EFAULT: ERRNO.EFAULT,
  EDEADLK: ERRNO.EDEADLK,
};

export type SwiotlbErrorCode = "EINVAL" | "ENOMEM" | "EFAULT" | "EDEADLK";

/**
 * Who is at fault:
 * - `bad-caller`: an argument the kernel would not check (or would BUG_ON): freeing slots that are not
 *   mapped, a wrong offset, a DMA direction of DMA_NONE, a pool that does not fit the slot maths;
 * - `invariant`: the model's own bookkeeping disagrees with itself (a model bug);
 * - `lockup`: the kernel's slot search would spin forever under its spinlock (see `IoTlbMem.findSlots`).
 */
export type SwiotlbFault = "bad-caller" | "invariant" | "lockup";

/** Every reason a SwiotlbError carries. */
export type SwiotlbErrorReason =
  | "address-mismatch"
  | "area-used"
  | "bad-address"
  | "bad-count"
  | "bad-direction"
  | "bad-mask"
  | "bad-nents"
  | "bad-offset"
  | "bad-pages"
  | "bad-pool"
  | "bad-segment"
  | "bad-sgt"
  | "bad-size"
  | "no-hyperv"
  | "outside-pool"
  | "search-never-wraps"
  | "sg-double-free"
  | "slot-count"
  | "slot-free"
  | "not-mapping-start"
  | "slots-alloc"
  | "unmap-unknown"
  | "zero-size";

/**
 * The swiotlb layer's one error family. `reason` is a stable machine-readable tag (for counting and
 * tests); the message is for people.
 */
export class SwiotlbError extends IvmError<SwiotlbErrorReason, SwiotlbErrorCode> {
  override readonly name: string = "SwiotlbError";
  readonly fault: SwiotlbFault;
  constructor(code: SwiotlbErrorCode, fault: SwiotlbFault, reason: SwiotlbErrorReason, message: string) {
    super("swiotlb", code, reason, message);
    this.fault = fault;
  }
}

export function badCaller(reason: SwiotlbErrorReason, message: string): SwiotlbError {
  return new SwiotlbError("EINVAL", "bad-caller", reason, message);
}

/** Throws when `cond` is false; for the model's own bugs only. */
export function invariant(cond: boolean, reason: SwiotlbErrorReason, message: string): asserts cond {
  if (!cond) throw new SwiotlbError("EFAULT", "invariant", reason, message);
}
