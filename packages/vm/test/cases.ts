import type { Era } from "@ivm/hypercall";
import { dmaDecryptedStrategy, hypervDecryptedDmaOps } from "@ivm/strategy-dma-decrypted";
import { dmaNoncontiguousStrategy, hypervNoncontiguousDmaOps } from "@ivm/strategy-dma-noncontiguous";
import { pageBlocksStrategy } from "@ivm/strategy-page-blocks";
import { sharedPoolStrategy } from "@ivm/strategy-shared-pool";
import { vmallocRemapStrategy } from "@ivm/strategy-vmalloc-remap";
import { vtomPteStrategy } from "@ivm/strategy-vtom-pte";
import type { VmOptions } from "../src/vm.js";

export interface Case {
  readonly name: string;
  readonly eras: readonly Era[];
  readonly vm: Pick<VmOptions, "strategy" | "dmaOps">;
}

// The only thing that changes between these runs is the injected strategy (and, for the DMA
// approaches, the DMA ops it needs): the driver, the host and the test are the same.
export const CASES: readonly Case[] = [
  { name: "vmalloc-remap", eras: ["address-bit"], vm: { strategy: (s) => vmallocRemapStrategy(s) } },
  {
    name: "dma-decrypted",
    eras: ["address-bit"],
    vm: { strategy: (s) => dmaDecryptedStrategy(s), dmaOps: hypervDecryptedDmaOps },
  },
  {
    name: "dma-noncontiguous",
    eras: ["address-bit"],
    vm: { strategy: (s) => dmaNoncontiguousStrategy(s), dmaOps: hypervNoncontiguousDmaOps },
  },
  { name: "page-blocks", eras: ["address-bit"], vm: { strategy: (s) => pageBlocksStrategy(s) } },
  { name: "vtom-pte", eras: ["pte-bit"], vm: { strategy: (s) => vtomPteStrategy(s) } },
  { name: "shared-pool", eras: ["address-bit", "pte-bit"], vm: { strategy: (s) => sharedPoolStrategy(s) } },
];
