import { describe, expect, it } from "vitest";
import { runChurn } from "../src/churn.js";
import { ALL_TARGETS, targetName } from "../src/targets.js";

describe.each(ALL_TARGETS.map((t) => ({ ...t, name: targetName(t) })))("churn: $name", (target) => {
  it("100 hot add/remove cycles under traffic with random faults: every frame verified or counted", () => {
    const r = runChurn(target, 100, 4242);
    expect(r.violations).toEqual([]);
    expect(r.up).toBeGreaterThan(20);
    expect(r.framesDelivered).toBeGreaterThan(0);
    expect(r.framesSent).toBeGreaterThan(0);
  }, 120_000);
});
