export { pageBlocksKernels, pageBlocksUnsupportedOn } from "./kernels.js";
export { type PageBlocksFallback, type PageBlocksOptions, pageBlocksStrategy } from "./page-blocks.js";
