import { describe, expect, it } from "vitest";
import {
  formatKernelRange,
  getProfile,
  inKernelRange,
  type KernelRange,
  kernelRangeReason,
  writtenFor,
} from "../src/index.js";

const remap: KernelRange = { from: "5.17", through: "6.3", written: "846da38de0e8" };
const series: KernelRange = { from: "5.17", through: "5.17", written: "posted against 5.16/5.17" };
const pte: KernelRange = { from: "6.4", written: "812b0597fb40" };

describe("kernel ranges", () => {
  it("compare release lines, so stable releases belong to their line", () => {
    expect(
      ["5.17", "6.1", "6.1.91", "6.4", "6.6.31"].map((n) => inKernelRange(remap, getProfile(n))),
    ).toEqual([true, true, true, false, false]);
    expect(inKernelRange(series, getProfile("5.17"))).toBe(true);
    expect(inKernelRange(series, getProfile("6.1"))).toBe(false);
    expect(inKernelRange(pte, getProfile("6.18"))).toBe(true);
    expect(inKernelRange(pte, getProfile("6.1.91"))).toBe(false);
  });

  it("say why, or null", () => {
    expect(formatKernelRange(remap)).toBe("5.17–6.3");
    expect(formatKernelRange(series)).toBe("5.17 only");
    expect(formatKernelRange(pte)).toBe("6.4 on");
    expect(kernelRangeReason("vmalloc-remap", remap, getProfile("6.1"))).toBeNull();
    expect(kernelRangeReason("vmalloc-remap", remap, getProfile("6.12"))).toBe(
      "vmalloc-remap was written for Linux 5.17–6.3 (846da38de0e8), not 6.12",
    );
    expect(() => inKernelRange({ from: "x", written: "" }, getProfile("6.1"))).toThrow(RangeError);
  });

  it("writtenFor states a range once: the range itself and the refusal built from it", () => {
    const d = writtenFor("vmalloc-remap", remap);
    expect(d.kernels).toBe(remap);
    expect(d.unsupportedOn(getProfile("6.1.91"))).toBeNull();
    expect(d.unsupportedOn(getProfile("6.12"))).toBe(
      kernelRangeReason("vmalloc-remap", remap, getProfile("6.12")),
    );
    // only the release line is read: a bare { name } is enough
    expect(d.unsupportedOn({ name: "6.4" })).toBe(
      "vmalloc-remap was written for Linux 5.17–6.3 (846da38de0e8), not 6.4",
    );
  });
});
