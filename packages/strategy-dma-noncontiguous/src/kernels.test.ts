import { getProfile, PROFILE_NAMES } from "@ivm/kernel";
import { describe, expect, it } from "vitest";
import { dmaNoncontiguous } from "./index.js";

describe("dma-noncontiguous: the kernels it was written for", () => {
  it("runs on 5.17–5.17 and says why not elsewhere", () => {
    const runs = PROFILE_NAMES.filter((n) => dmaNoncontiguous.unsupportedOn(getProfile(n)) === null);
    expect(runs).toEqual(["5.17"]);
    for (const n of PROFILE_NAMES.filter((x) => !runs.includes(x))) {
      expect(dmaNoncontiguous.unsupportedOn(getProfile(n))).toMatch(
        new RegExp(`^dma-noncontiguous was written for Linux .*, not ${n.replaceAll(".", "\\.")}$`),
      );
    }
    expect(dmaNoncontiguous.kernels.from).toBe("5.17");
  });
});
