export { type DmaNoncontiguousServices, dmaNoncontiguousStrategy } from "./dma-noncontiguous.js";
export { HV_NONCONTIG_TAGS, hypervNoncontiguousDmaOps } from "./hyperv-iommu.js";
export { dmaNoncontiguousKernels, dmaNoncontiguousUnsupportedOn } from "./kernels.js";
