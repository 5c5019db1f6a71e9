import type { ProfileName } from "./names.js";

/**
 * Something the booted kernel would do that its fixed successors do not: an out-of-bounds access, a page
 * freed while host-visible, a loop that never ends. Not a failure of the model: the model runs the
 * kernel's logic and reports what that kernel would have done.
 */
export interface Finding {
  /** The CVE, or the fixing commit (12 hex digits) where there is no CVE. */
  readonly id: string;
  readonly profile: ProfileName;
  /** The lab invariant the kernel breaks here (I1..I8, design.md), or a short name of the rule. */
  readonly invariant: string;
  /** What the kernel does, in one sentence with the numbers. */
  readonly what: string;
  /** The kernel function (and buffer / offset) where it happens. */
  readonly where: string;
}

/** How many findings of each id were recorded. */
export type FindingCounts = ReadonlyMap<string, number>;

export interface FindingLogOptions {
  /** Findings kept in full (counts keep going past it). Default 1,000. */
  readonly keep?: number;
}

/**
 * The findings of one booted guest. Layers receive it at construction and report into it; recording is
 * a counter bump and, until `keep` is reached, one array push, so an empty log costs nothing.
 */
export class FindingLog {
  readonly #keep: number;
  readonly #kept: Finding[] = [];
  readonly #counts = new Map<string, number>();
  #total = 0;

  constructor(options: FindingLogOptions = {}) {
    const keep = options.keep ?? 1000;
    if (!Number.isSafeInteger(keep) || keep < 0) throw new RangeError(`keep must be >= 0, got ${keep}`);
    this.#keep = keep;
  }

  record(finding: Finding): void {
    this.#total++;
    this.#counts.set(finding.id, (this.#counts.get(finding.id) ?? 0) + 1);
    if (this.#kept.length < this.#keep) this.#kept.push(finding);
  }

  /** Findings in the order they were recorded (the first `keep` of them). */
  list(): readonly Finding[] {
    return this.#kept;
  }

  /** Findings recorded, with `id` only if given. */
  count(id?: string): number {
    return id === undefined ? this.#total : (this.#counts.get(id) ?? 0);
  }

  /** Findings recorded per id. */
  countsById(): FindingCounts {
    return this.#counts;
  }

  /** Findings recorded past `keep` (counted, not kept). */
  get dropped(): number {
    return this.#total - this.#kept.length;
  }
}
