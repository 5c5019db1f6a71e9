import { getProfile, PROFILE_NAMES } from "@ivm/kernel";
import { describe, expect, it } from "vitest";
import { sharedPool } from "./index.js";

describe("shared-pool: the kernels it was written for", () => {
  it("runs on 5.17 on and says why not elsewhere", () => {
    const runs = PROFILE_NAMES.filter((n) => sharedPool.unsupportedOn(getProfile(n)) === null);
    expect(runs).toEqual(["5.17", "6.1", "6.1.91", "6.4", "6.6", "6.6.31", "6.9", "6.12", "6.18"]);
    for (const n of PROFILE_NAMES.filter((x) => !runs.includes(x))) {
      expect(sharedPool.unsupportedOn(getProfile(n))).toMatch(
        new RegExp(`^shared-pool was written for Linux .*, not ${n.replaceAll(".", "\\.")}$`),
      );
    }
    expect(sharedPool.kernels.from).toBe("5.17");
  });
});
