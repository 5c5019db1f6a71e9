import { type KernelProfile, type KernelRange, kernelRangeReason } from "@ivm/kernel";

/** The kernels dma-decrypted was written for (approach (2): the dma_map_decrypted series was posted against 5.16/5.17 and never merged). */
export const dmaDecryptedKernels: KernelRange = {
  from: "5.17",
  through: "5.17",
  written: "approach (2): the dma_map_decrypted series was posted against 5.16/5.17 and never merged",
};

/** Why dma-decrypted cannot run on `profile`, or null when it can. */
export function dmaDecryptedUnsupportedOn(profile: KernelProfile): string | null {
  return kernelRangeReason("dma-decrypted", dmaDecryptedKernels, profile);
}
