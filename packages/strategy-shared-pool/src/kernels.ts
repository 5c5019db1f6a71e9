import { type KernelProfile, type KernelRange, kernelRangeReason } from "@ivm/kernel";

/** The kernels shared-pool was written for (approach (6): a pool made host-visible once at boot needs no kernel change). */
export const sharedPoolKernels: KernelRange = {
  from: "5.17",
  written: "approach (6): a pool made host-visible once at boot needs no kernel change",
};

/** Why shared-pool cannot run on `profile`, or null when it can. */
export function sharedPoolUnsupportedOn(profile: KernelProfile): string | null {
  return kernelRangeReason("shared-pool", sharedPoolKernels, profile);
}
