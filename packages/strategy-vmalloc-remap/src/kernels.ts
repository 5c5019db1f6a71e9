import { type KernelProfile, type KernelRange, kernelRangeReason } from "@ivm/kernel";

/** The kernels vmalloc-remap was written for (approach (1): vzalloc + hv_map_memory landed with 846da38de0e8 in 5.17 and was removed by 25727aaed651 in 6.4). */
export const vmallocRemapKernels: KernelRange = {
  from: "5.17",
  through: "6.3",
  written:
    "approach (1): vzalloc + hv_map_memory landed with 846da38de0e8 in 5.17 and was removed by 25727aaed651 in 6.4",
};

/** Why vmalloc-remap cannot run on `profile`, or null when it can. */
export function vmallocRemapUnsupportedOn(profile: KernelProfile): string | null {
  return kernelRangeReason("vmalloc-remap", vmallocRemapKernels, profile);
}
