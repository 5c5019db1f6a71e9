import { getProfile, PROFILE_NAMES } from "@ivm/kernel";
import { describe, expect, it } from "vitest";
import { pageBlocks } from "./index.js";

describe("page-blocks: the kernels it was written for", () => {
  it("runs on 5.17–5.17 and says why not elsewhere", () => {
    const runs = PROFILE_NAMES.filter((n) => pageBlocks.unsupportedOn(getProfile(n)) === null);
    expect(runs).toEqual(["5.17"]);
    for (const n of PROFILE_NAMES.filter((x) => !runs.includes(x))) {
      expect(pageBlocks.unsupportedOn(getProfile(n))).toMatch(
        new RegExp(`^page-blocks was written for Linux .*, not ${n.replaceAll(".", "\\.")}$`),
      );
    }
    expect(pageBlocks.kernels.from).toBe("5.17");
  });
});
