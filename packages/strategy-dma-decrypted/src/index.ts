export { type DmaDecryptedServices, dmaDecryptedStrategy, hypervDecryptedDmaOps } from "./dma-decrypted.js";
export { dmaDecryptedKernels, dmaDecryptedUnsupportedOn } from "./kernels.js";
