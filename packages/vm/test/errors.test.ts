import { HypercallError } from "@ivm/hypercall";
import { IvmError, MemoryError } from "@ivm/memory";
import { NetvscError } from "@ivm/netvsc-protocol";
import { SharedBufferError } from "@ivm/shared-buffer";
import { SwiotlbError } from "@ivm/swiotlb";
import { VmbusError } from "@ivm/vmbus";
import { describe, expect, it } from "vitest";

describe("one error type for every layer", () => {
  it("each layer's error is an IvmError naming its layer, with the kernel's negative errno", () => {
    const errors = [
      new MemoryError("ENOMEM", "vmalloc-size", "x"),
      new HypercallError("EIO", "hypercall-failed", "x", 5),
      new SwiotlbError("EINVAL", "bad-caller", "bad-offset", "x"),
      new VmbusError("EDQUOT", "gpadl-creation-failed", "x"),
      new SharedBufferError("EINVAL", "lifecycle", "x"),
      new NetvscError("EPROTO", "nvsp-no-version", "x"),
    ];
    expect(errors.every((e) => e instanceof IvmError)).toBe(true);
    expect(errors.map((e) => [e.layer, e.errno])).toEqual([
      ["memory", -12],
      ["hypercall", -5],
      ["swiotlb", -22],
      ["vmbus", -122],
      ["shared-buffer", -22],
      ["netvsc", -71],
    ]);
  });

  it("a wrapping layer keeps the lower layer's error as its cause", () => {
    const low = new VmbusError("ENODEV", "rescinded", "channel rescinded");
    const e = new NetvscError(low.code, "recv-gpadl-failed", low.message, { cause: low });
    expect(e.cause).toBe(low);
    expect(e.layer).toBe("netvsc");
  });
});
