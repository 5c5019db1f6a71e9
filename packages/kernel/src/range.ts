import type { KernelProfile } from "./profile.js";

/**
 * The kernels a piece of code was written for: release lines `from` through `through` (inclusive, by
 * major.minor, so a line's stable releases count: 6.1.91 is inside "5.17".."6.3"); no `through` means
 * every later kernel. `written` says where the range comes from.
 */
export interface KernelRange {
  readonly from: string;
  readonly through?: string;
  readonly written: string;
}

function line(version: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (m === null) throw new RangeError(`not a kernel version: ${version}`);
  return [Number(m[1]), Number(m[2])];
}

function compareLines(a: string, b: string): number {
  const [am, an] = line(a);
  const [bm, bn] = line(b);
  return am !== bm ? am - bm : an - bn;
}

/** What a range check reads of a profile: its release line (every KernelProfile is one). */
export type KernelLine = Pick<KernelProfile, "name">;

/** Whether `profile`'s release line lies inside `range`. */
export function inKernelRange(range: KernelRange, profile: KernelLine): boolean {
  if (compareLines(profile.name, range.from) < 0) return false;
  return range.through === undefined || compareLines(profile.name, range.through) <= 0;
}

/** The range as people write it: "5.17–6.3", "5.17 only", "6.4 on". */
export function formatKernelRange(range: KernelRange): string {
  if (range.through === undefined) return `${range.from} on`;
  return range.through === range.from ? `${range.from} only` : `${range.from}–${range.through}`;
}

/**
 * Why `name` cannot run on `profile`, in one sentence, or null when it can (the profile's kernel is in
 * the range the code was written for).
 */
export function kernelRangeReason(name: string, range: KernelRange, profile: KernelLine): string | null {
  if (inKernelRange(range, profile)) return null;
  return `${name} was written for Linux ${formatKernelRange(range)} (${range.written}), not ${profile.name}`;
}

/**
 * `kernels` and `unsupportedOn` from the one range `name` was written for (what a strategy descriptor
 * of @ivm/shared-buffer declares), so the range is stated once and every refusal reads the same.
 */
export function writtenFor(
  name: string,
  kernels: KernelRange,
): { readonly kernels: KernelRange; unsupportedOn(profile: KernelLine): string | null } {
  return { kernels, unsupportedOn: (profile) => kernelRangeReason(name, kernels, profile) };
}
