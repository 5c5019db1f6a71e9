import { describe, expect, it } from "vitest";
import { isNetvscError, NetvscError, RejectionCounter, reject } from "./errors.js";

describe("NetvscError", () => {
  it("carries an errno-like code, a reason and the kernel's negative errno", () => {
    const e = new NetvscError("EPROTO", "nvsp-no-version", "no NVSP version accepted");
    expect([e.code, e.reason, e.errno, e.name]).toEqual(["EPROTO", "nvsp-no-version", -71, "NetvscError"]);
    expect(isNetvscError(e)).toBe(true);
    expect(isNetvscError(new Error("x"))).toBe(false);
  });

  it("RejectionCounter counts rejected results by reason", () => {
    const c = new RejectionCounter();
    c.track(reject("EINVAL", "a", "first"));
    c.track(reject("EINVAL", "a", "again"));
    c.track({ ok: true, value: 1 });
    c.count("b");
    expect([c.get("a"), c.get("b"), c.get("c"), c.total]).toEqual([2, 1, 0, 3]);
    expect(c.snapshot()).toEqual({ a: 2, b: 1 });
  });
});
