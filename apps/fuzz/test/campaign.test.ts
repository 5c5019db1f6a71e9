import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { sessionArb } from "../src/arbitraries.js";
import { planCampaign, runTask, summarise } from "../src/campaign.js";
import { runSession } from "../src/session.js";
import { ALL_TARGETS, targetName } from "../src/targets.js";

// The CI smoke campaign. Heavy runs belong to the CLI (`pnpm fuzz --iterations 1000000`).
describe("adversarial host campaign (smoke)", () => {
  it("10,000 adversarial inputs over every strategy and era: no invariant violation", () => {
    const plan = planCampaign(10_000, 2026, ALL_TARGETS, 200, 5);
    const started = performance.now();
    const results = plan.tasks.map(runTask);
    const report = summarise(results, {
      wallMs: performance.now() - started,
      workers: 1,
      seed: 2026,
      targets: ALL_TARGETS.map(targetName),
    });
    expect(report.failures).toEqual([]);
    expect(report.violations).toBe(0);
    expect(report.inputs).toBeGreaterThanOrEqual(10_000);
    // The host really misbehaved, and every layer refused something.
    const c = report.counters;
    const some = (prefix: string): number =>
      Object.entries(c).reduce((n, [k, v]) => (k.startsWith(prefix) ? n + v : n), 0);
    for (const layer of [
      "vmbus-msg-drop",
      "vmbus-ring-clamp",
      "netvsc-rx-drop",
      "netvsc-completion-rejected",
    ])
      expect(some(layer), layer).toBeGreaterThan(0);
    expect(some("outcome:add-failed")).toBeGreaterThan(0);
    expect(c["outcome:add-ok"]).toBeGreaterThan(0);
  }, 240_000);

  // The property form: fast-check shrinks a failing session to a minimal one and prints its seed/path.
  test.prop([sessionArb(ALL_TARGETS, 1, 12)], { numRuns: 40, seed: 7 })(
    "any short session of host misbehaviour keeps I1–I8 and leaves a working guest",
    (input) => {
      expect(runSession(input).violations).toEqual([]);
    },
    120_000,
  );

  it("a campaign is reproducible from its seed", () => {
    const plan = planCampaign(40, 11, ALL_TARGETS.slice(0, 2), 20, 1);
    const a = plan.tasks.map(runTask);
    const b = plan.tasks.map(runTask);
    expect(a.map((r) => r.tally)).toEqual(b.map((r) => r.tally));
    expect(fc.sample(sessionArb(), { seed: 3, numRuns: 1 })).toEqual(
      fc.sample(sessionArb(), { seed: 3, numRuns: 1 }),
    );
  });
});
