import { describe, expect, it } from "vitest";
import { enumerateFaults } from "../src/faults.js";
import { ALL_TARGETS, targetName } from "../src/targets.js";

// Every single-fault point of add → traffic → remove, for every strategy in every era it supports:
// each allocation site's call k and each hypercall k failing, partially completing, or answering an
// impossible count.
describe.each(ALL_TARGETS.map((t) => ({ ...t, name: targetName(t) })))("single faults: $name", (target) => {
  it("after every fault the invariants hold, leaks are exactly the unknown pages, and the NIC works or is absent", () => {
    const s = enumerateFaults(target);
    expect(s.failures.map((f) => ({ point: f.point, violations: f.violations }))).toEqual([]);
    expect(s.points).toBeGreaterThan(100);
    expect(s.works).toBeGreaterThan(0);
    expect(s.absent).toBeGreaterThan(0);
    // Something was leaked at some point (a failed conversion), and only there (checked per run).
    expect(s.withLeaks).toBeGreaterThan(0);
  }, 120_000);
});
