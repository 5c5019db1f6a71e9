import type { Era } from "@ivm/hypercall";
import {
  inKernelRange,
  type KernelProfile,
  type KernelRange,
  PROFILE_NAMES,
  type ProfileName,
  profiles,
} from "@ivm/kernel";
import {
  dmaDecryptedKernels,
  dmaDecryptedStrategy,
  dmaDecryptedUnsupportedOn,
  hypervDecryptedDmaOps,
} from "@ivm/strategy-dma-decrypted";
import {
  dmaNoncontiguousKernels,
  dmaNoncontiguousStrategy,
  dmaNoncontiguousUnsupportedOn,
  hypervNoncontiguousDmaOps,
} from "@ivm/strategy-dma-noncontiguous";
import { pageBlocksKernels, pageBlocksStrategy, pageBlocksUnsupportedOn } from "@ivm/strategy-page-blocks";
import { sharedPoolKernels, sharedPoolStrategy, sharedPoolUnsupportedOn } from "@ivm/strategy-shared-pool";
import {
  vmallocRemapKernels,
  vmallocRemapStrategy,
  vmallocRemapUnsupportedOn,
} from "@ivm/strategy-vmalloc-remap";
import { vtomPteKernels, vtomPteStrategy, vtomPteUnsupportedOn } from "@ivm/strategy-vtom-pte";
import type { VmOptions } from "@ivm/vm";

/** One entry of the seed's comparison. */
export interface StrategyEntry {
  readonly name: string;
  /** The approach's number in the seed (1–4), 5 for Linux 6.4+, 6 for OpenHCL's pool. */
  readonly approach: number;
  readonly summary: string;
  /** The npm package that implements it (for lines-of-code counts and links). */
  readonly packageName: string;
  readonly eras: readonly Era[];
  /** The kernels the approach was written for, as its package declares them. */
  readonly kernels: KernelRange;
  /** Why it cannot run on a kernel (one sentence), or null when it can: the package's own check. */
  readonly unsupportedOn: (profile: KernelProfile) => string | null;
  /** What the VM needs to run it: the factory and, for the DMA approaches, their ops. */
  readonly vm: Pick<VmOptions, "strategy" | "dmaOps">;
}

export const STRATEGIES: readonly StrategyEntry[] = [
  {
    name: "vmalloc-remap",
    approach: 1,
    summary: "vmalloc + a second vmap_pfn mapping above vTOM (Linux 5.17)",
    packageName: "@ivm/strategy-vmalloc-remap",
    eras: ["address-bit"],
    kernels: vmallocRemapKernels,
    unsupportedOn: vmallocRemapUnsupportedOn,
    vm: { strategy: (s) => vmallocRemapStrategy(s) },
  },
  {
    name: "dma-decrypted",
    approach: 2,
    summary: "the same two mappings through dma_map_decrypted (patch v3)",
    packageName: "@ivm/strategy-dma-decrypted",
    eras: ["address-bit"],
    kernels: dmaDecryptedKernels,
    unsupportedOn: dmaDecryptedUnsupportedOn,
    vm: { strategy: (s) => dmaDecryptedStrategy(s), dmaOps: hypervDecryptedDmaOps },
  },
  {
    name: "dma-noncontiguous",
    approach: 3,
    summary: "dma_alloc_noncontiguous with Hyper-V ops (split-off v1/v2)",
    packageName: "@ivm/strategy-dma-noncontiguous",
    eras: ["address-bit"],
    kernels: dmaNoncontiguousKernels,
    unsupportedOn: dmaNoncontiguousUnsupportedOn,
    vm: { strategy: (s) => dmaNoncontiguousStrategy(s), dmaOps: hypervNoncontiguousDmaOps },
  },
  {
    name: "page-blocks",
    approach: 4,
    summary: "alloc_pages in 4 MiB blocks, one vmap_pfn mapping (patch v5)",
    packageName: "@ivm/strategy-page-blocks",
    eras: ["address-bit"],
    kernels: pageBlocksKernels,
    unsupportedOn: pageBlocksUnsupportedOn,
    vm: { strategy: (s) => pageBlocksStrategy(s) },
  },
  {
    name: "vtom-pte",
    approach: 5,
    summary: "one mapping; set_memory_decrypted rewrites the PTEs (Linux 6.4+)",
    packageName: "@ivm/strategy-vtom-pte",
    eras: ["pte-bit"],
    kernels: vtomPteKernels,
    unsupportedOn: vtomPteUnsupportedOn,
    vm: { strategy: (s) => vtomPteStrategy(s) },
  },
  {
    name: "shared-pool",
    approach: 6,
    summary: "a pool made host-visible once at boot (OpenHCL)",
    packageName: "@ivm/strategy-shared-pool",
    eras: ["address-bit", "pte-bit"],
    kernels: sharedPoolKernels,
    unsupportedOn: sharedPoolUnsupportedOn,
    vm: { strategy: (s) => sharedPoolStrategy(s) },
  },
];

export function strategyByName(name: string): StrategyEntry | undefined {
  return STRATEGIES.find((s) => s.name === name);
}

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
