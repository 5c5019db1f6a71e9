import { keyOf, type MetricValue, type ResultRecord } from "./records.js";
import type { TableData } from "./render.js";

export interface Difference {
  readonly key: string;
  readonly metric: string;
  readonly before: MetricValue | undefined;
  readonly after: MetricValue | undefined;
  /** Relative change for timings (0.12 = 12 % larger), null for counts. */
  readonly change: number | null;
  /** regression: a timing worse than the threshold, or any changed count; improvement: a timing better by more. */
  readonly verdict: "regression" | "improvement" | "changed";
}

export interface BaselineReport {
  readonly differences: readonly Difference[];
  /** Keys in the baseline that this run did not measure (a shard, a filter): not a regression. */
  readonly missing: readonly string[];
  /** Keys this run measured that the baseline does not have. */
  readonly added: readonly string[];
  /** Regressions and changed counts: a non-zero exit. */
  readonly failures: number;
}

const same = (a: MetricValue | undefined, b: MetricValue | undefined): boolean =>
  JSON.stringify(a) === JSON.stringify(b);

/**
 * Compares a run with an earlier one, record by record (same bench and key). Records with `timing`
 * are compared on those metrics only, each against `threshold` (0.1 = 10 %) in its better direction;
 * everything else is a deterministic count of the model, where any change is reported.
 */
export function compareWithBaseline(
  current: readonly ResultRecord[],
  baseline: readonly ResultRecord[],
  threshold: number,
): BaselineReport {
  const base = new Map(baseline.map((r) => [keyOf(r), r]));
  const seen = new Set<string>();
  const differences: Difference[] = [];
  const added: string[] = [];
  for (const r of current) {
    const key = keyOf(r);
    const b = base.get(key);
    if (!b) {
      added.push(key);
      continue;
    }
    seen.add(key);
    if (r.timing) {
      for (const [metric, better] of Object.entries(r.timing)) {
        const before = b.metrics[metric];
        const after = r.metrics[metric];
        if (typeof before !== "number" || typeof after !== "number" || before === 0) {
          if (!same(before, after))
            differences.push({ key, metric, before, after, change: null, verdict: "changed" });
          continue;
        }
        const change = (after - before) / Math.abs(before);
        const worse = better === "higher" ? -change : change;
        if (worse > threshold)
          differences.push({ key, metric, before, after, change, verdict: "regression" });
        else if (worse < -threshold)
          differences.push({ key, metric, before, after, change, verdict: "improvement" });
      }
    } else {
      for (const metric of new Set([...Object.keys(b.metrics), ...Object.keys(r.metrics)])) {
        const before = b.metrics[metric];
        const after = r.metrics[metric];
        if (!same(before, after))
          differences.push({ key, metric, before, after, change: null, verdict: "changed" });
      }
    }
  }
  const missing = [...base.keys()].filter((k) => !seen.has(k));
  const failures = differences.filter((d) => d.verdict !== "improvement").length;
  return { differences, missing, added, failures };
}

const show = (v: MetricValue | undefined): string =>
  v === undefined
    ? "(none)"
    : typeof v === "number"
      ? String(Math.round(v * 1000) / 1000)
      : JSON.stringify(v);

export function baselineTable(report: BaselineReport, threshold: number): TableData {
  return {
    title: `Against the baseline (threshold ${Math.round(threshold * 1000) / 10} % for timings; counts must not change)`,
    head: ["verdict", "case", "metric", "baseline", "now", "change"],
    rows: report.differences.map((d) => [
      d.verdict,
      d.key,
      d.metric,
      show(d.before),
      show(d.after),
      d.change === null ? "" : `${d.change >= 0 ? "+" : ""}${(d.change * 100).toFixed(1)} %`,
    ]),
    notes: [
      `${report.failures} regression(s) or changed count(s); ${report.differences.length - report.failures} improvement(s).`,
      ...(report.missing.length
        ? [`${report.missing.length} baseline case(s) not measured in this run.`]
        : []),
      ...(report.added.length ? [`${report.added.length} case(s) not in the baseline.`] : []),
    ],
  };
}
