import { bump, type Tally } from "./tally.js";
import { type Target, targetName } from "./targets.js";
import { FuzzWorld, type NicShape, type Violation } from "./world.js";

export const ALLOC_SITES = ["pages", "kmalloc", "vmalloc", "swiotlb"] as const;
export type AllocSite = (typeof ALLOC_SITES)[number];
export const HYPERCALL_FAULTS = ["fail", "partial", "too-many", "no-progress"] as const;
export type HypercallFault = (typeof HYPERCALL_FAULTS)[number];

/** One single-fault point: call k of an allocation site, or hypercall k misbehaving one way. */
export type FaultPoint =
  | { readonly kind: "alloc"; readonly site: AllocSite; readonly k: number }
  | { readonly kind: "hypercall"; readonly fault: HypercallFault; readonly k: number };

/** Small sizes keep each of the many runs cheap: 12 receive sections, 3 send sections, 4-page rings. */
export const FAULT_NIC: NicShape = { rxSections: 12, txSections: 3, ringPages: 4 };
const FAULT_MEMORY_MIB = 64;
const FRAMES = 4;

/** How many calls a clean add → traffic → remove makes at each allocation site and to the hypervisor. */
export interface FaultCounts {
  readonly alloc: Readonly<Record<AllocSite, number>>;
  readonly hypercalls: number;
}

export function countFaultPoints(target: Target): FaultCounts {
  const world = new FuzzWorld({ target, memoryMiB: FAULT_MEMORY_MIB, nic: FAULT_NIC });
  const { memory, hyperv } = world.vm;
  const start = ALLOC_SITES.map((s) => memory.faults.calls(s));
  const hv0 = hyperv.hypervisor.faults.calls;
  scenario(world);
  if (world.violations.length > 0) {
    throw new Error(`clean run of ${targetName(target)} failed: ${JSON.stringify(world.violations)}`);
  }
  const alloc = Object.fromEntries(
    ALLOC_SITES.map((s, i) => [s, memory.faults.calls(s) - start[i]!]),
  ) as Record<AllocSite, number>;
  return { alloc, hypercalls: hyperv.hypervisor.faults.calls - hv0 };
}

/** Every single-fault point of a target's scenario, in a fixed order. */
export function faultPoints(counts: FaultCounts): FaultPoint[] {
  const out: FaultPoint[] = [];
  for (const site of ALLOC_SITES)
    for (let k = 1; k <= counts.alloc[site]; k++) out.push({ kind: "alloc", site, k });
  for (const fault of HYPERCALL_FAULTS)
    for (let k = 1; k <= counts.hypercalls; k++) out.push({ kind: "hypercall", fault, k });
  return out;
}

/**
 * The scenario every fault point runs: hot-add a NIC, move frames both ways, hot-remove it. Returns
 * whether the device came up. The world checks on every remove and failed add that nothing is held
 * but leaked pages (and the metadata that goes with them), that no NIC page stays host-visible unless
 * leaked, and that a leak happened only after a conversion failed.
 */
function scenario(world: FuzzWorld): "works" | "absent" {
  world.step = "add";
  if (!world.addNic()) {
    world.checkInvariants();
    return "absent";
  }
  world.checkInvariants();
  world.step = "traffic";
  const nic = world.nic!;
  const { delivered, verified } = world.traffic(FRAMES, FRAMES, 7);
  world.checkInvariants();
  world.step = "remove";
  world.removeNic();
  world.checkInvariants();
  // Works: every frame the host queued arrived intact, and every frame sent was verified by the host
  // or dropped with a counted reason (an skb or bounce allocation that failed, a batch that never got
  // its last frame), once the device is gone and nothing is in flight.
  const dropped = nic.device.stats.txDrops.total + (world.tally.get("outcome:tx-busy-gave-up") ?? 0);
  const txAccounted = nic.host.counters.txFramesVerified + dropped;
  if (delivered !== FRAMES || verified !== FRAMES)
    world.fail("works", `received ${verified}/${delivered} of ${FRAMES} frames`);
  if (txAccounted !== FRAMES)
    world.fail("works", `${FRAMES} frames sent, ${txAccounted} verified by the host or counted as dropped`);
  return "works";
}

export interface FaultRun {
  readonly point: FaultPoint;
  readonly outcome: "works" | "absent";
  /** The fault was actually hit (a point inside the counted range always is in a deterministic model). */
  readonly injected: boolean;
  readonly leakedPages: number;
  readonly violations: readonly Violation[];
}

/** Runs the scenario on a fresh VM with exactly one fault armed (counted from after boot). */
export function runFaultPoint(target: Target, point: FaultPoint, tally?: Tally): FaultRun {
  const world = new FuzzWorld({ target, memoryMiB: FAULT_MEMORY_MIB, nic: FAULT_NIC });
  const { memory, hyperv } = world.vm;
  const hvFailedBefore = hyperv.hypervisor.counters.failedCalls;
  const untrustedBefore = hyperv.hypercalls.untrustedAnswers;
  const reps0 = hyperv.hypervisor.counters.reps;
  if (point.kind === "alloc") memory.faults.failCall(point.site, point.k);
  else if (point.fault === "fail") hyperv.hypervisor.faults.failCall(point.k);
  // An honest partial completion (one rep), which the guest resumes.
  else if (point.fault === "partial") hyperv.hypervisor.faults.partialReps(point.k, 1);
  else hyperv.hypervisor.faults.impossibleCount(point.k, point.fault);
  let outcome: "works" | "absent" = "absent";
  try {
    outcome = scenario(world);
  } catch (e) {
    world.fail("crash", e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  }
  const injected =
    point.kind === "alloc"
      ? memory.faults.injected === 1
      : hyperv.hypervisor.counters.failedCalls > hvFailedBefore ||
        hyperv.hypercalls.untrustedAnswers > untrustedBefore ||
        hyperv.hypervisor.counters.reps > reps0;
  if (!injected) world.fail("fault-point", "the armed fault was never reached");
  if (tally !== undefined) {
    bump(tally, `faults:${outcome}`);
    if (memory.leakedPages > 0) bump(tally, "faults:runs-with-leaks");
    for (const [k, v] of world.tally) if (k.startsWith("outcome:add-failed")) bump(tally, k, v);
    // what the booted kernel does at this fault point (finding:<id>, counted per point as a session)
    world.collectFindings();
    for (const [k, v] of world.tally) if (k.startsWith("finding")) bump(tally, k, v);
  }
  return { point, outcome, injected, leakedPages: memory.leakedPages, violations: world.violations };
}

export interface FaultSummary {
  readonly target: string;
  readonly counts: FaultCounts;
  readonly points: number;
  readonly works: number;
  readonly absent: number;
  readonly withLeaks: number;
  readonly failures: readonly FaultRun[];
}

/** Every single-fault point of one target, exhaustively. */
export function enumerateFaults(target: Target, tally: Tally = new Map()): FaultSummary {
  const counts = countFaultPoints(target);
  const points = faultPoints(counts);
  let works = 0;
  let withLeaks = 0;
  const failures: FaultRun[] = [];
  for (const p of points) {
    const r = runFaultPoint(target, p, tally);
    if (r.outcome === "works") works++;
    if (r.leakedPages > 0) withLeaks++;
    if (r.violations.length > 0) failures.push(r);
  }
  return {
    target: targetName(target),
    counts,
    points: points.length,
    works,
    absent: points.length - works,
    withLeaks,
    failures,
  };
}
