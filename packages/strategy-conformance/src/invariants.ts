import { PageFlag } from "@ivm/memory";
import type { KitEnv } from "./kit-env.js";

/** A snapshot of what the invariants compare between steps. */
export interface InvariantBaseline {
  readonly faults: number;
  readonly refused: number;
}

export function baseline(env: KitEnv): InvariantBaseline {
  return { faults: env.memory.mmu.totalFaults, refused: env.hyperv.hostView.refused };
}

/**
 * Invariants I1, I2, I4, I7 and I8 after a step of an honest run:
 * I1/I4 from the memory model; I2 — the honest host was never refused; I7 — no guest access faulted;
 * I8 — the strategy's pages are disjoint from the swiotlb pool.
 */
export function checkInvariants(
  env: KitEnv,
  base: InvariantBaseline,
  pfns: readonly number[] = [],
): string[] {
  const out = env.memory.checkInvariants().map((v) => `${v.invariant} ${v.detail} (pfn ${v.pfn})`);
  if (env.hyperv.hostView.refused !== base.refused) out.push("I2 the host was refused access");
  if (env.memory.mmu.totalFaults !== base.faults) out.push("I7 a guest access faulted");
  const pool = env.dmaLayer.pool;
  if (pool) {
    const first = pool.boot.startPfn;
    const last = first + pool.boot.poolPages;
    for (const pfn of pfns)
      if (pfn >= first && pfn < last) out.push(`I8 buffer page ${pfn} lies in the swiotlb pool`);
  }
  return out;
}

/** Pages host-visible now (to compare before and after a whole lifecycle). */
export function hostVisiblePages(env: KitEnv): number {
  return env.memory.phys.hostVisiblePages;
}

/** True when the page behind `pfn` is host-visible. */
export function isHostVisible(env: KitEnv, pfn: number): boolean {
  return env.memory.phys.hasFlag(pfn, PageFlag.HostVisible);
}
