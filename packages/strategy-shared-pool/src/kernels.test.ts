import { getProfile, PROFILE_NAMES } from "@ivm/kernel";
import { describe, expect, it } from "vitest";
import { sharedPoolKernels, sharedPoolUnsupportedOn } from "./index.js";

describe("shared-pool: the kernels it was written for", () => {
  it("runs on 5.17 on and says why not elsewhere", () => {
    const runs = PROFILE_NAMES.filter((n) => sharedPoolUnsupportedOn(getProfile(n)) === null);
    expect(runs).toEqual(["5.17", "6.1", "6.1.91", "6.4", "6.6", "6.6.31", "6.9", "6.12", "6.18"]);
    for (const n of PROFILE_NAMES.filter((x) => !runs.includes(x))) {
      expect(sharedPoolUnsupportedOn(getProfile(n))).toMatch(
        new RegExp(`^shared-pool was written for Linux .*, not ${n.replaceAll(".", "\\.")}$`),
      );
    }
    expect(sharedPoolKernels.from).toBe("5.17");
  });
});
