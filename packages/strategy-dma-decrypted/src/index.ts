export { type DmaDecryptedServices, dmaDecrypted } from "./dma-decrypted.js";
