export { vmallocRemapKernels, vmallocRemapUnsupportedOn } from "./kernels.js";
export { vmallocRemapStrategy } from "./vmalloc-remap.js";
