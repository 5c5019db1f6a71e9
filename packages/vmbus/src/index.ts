export const PACKAGE = "@ivm/vmbus";
