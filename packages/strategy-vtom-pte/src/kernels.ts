import { type KernelProfile, type KernelRange, kernelRangeReason } from "@ivm/kernel";

/** The kernels vtom-pte was written for (approach (5): vTOM as a page-table bit, 812b0597fb40 and 25727aaed651 in 6.4). */
export const vtomPteKernels: KernelRange = {
  from: "6.4",
  written: "approach (5): vTOM as a page-table bit, 812b0597fb40 and 25727aaed651 in 6.4",
};

/** Why vtom-pte cannot run on `profile`, or null when it can. */
export function vtomPteUnsupportedOn(profile: KernelProfile): string | null {
  return kernelRangeReason("vtom-pte", vtomPteKernels, profile);
}
