import { type KernelProfile, type KernelRange, kernelRangeReason } from "@ivm/kernel";

/**
 * A descriptor's `kernels` and `unsupportedOn` from the one range it was written for, so a strategy
 * states its kernels once and every descriptor explains a refusal in the same sentence.
 */
export function writtenFor(
  name: string,
  kernels: KernelRange,
): { readonly kernels: KernelRange; unsupportedOn(profile: KernelProfile): string | null } {
  return { kernels, unsupportedOn: (profile) => kernelRangeReason(name, kernels, profile) };
}
