export const PACKAGE = "@ivm/memory";
