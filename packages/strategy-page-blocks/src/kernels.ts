import { type KernelProfile, type KernelRange, kernelRangeReason } from "@ivm/kernel";

/** The kernels page-blocks was written for (approach (4): the alloc_pages/vmap_pfn series was posted against 5.16/5.17 and never merged). */
export const pageBlocksKernels: KernelRange = {
  from: "5.17",
  through: "5.17",
  written: "approach (4): the alloc_pages/vmap_pfn series was posted against 5.16/5.17 and never merged",
};

/** Why page-blocks cannot run on `profile`, or null when it can. */
export function pageBlocksUnsupportedOn(profile: KernelProfile): string | null {
  return kernelRangeReason("page-blocks", pageBlocksKernels, profile);
}
