import { getProfile, PROFILE_NAMES } from "@ivm/kernel";
import { describe, expect, it } from "vitest";
import { vtomPte } from "./index.js";

describe("vtom-pte: the kernels it was written for", () => {
  it("runs on 6.4 on and says why not elsewhere", () => {
    const runs = PROFILE_NAMES.filter((n) => vtomPte.unsupportedOn(getProfile(n)) === null);
    expect(runs).toEqual(["6.4", "6.6", "6.6.31", "6.9", "6.12", "6.18"]);
    for (const n of PROFILE_NAMES.filter((x) => !runs.includes(x))) {
      expect(vtomPte.unsupportedOn(getProfile(n))).toMatch(
        new RegExp(`^vtom-pte was written for Linux .*, not ${n.replaceAll(".", "\\.")}$`),
      );
    }
    expect(vtomPte.kernels.from).toBe("6.4");
  });
});
