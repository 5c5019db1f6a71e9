export const PACKAGE = "@ivm/shared-buffer";
