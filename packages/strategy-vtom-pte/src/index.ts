export { vtomPteKernels, vtomPteUnsupportedOn } from "./kernels.js";
export { vtomPteStrategy } from "./vtom-pte.js";
