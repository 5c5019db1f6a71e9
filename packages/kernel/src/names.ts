/**
 * The kernels the lab can boot, oldest first. Stable releases that carry backports the modelled paths
 * depend on get their own name (6.1.91: the 2024 Isolation-VM leak fixes).
 */
export const PROFILE_NAMES = ["5.17", "6.1", "6.1.91", "6.4", "6.6", "6.9", "6.12"] as const;

export type ProfileName = (typeof PROFILE_NAMES)[number];

/** A table with one row per profile: how each behaviours file lists its per-kernel values. */
export type PerProfile<T> = { readonly [K in ProfileName]: T };

export function isProfileName(name: string): name is ProfileName {
  return (PROFILE_NAMES as readonly string[]).includes(name);
}
