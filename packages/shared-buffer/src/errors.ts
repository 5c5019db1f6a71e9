import { IvmError } from "@ivm/memory";

/** Every reason a SharedBufferError carries: a wrong size, a call out of lifecycle order, another strategy's buffer, a strategy built without the DMA device or ops it needs. */
export type SharedBufferErrorReason = "dma-device" | "dma-ops" | "foreign-buffer" | "lifecycle" | "size";

/** Misuse of the contract: a call out of lifecycle order, or a buffer from another strategy. */
export class SharedBufferError extends IvmError<SharedBufferErrorReason, "EINVAL" | "ENOMEM"> {
  override readonly name: string = "SharedBufferError";
  constructor(code: "EINVAL" | "ENOMEM", reason: SharedBufferErrorReason, message: string) {
    super("shared-buffer", code, reason, message);
  }
}
