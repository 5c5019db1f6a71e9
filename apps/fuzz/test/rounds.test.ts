// The campaign's round limit (FUZZ_ROUNDS) cuts off a host that keeps the guest busy for ever; it must
// never cut an honest wait short. Every wait of an honest add, traffic and remove, with any one of the
// host's channel messages delayed by the campaign's longest delay, must end within half the limit.
import type { Scheduler } from "@ivm/vmbus";
import { describe, expect, it } from "vitest";
import { ALL_TARGETS, targetName } from "../src/targets.js";
import { FUZZ_ROUNDS, FuzzWorld, MAX_DELAY_ROUNDS } from "../src/world.js";

const NIC = { rxSections: 12, txSections: 3, ringPages: 4 } as const;

/** The most rounds any wait that ended (runUntil satisfied, runIdle idle) took on this scheduler. */
function watchRounds(s: Scheduler): { max: number } {
  const seen = { max: 0 };
  const until = s.runUntil.bind(s);
  const idle = s.runIdle.bind(s);
  s.runUntil = (done, what) => {
    const r = until(done, what);
    if (r.ok) seen.max = Math.max(seen.max, r.value);
    return r;
  };
  s.runIdle = () => {
    const n = idle();
    if (n < s.maxRoundsPerWait) seen.max = Math.max(seen.max, n);
    return n;
  };
  return seen;
}

/** Add a NIC with the host's `nth` channel message delayed (0: none), move frames, remove it. */
function honestCycle(world: FuzzWorld, nth: number): number {
  const { vm } = world;
  let hostMessages = 0;
  vm.server.hooks.intercept = (_bytes) =>
    ++hostMessages === nth ? { kind: "delay", rounds: MAX_DELAY_ROUNDS } : undefined;
  expect(world.addNic(), `add with message ${nth} delayed`).toBe(true);
  vm.server.hooks.intercept = undefined;
  const { delivered, verified } = world.traffic(6, 6, nth + 1);
  expect([delivered, verified]).toEqual([6, 6]);
  world.removeNic();
  world.checkInvariants();
  expect(world.violations).toEqual([]);
  return hostMessages;
}

describe("the scheduler's round limit", () => {
  it("every honest wait ends within half of FUZZ_ROUNDS, a delayed channel message included", () => {
    for (const target of ALL_TARGETS) {
      const world = new FuzzWorld({ target, memoryMiB: 64, nic: NIC });
      const seen = watchRounds(world.vm.scheduler);
      const messages = honestCycle(world, 0);
      expect(messages, targetName(target)).toBeGreaterThan(4);
      for (let nth = 1; nth <= messages; nth++) honestCycle(world, nth);
      expect(world.vm.scheduler.counters.roundLimits, targetName(target)).toBe(0);
      expect(world.livelocked).toBe(false);
      // A delay is waited out, so the longest wait is at least the delay.
      expect(seen.max, targetName(target)).toBeGreaterThanOrEqual(MAX_DELAY_ROUNDS);
      expect(seen.max, targetName(target)).toBeLessThanOrEqual(FUZZ_ROUNDS / 2);
    }
  }, 60_000);
});
