import { IvmError } from "@ivm/errors";

/** Errno-like codes the memory layer reports. */
export type MemoryErrorCode = "EINVAL" | "ENOMEM" | "EFAULT" | "EBUSY";

/**
 * The memory layer's one error family. `reason` is a stable machine-readable tag (for counting and
 * tests); the message is for people.
 */
export class MemoryError extends IvmError<string, MemoryErrorCode> {
  override readonly name: string = "MemoryError";
  constructor(code: MemoryErrorCode, reason: string, message: string) {
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

export function invalid(reason: string, message: string): MemoryError {
  return new MemoryError("EINVAL", reason, message);
}
