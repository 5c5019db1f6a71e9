import type { Shard } from "@ivm/catalog/cli";
import type { CampaignReport, Failure } from "./campaign.js";
import { mergeInto, type Tally } from "./tally.js";
import { ALL_TARGETS, targetName } from "./targets.js";

/** What selects a campaign: two summaries can be merged only when their settings are the same. */
export interface FuzzConfig {
  readonly iterations: number;
  readonly seed: number;
  readonly strategy: string;
  readonly era: string;
  readonly sessionLength: number;
  readonly faults: boolean;
  readonly churn: number;
  /** The kernel profile every session booted (null: each era's representative kernel). */
  readonly kernel: string | null;
  /** With `kernel`: the kernel's own logic for host values no kernel checks (`--exact`). */
  readonly exact: boolean;
  /** The named fault armed in every session (null: none). */
  readonly fault: string | null;
}

/** Findings of one id: how many the layers recorded, and in how many sessions. */
export interface FindingTotal {
  readonly count: number;
  readonly sessions: number;
}

/**
 * The findings by id, read from the counters (`finding:<id>`, `finding-sessions:<id>`), so that merged
 * shards give the same totals. Findings never fail a campaign: they are what the booted kernel does.
 */
export function findingsOf(counters: Readonly<Record<string, number>>): Record<string, FindingTotal> {
  const out: Record<string, FindingTotal> = {};
  for (const [key, count] of Object.entries(counters)) {
    if (!key.startsWith("finding:")) continue;
    const id = key.slice("finding:".length);
    out[id] = { count, sessions: counters[`finding-sessions:${id}`] ?? 0 };
  }
  return out;
}

/** The single-fault enumeration or the churn part of a summary: one entry per target, and failures. */
export interface TargetSection {
  readonly wallMs: number;
  readonly targets: readonly { readonly target: string }[];
  readonly counters?: Readonly<Record<string, number>>;
  readonly failures: readonly { readonly target: string }[];
}

/**
 * What `--json` prints and `--out` writes: the campaign report's fields at top level, with what wrote it,
 * the settings, and the shard it covers (null for a whole campaign). `--merge` takes these files.
 */
export interface FuzzSummary extends CampaignReport {
  readonly tool: "ivm-fuzz";
  readonly version: string;
  readonly config: FuzzConfig;
  readonly shard: Shard | null;
  /** Findings by id (empty when none): reported, never a failure. */
  readonly findings: Readonly<Record<string, FindingTotal>>;
  readonly faults?: TargetSection;
  readonly churn?: TargetSection;
}

const byFailureSeed = (a: Failure, b: Failure): number => a.seed - b.seed || (a.path < b.path ? -1 : 1);
const TARGET_ORDER = ALL_TARGETS.map(targetName);
const byTarget = (a: { target: string }, b: { target: string }): number =>
  TARGET_ORDER.indexOf(a.target) - TARGET_ORDER.indexOf(b.target);

/** Failures in one fixed order (by fast-check seed), whatever order workers or shards finished in. */
export function sortFailures(failures: readonly Failure[]): Failure[] {
  return [...failures].sort(byFailureSeed);
}

/** Checks that a parsed file is a summary `ivm-fuzz --json`/`--out` wrote; throws naming what is off. */
export function asSummary(value: unknown): FuzzSummary {
  const s = value as Partial<FuzzSummary> | null;
  if (typeof s !== "object" || s === null || s.tool !== "ivm-fuzz")
    throw new Error("not an ivm-fuzz summary (--json or --out output)");
  if (typeof s.config !== "object" || typeof s.counters !== "object" || !Array.isArray(s.failures))
    throw new Error("an ivm-fuzz summary without config, counters or failures");
  if (typeof s.inputs !== "number" || typeof s.sessions !== "number" || typeof s.violations !== "number")
    throw new Error("an ivm-fuzz summary without inputs, sessions or violations");
  return s as FuzzSummary;
}

function sum(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function counters(parts: readonly (Readonly<Record<string, number>> | undefined)[]): Record<string, number> {
  const tally: Tally = new Map();
  for (const p of parts) if (p) mergeInto(tally, p);
  return Object.fromEntries([...tally].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
}

function mergeSection(parts: readonly (TargetSection | undefined)[]): TargetSection | undefined {
  const present = parts.filter((p): p is TargetSection => p !== undefined);
  if (present.length === 0) return undefined;
  const withCounters = present.some((p) => p.counters !== undefined);
  return {
    wallMs: Math.max(...present.map((p) => p.wallMs)),
    targets: present.flatMap((p) => p.targets).sort(byTarget),
    ...(withCounters ? { counters: counters(present.map((p) => p.counters)) } : {}),
    failures: present.flatMap((p) => p.failures).sort(byTarget),
  };
}

/**
 * Joins the summaries of shards 1..n of one campaign into the summary one unsharded run gives: the same
 * inputs, sessions, counters, violations and failures. Time is merged as if the shards ran at once
 * (wallMs the longest shard's, inputsPerSecond and workers summed). Throws when the files are not the
 * n shards of one campaign (different settings, a shard missing or given twice).
 */
export function mergeSummaries(parts: readonly { file: string; summary: FuzzSummary }[]): FuzzSummary {
  const first = parts[0];
  if (!first) throw new Error("nothing to merge");
  const config = JSON.stringify(first.summary.config);
  const count = first.summary.shard?.count ?? 1;
  const seen = new Map<number, string>();
  for (const { file, summary } of parts) {
    if (JSON.stringify(summary.config) !== config)
      throw new Error(`${file} is from another campaign (settings differ from ${first.file})`);
    const shard = summary.shard ?? { index: 1, count: 1 };
    if (shard.count !== count)
      throw new Error(`${file} is shard ${shard.index}/${shard.count}, not of ${count}`);
    const again = seen.get(shard.index);
    if (again !== undefined) throw new Error(`${file} and ${again} are both shard ${shard.index}/${count}`);
    seen.set(shard.index, file);
  }
  const missing = Array.from({ length: count }, (_, i) => i + 1).filter((i) => !seen.has(i));
  if (missing.length > 0) throw new Error(`shard ${missing.map((i) => `${i}/${count}`).join(", ")} missing`);
  const all = parts.map((p) => p.summary);
  const failures = sortFailures(all.flatMap((s) => s.failures));
  const faults = mergeSection(all.map((s) => s.faults));
  const churn = mergeSection(all.map((s) => s.churn));
  const merged = counters(all.map((s) => s.counters));
  return {
    tool: "ivm-fuzz",
    version: first.summary.version,
    config: first.summary.config,
    shard: null,
    inputs: sum(all.map((s) => s.inputs)),
    sessions: sum(all.map((s) => s.sessions)),
    wallMs: Math.max(...all.map((s) => s.wallMs)),
    inputsPerSecond: sum(all.map((s) => s.inputsPerSecond)),
    workers: sum(all.map((s) => s.workers)),
    seed: first.summary.seed,
    targets: first.summary.targets,
    counters: merged,
    findings: findingsOf(merged),
    violations: sum(all.map((s) => s.violations)),
    failures,
    ...(faults ? { faults } : {}),
    ...(churn ? { churn } : {}),
  };
}

/** Invariant violations in a summary, the campaign's and the fault and churn runs' alike: exit 1 when > 0. */
export function totalViolations(s: FuzzSummary): number {
  return s.violations + (s.faults?.failures.length ?? 0) + (s.churn?.failures.length ?? 0);
}
