import fc from "fast-check";
import { ALLOC_SITES, countFaultPoints, FAULT_NIC, type FaultPoint, HYPERCALL_FAULTS } from "./faults.js";
import { bump, collectVm, type Tally } from "./tally.js";
import { type Target, targetName } from "./targets.js";
import { FuzzWorld, type Violation } from "./world.js";

export interface ChurnReport {
  readonly target: string;
  readonly cycles: number;
  /** Cycles whose add succeeded. */
  readonly up: number;
  readonly framesDelivered: number;
  readonly framesSent: number;
  /** Sent frames the driver dropped, by reason (each counted once per frame). */
  readonly drops: Readonly<Record<string, number>>;
  readonly leakedPages: number;
  readonly violations: readonly Violation[];
  readonly tally: Tally;
}

/** One cycle's choices; fast-check draws them from the seed, so a churn run is reproducible. */
const cycleArb = fc.record({
  /** 0 runs the cycle clean (one in four). */
  clean: fc.nat({ max: 3 }),
  hypercall: fc.nat({ max: 2 }),
  which: fc.nat(),
  k: fc.nat(),
  tx: fc.integer({ min: 1, max: 8 }),
  rx: fc.integer({ min: 0, max: 7 }),
});
type Cycle = typeof cycleArb extends fc.Arbitrary<infer T> ? T : never;

/**
 * Hot add/remove cycles on one long-lived VM, each under traffic and with one random fault armed (any
 * allocation site or hypercall, at a call index inside what a clean cycle makes; one cycle in four runs
 * clean). Every delivered frame must verify, every sent frame must be verified by the host or dropped
 * with a counted reason, and after each cycle the invariants hold and nothing is held but leaks.
 */
export function runChurn(target: Target, cycles: number, seed: number): ChurnReport {
  const counts = countFaultPoints(target);
  const plan = fc.sample(cycleArb, { seed, numRuns: cycles });
  const world = new FuzzWorld({ target, memoryMiB: 128, nic: FAULT_NIC });
  const { vm } = world;
  let up = 0;
  let delivered = 0;
  let sent = 0;
  const drops: Record<string, number> = {};
  for (const [c, cycle] of plan.entries()) {
    world.step = `cycle ${c}`;
    const point = cycle.clean === 0 ? null : pointFor(counts, cycle);
    if (point?.kind === "alloc") vm.memory.faults.failCall(point.site, point.k);
    else if (point?.kind === "hypercall") {
      const f = vm.hyperv.hypervisor.faults;
      if (point.fault === "fail") f.failCall(point.k);
      else if (point.fault === "partial") f.partialReps(point.k, 1);
      else f.impossibleCount(point.k, point.fault);
    }
    bump(
      world.tally,
      `churn:${point === null ? "clean" : point.kind === "alloc" ? point.site : point.fault}`,
    );
    try {
      if (world.addNic()) {
        up++;
        const nic = world.nic!;
        const { tx, rx } = cycle;
        const r = world.traffic(tx, rx, c + 1);
        if (r.delivered !== rx || r.verified !== rx)
          world.fail("churn", `received ${r.verified}/${r.delivered} of ${rx}`);
        world.checkInvariants();
        world.removeNic();
        const s = nic.device.stats;
        const gaveUp = world.tally.get("outcome:tx-busy-gave-up") ?? 0;
        world.tally.delete("outcome:tx-busy-gave-up");
        if (gaveUp > 0) drops["tx-busy-gave-up"] = (drops["tx-busy-gave-up"] ?? 0) + gaveUp;
        for (const [k, v] of Object.entries(s.txDrops.snapshot())) drops[k] = (drops[k] ?? 0) + v;
        const accounted = nic.host.counters.txFramesVerified + s.txDrops.total + gaveUp;
        if (accounted !== tx)
          world.fail("churn", `${tx} frames sent, ${accounted} verified or counted as dropped`);
        delivered += r.delivered;
        sent += tx;
      }
    } catch (e) {
      world.fail("crash", e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    }
    vm.memory.faults.clear();
    vm.hyperv.hypervisor.faults.clear();
    world.checkInvariants();
  }
  collectVm(world.tally, vm);
  return {
    target: targetName(target),
    cycles,
    up,
    framesDelivered: delivered,
    framesSent: sent,
    drops,
    leakedPages: vm.memory.leakedPages,
    violations: world.violations,
    tally: world.tally,
  };
}

/** The cycle's fault: a hypercall misbehaving (one in three) or an allocation site failing, at a call k. */
function pointFor(counts: ReturnType<typeof countFaultPoints>, c: Cycle): FaultPoint {
  const hv = counts.hypercalls;
  if (hv > 0 && c.hypercall === 0) {
    return {
      kind: "hypercall",
      fault: HYPERCALL_FAULTS[c.which % HYPERCALL_FAULTS.length]!,
      k: 1 + (c.k % hv),
    };
  }
  const sites = ALLOC_SITES.filter((s) => counts.alloc[s] > 0);
  const site = sites[c.which % sites.length]!;
  return { kind: "alloc", site, k: 1 + (c.k % counts.alloc[site]) };
}
