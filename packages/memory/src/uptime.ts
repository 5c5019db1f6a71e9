import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import type { BuddyAllocator } from "./buddy.js";
import { MAX_ORDER } from "./constants.js";
import { invalid } from "./errors.js";

/** Parameters of the uptime (aging) workload. */
export interface UptimeParams {
  /** Rounds of fill-then-release; each is a burst of activity (a build, a cache refill...). */
  readonly rounds: number;
  /** Share of the free pages at the start of a round that the round allocates. */
  readonly fill: number;
  /** Probability that an allocation is long-lived: pinned for the rest of the guest's life. */
  readonly pinned: number;
  /** Probability that an allocation outlives its round by 1..3 rounds (medium lifetime). */
  readonly medium: number;
  /** Relative weights of orders 0, 1, 2, ... for each allocation. */
  readonly orderWeights: readonly number[];
}

export type UptimeLevel = "none" | "light" | "moderate" | "heavy";

const ORDER_WEIGHTS = [750, 100, 70, 45, 20, 10, 5] as const;

/**
 * The documented presets. "light" touches under a third of memory, so most 4 MiB blocks stay intact;
 * "moderate" and "heavy" fill all of memory each round (as a page cache does) and leave pinned pages
 * behind. Moderate (about 1 in 170 allocations pinned) leaves no free 4 MiB block but a few 2 MiB ones;
 * heavy (1 in 50) leaves no 2 MiB block either — a long-running system without compaction, where even
 * an order-9 VMBus ring allocation fails.
 */
export const UPTIME_LEVELS: Readonly<Record<UptimeLevel, UptimeParams>> = {
  none: { rounds: 0, fill: 0, pinned: 0, medium: 0, orderWeights: ORDER_WEIGHTS },
  light: { rounds: 2, fill: 0.3, pinned: 0.005, medium: 0.05, orderWeights: ORDER_WEIGHTS },
  moderate: { rounds: 4, fill: 1, pinned: 0.006, medium: 0.1, orderWeights: ORDER_WEIGHTS },
  heavy: { rounds: 6, fill: 1, pinned: 0.02, medium: 0.15, orderWeights: ORDER_WEIGHTS },
};

export interface UptimeReport {
  readonly seed: number;
  readonly rounds: number;
  readonly allocations: number;
  readonly failures: number;
  /** Pages that stay allocated (tag "uptime-pinned") after the workload. */
  readonly pinnedPages: number;
  readonly pinnedBlocks: number;
}

/**
 * Ages memory reproducibly: the same seed, parameters and starting state give the same final buddy state.
 * Allocations draw an order from the weights and a lifetime (transient, medium, pinned); transient ones are
 * released in random order at the end of their round, medium ones a few rounds later, and everything but
 * the pinned ones is released when the workload ends.
 */
export function ageMemory(
  buddy: BuddyAllocator,
  seed: number,
  params: UptimeParams | UptimeLevel,
): UptimeReport {
  const p = typeof params === "string" ? UPTIME_LEVELS[params] : params;
  if (!(p.fill >= 0 && p.fill <= 1) || !(p.pinned >= 0 && p.pinned + p.medium <= 1) || p.rounds < 0) {
    throw invalid("uptime-params", "fill must be in [0, 1], pinned + medium in [0, 1], rounds >= 0");
  }
  if (!Number.isSafeInteger(seed)) throw invalid("uptime-seed", `seed must be an integer, got ${seed}`);
  const rng = xoroshiro128plus(seed);
  const weights = p.orderWeights.slice(0, MAX_ORDER);
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const drawOrder = (): number => {
    let r = uniformInt(rng, 0, totalWeight - 1);
    for (let o = 0; o < weights.length; o++) {
      r -= weights[o]!;
      if (r < 0) return o;
    }
    return 0;
  };
  const scale = 1_000_000;
  const pinnedCut = Math.round(p.pinned * scale);
  const mediumCut = pinnedCut + Math.round(p.medium * scale);

  let live: { pfn: number; order: number; until: number }[] = [];
  let allocations = 0;
  let failures = 0;
  let pinnedPages = 0;
  let pinnedBlocks = 0;

  const releaseShuffled = (batch: { pfn: number; order: number }[]): void => {
    for (let i = batch.length - 1; i > 0; i--) {
      const j = uniformInt(rng, 0, i);
      const t = batch[i]!;
      batch[i] = batch[j]!;
      batch[j] = t;
    }
    for (const a of batch) buddy.freePages(a.pfn, a.order);
  };

  for (let round = 0; round < p.rounds; round++) {
    const target = Math.floor(buddy.nrFreePages * p.fill);
    let taken = 0;
    while (taken < target) {
      const order = drawOrder();
      const life = uniformInt(rng, 0, scale - 1);
      const tag = life < pinnedCut ? "uptime-pinned" : "uptime";
      const pfn = buddy.allocPages(order, { tag, gfp: 4 /* NOWARN */ });
      allocations++;
      if (pfn === null) {
        failures++;
        if (failures > 1000) break;
        continue;
      }
      taken += 2 ** order;
      if (tag === "uptime-pinned") {
        pinnedPages += 2 ** order;
        pinnedBlocks++;
      } else {
        const until = life < mediumCut ? round + uniformInt(rng, 1, 3) : round;
        live.push({ pfn, order, until });
      }
    }
    releaseShuffled(live.filter((a) => a.until <= round));
    live = live.filter((a) => a.until > round);
  }
  releaseShuffled(live);
  return { seed, rounds: p.rounds, allocations, failures, pinnedPages, pinnedBlocks };
}
