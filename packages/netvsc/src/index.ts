export const PACKAGE = "@ivm/netvsc";
