/**
 * One behaviour of one kernel, with where it came from: the upstream commit that introduced it (12 hex
 * digits, as `git log --oneline` abbreviates), its subject line, and the first release that shipped it
 * (mainline, or the stable release a backport landed in).
 */
export interface Sourced<T> {
  readonly value: T;
  readonly commit: string;
  readonly title: string;
  readonly since: string;
}

/** Builds a sourced value; a table row reads `sourced(value, commit, title, since)`. */
export function sourced<T>(value: T, commit: string, title: string, since: string): Sourced<T> {
  if (!/^[0-9a-f]{12}$/.test(commit)) throw new Error(`commit id must be 12 hex digits, got ${commit}`);
  return { value, commit, title, since };
}
