export { sharedPoolKernels, sharedPoolUnsupportedOn } from "./kernels.js";
export { SharedPool, type SharedPoolOptions, sharedPoolStrategy } from "./shared-pool.js";
