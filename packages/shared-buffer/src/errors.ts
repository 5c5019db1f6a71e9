/** Misuse of the contract: a call out of lifecycle order, or a buffer from another strategy. */
export class SharedBufferError extends Error {
  override readonly name: string = "SharedBufferError";
  readonly code: "EINVAL" | "ENOMEM";
  readonly reason: string;
  constructor(code: "EINVAL" | "ENOMEM", reason: string, message: string) {
    super(`${code} ${reason}: ${message}`);
    this.code = code;
    this.reason = reason;
  }
}
