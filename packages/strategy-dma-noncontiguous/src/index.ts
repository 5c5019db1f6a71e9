export const PACKAGE = "@ivm/strategy-dma-noncontiguous";
