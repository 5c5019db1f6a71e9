import { IvmError } from "@ivm/errors";

/** Errno-like codes the memory layer reports. */
export type MemoryErrorCode = "EINVAL" | "ENOMEM" | "EFAULT" | "EBUSY";

/** Every reason a MemoryError carries (a fault's reason is its FaultKind). */
export type MemoryErrorReason =
  | "cpa-align"
  | "cpa-not-isolated"
  | "cpa-pages"
  | "cpa-unmapped"
  | "cpus"
  | "double-free"
  | "free-host-visible"
  | "free-leaked"
  | "free-not-head"
  | "free-order"
  | "free-range"
  | "free-unknown"
  | "free-visible-nested"
  | "kfree-unknown"
  | "kmalloc-size"
  | "ksize-unknown"
  | "leak-free-page"
  | "memory-size"
  | "order"
  | "pfn"
  | "pfn-range"
  | "phys-range"
  | "uptime-params"
  | "uptime-seed"
  | "vfree-not-vmalloc"
  | "vfree-unknown"
  | "virt-to-pfn"
  | "virt-to-phys"
  | "visibility-pfn"
  | "vmalloc-size"
  | "vmalloc-to-pfn"
  | "vmap-decrypted"
  | "vmap-empty"
  | "vmap-pfn"
  | "vtom"
  | "vunmap-unknown"
  | FaultKind;

/**
 * The memory layer's one error family. `reason` is a stable machine-readable tag (for counting and
 * tests); the message is for people.
 */
export class MemoryError extends IvmError<MemoryErrorReason, MemoryErrorCode> {
  override readonly name: string = "MemoryError";
  constructor(code: MemoryErrorCode, reason: MemoryErrorReason, message: string) {
    super("memory", code, reason, message);
  }
}

/** Why an access through the MMU faulted. On SNP hardware the alias faults are RMP/#VC violations. */
export type FaultKind =
  | "unmapped"
  | "not-present"
  | "no-memory"
  | "private-alias-to-shared-page"
  | "shared-alias-to-private-page";

/** A guest access that the hardware model refused; counted by the MMU before it is thrown. */
export class MemoryFault extends MemoryError {
  override readonly name: string = "MemoryFault";
  readonly kind: FaultKind;
  readonly va: number;
  constructor(kind: FaultKind, va: number) {
    super("EFAULT", kind, `guest access at 0x${va.toString(16)} faulted (${kind})`);
    this.kind = kind;
    this.va = va;
  }
}

export function invalid(reason: MemoryErrorReason, message: string): MemoryError {
  return new MemoryError("EINVAL", reason, message);
}
