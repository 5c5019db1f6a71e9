import type { Era } from "@ivm/hypercall";
import { dmaDecryptedStrategy, hypervDecryptedDmaOps } from "@ivm/strategy-dma-decrypted";
import { dmaNoncontiguousStrategy, hypervNoncontiguousDmaOps } from "@ivm/strategy-dma-noncontiguous";
import { pageBlocksStrategy } from "@ivm/strategy-page-blocks";
import { sharedPoolStrategy } from "@ivm/strategy-shared-pool";
import { vmallocRemapStrategy } from "@ivm/strategy-vmalloc-remap";
import { vtomPteStrategy } from "@ivm/strategy-vtom-pte";
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
    vm: { strategy: (s) => vmallocRemapStrategy(s) },
  },
  {
    name: "dma-decrypted",
    approach: 2,
    summary: "the same two mappings through dma_map_decrypted (patch v3)",
    packageName: "@ivm/strategy-dma-decrypted",
    eras: ["address-bit"],
    vm: { strategy: (s) => dmaDecryptedStrategy(s), dmaOps: hypervDecryptedDmaOps },
  },
  {
    name: "dma-noncontiguous",
    approach: 3,
    summary: "dma_alloc_noncontiguous with Hyper-V ops (split-off v1/v2)",
    packageName: "@ivm/strategy-dma-noncontiguous",
    eras: ["address-bit"],
    vm: { strategy: (s) => dmaNoncontiguousStrategy(s), dmaOps: hypervNoncontiguousDmaOps },
  },
  {
    name: "page-blocks",
    approach: 4,
    summary: "alloc_pages in 4 MiB blocks, one vmap_pfn mapping (patch v5)",
    packageName: "@ivm/strategy-page-blocks",
    eras: ["address-bit"],
    vm: { strategy: (s) => pageBlocksStrategy(s) },
  },
  {
    name: "vtom-pte",
    approach: 5,
    summary: "one mapping; set_memory_decrypted rewrites the PTEs (Linux 6.4+)",
    packageName: "@ivm/strategy-vtom-pte",
    eras: ["pte-bit"],
    vm: { strategy: (s) => vtomPteStrategy(s) },
  },
  {
    name: "shared-pool",
    approach: 6,
    summary: "a pool made host-visible once at boot (OpenHCL)",
    packageName: "@ivm/strategy-shared-pool",
    eras: ["address-bit", "pte-bit"],
    vm: { strategy: (s) => sharedPoolStrategy(s) },
  },
];

export function strategyByName(name: string): StrategyEntry | undefined {
  return STRATEGIES.find((s) => s.name === name);
}

export { formatBytes, parseSize } from "./units.js";

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
