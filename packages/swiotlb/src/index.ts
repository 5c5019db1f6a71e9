export const PACKAGE = "@ivm/swiotlb";
