export const PACKAGE = "@ivm/vm";
