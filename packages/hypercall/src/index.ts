export const PACKAGE = "@ivm/hypercall";
