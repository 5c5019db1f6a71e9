/**
 * The kernels the lab can boot, oldest first. A bare name is that release as tagged (6.1 = v6.1); a
 * stable release that carries backports the modelled paths depend on gets its own name (6.1.91 and
 * 6.6.31: the first with the 2024 Isolation-VM leak fixes). 6.18 is the newest release whose source was
 * read (through linux-next at 6.19-rc5).
 */
export const PROFILE_NAMES = [
  "5.17",
  "6.1",
  "6.1.91",
  "6.4",
  "6.6",
  "6.6.31",
  "6.9",
  "6.12",
  "6.18",
] as const;

export type ProfileName = (typeof PROFILE_NAMES)[number];

/** A table with one row per profile: how each behaviours file lists its per-kernel values. */
export type PerProfile<T> = { readonly [K in ProfileName]: T };

export function isProfileName(name: string): name is ProfileName {
  return (PROFILE_NAMES as readonly string[]).includes(name);
}
