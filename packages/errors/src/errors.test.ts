import { describe, expect, it } from "vitest";
import { ERRNO, IvmError, isIvmError } from "./index.js";

describe("IvmError", () => {
  it("carries the kernel's negative errno, the layer, the reason and the cause", () => {
    const low = new IvmError("hypercall", "EIO", "hv-status", "HV_STATUS_INVALID_PARAMETER");
    const e = new IvmError("vmbus", "EFAULT", "set-memory:hv-status", "visibility change failed", {
      cause: low,
    });
    expect([e.code, e.errno, e.layer, e.reason, e.message]).toEqual([
      "EFAULT",
      -14,
      "vmbus",
      "set-memory:hv-status",
      "EFAULT set-memory:hv-status: visibility change failed",
    ]);
    expect(e.cause).toBe(low);
    expect(isIvmError(e) && isIvmError(low)).toBe(true);
    expect(isIvmError(new Error("x"))).toBe(false);
    expect(new IvmError("memory", "ENOMEM", "oom", "").cause).toBeUndefined();
  });

  it("uses x86-64 Linux errno values", () => {
    expect([ERRNO.EINVAL, ERRNO.ENOMEM, ERRNO.EPROTO, ERRNO.ETIMEDOUT, ERRNO.EDQUOT]).toEqual([
      22, 12, 71, 110, 122,
    ]);
  });
});
