export { type DmaDecryptedServices, dmaDecryptedStrategy, hypervDecryptedDmaOps } from "./dma-decrypted.js";
