export const PACKAGE = "@ivm/strategy-dma-decrypted";
