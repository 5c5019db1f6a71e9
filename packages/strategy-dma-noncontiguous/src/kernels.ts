import { type KernelProfile, type KernelRange, kernelRangeReason } from "@ivm/kernel";

/** The kernels dma-noncontiguous was written for (approach (3): the dma_alloc_noncontiguous series was posted against 5.16/5.17 and never merged). */
export const dmaNoncontiguousKernels: KernelRange = {
  from: "5.17",
  through: "5.17",
  written: "approach (3): the dma_alloc_noncontiguous series was posted against 5.16/5.17 and never merged",
};

/** Why dma-noncontiguous cannot run on `profile`, or null when it can. */
export function dmaNoncontiguousUnsupportedOn(profile: KernelProfile): string | null {
  return kernelRangeReason("dma-noncontiguous", dmaNoncontiguousKernels, profile);
}
