import type { Era } from "@ivm/hypercall";
import { inKernelRange, PROFILE_NAMES, type ProfileName, profiles } from "@ivm/kernel";
import { dmaDecrypted } from "@ivm/strategy-dma-decrypted";
import { dmaNoncontiguous } from "@ivm/strategy-dma-noncontiguous";
import { pageBlocks } from "@ivm/strategy-page-blocks";
import { sharedPool } from "@ivm/strategy-shared-pool";
import { vmallocRemap } from "@ivm/strategy-vmalloc-remap";
import { vtomPte } from "@ivm/strategy-vtom-pte";
import type { VmStrategy } from "@ivm/vm";

/** One entry of the seed's comparison: a strategy package's own descriptor, nothing added. */
export type StrategyEntry = VmStrategy;

/** The seed's comparison, in the order of its approaches. */
export const STRATEGIES: readonly StrategyEntry[] = [
  vmallocRemap,
  dmaDecrypted,
  dmaNoncontiguous,
  pageBlocks,
  vtomPte,
  sharedPool,
];

export function strategyByName(name: string): StrategyEntry | undefined {
  return STRATEGIES.find((s) => s.name === name);
}

export { PAGE_PALETTE } from "./palette.js";
export { formatBytes, parseSize } from "./units.js";

/** The profiles a strategy was written for, oldest first (its declared range over the lab's kernels). */
export function kernelsOf(entry: StrategyEntry): ProfileName[] {
  return PROFILE_NAMES.filter((name) => inKernelRange(entry.kernels, profiles[name]));
}

/**
 * The (strategy, era) pairs to run: every strategy in each era it supports, optionally only the named
 * strategies and the given eras, in the catalog's order.
 */
export function strategyEras(
  o: { readonly names?: readonly string[]; readonly eras?: readonly Era[] } = {},
): { entry: StrategyEntry; era: Era }[] {
  return STRATEGIES.filter((s) => !o.names || o.names.includes(s.name)).flatMap((entry) =>
    entry.eras.filter((era) => !o.eras || o.eras.includes(era)).map((era) => ({ entry, era })),
  );
}
