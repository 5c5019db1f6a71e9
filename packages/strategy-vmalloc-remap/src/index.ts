export const PACKAGE = "@ivm/strategy-vmalloc-remap";
