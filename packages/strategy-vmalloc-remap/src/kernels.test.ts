import { getProfile, PROFILE_NAMES } from "@ivm/kernel";
import { describe, expect, it } from "vitest";
import { vmallocRemap } from "./index.js";

describe("vmalloc-remap: the kernels it was written for", () => {
  it("runs on 5.17–6.3 and says why not elsewhere", () => {
    const runs = PROFILE_NAMES.filter((n) => vmallocRemap.unsupportedOn(getProfile(n)) === null);
    expect(runs).toEqual(["5.17", "6.1", "6.1.91"]);
    for (const n of PROFILE_NAMES.filter((x) => !runs.includes(x))) {
      expect(vmallocRemap.unsupportedOn(getProfile(n))).toMatch(
        new RegExp(`^vmalloc-remap was written for Linux .*, not ${n.replaceAll(".", "\\.")}$`),
      );
    }
    expect(vmallocRemap.kernels.from).toBe("5.17");
  });
});
