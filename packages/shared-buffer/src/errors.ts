import { IvmError } from "@ivm/memory";

/** Misuse of the contract: a call out of lifecycle order, or a buffer from another strategy. */
export class SharedBufferError extends IvmError<string, "EINVAL" | "ENOMEM"> {
  override readonly name: string = "SharedBufferError";
  constructor(code: "EINVAL" | "ENOMEM", reason: string, message: string) {
    super("shared-buffer", code, reason, message);
  }
}
