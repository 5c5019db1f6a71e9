export { type DmaNoncontiguousServices, dmaNoncontiguous } from "./dma-noncontiguous.js";
export { HV_NONCONTIG_TAGS } from "./hyperv-iommu.js";
