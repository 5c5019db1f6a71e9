import { dmaDecrypted } from "@ivm/strategy-dma-decrypted";
import { dmaNoncontiguous } from "@ivm/strategy-dma-noncontiguous";
import { pageBlocks } from "@ivm/strategy-page-blocks";
import { sharedPool } from "@ivm/strategy-shared-pool";
import { vmallocRemap } from "@ivm/strategy-vmalloc-remap";
import { vtomPte } from "@ivm/strategy-vtom-pte";
import type { VmStrategy } from "../src/vm.js";

// The only thing that changes between these runs is the injected strategy's descriptor (with, for the
// DMA approaches, the DMA ops it installs): the driver, the host and the test are the same.
export const CASES: readonly VmStrategy[] = [
  vmallocRemap,
  dmaDecrypted,
  dmaNoncontiguous,
  pageBlocks,
  vtomPte,
  sharedPool,
];
