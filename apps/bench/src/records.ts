import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname } from "node:path";

export type BenchName = "compare" | "fragmentation" | "speed";
export type MetricValue = number | string | boolean | null | readonly number[];
export type KeyValue = string | number | boolean;

/**
 * One measured case: one JSON line of a results file. `key` says what was measured (strategy, era, seed,
 * sizes…); two records with the same bench and key measure the same thing, so shards can be merged and
 * a later run compared with a baseline.
 */
export interface ResultRecord {
  readonly bench: BenchName;
  readonly key: Readonly<Record<string, KeyValue>>;
  readonly metrics: Readonly<Record<string, MetricValue>>;
  /**
   * Metrics that are timings (or heap sizes), and which way is better. Every other metric is a
   * deterministic count of the model: for those any change is a difference.
   */
  readonly timing?: Readonly<Record<string, "higher" | "lower">>;
  readonly run: { readonly at: string; readonly node: string; readonly cpus: number };
}

export function runInfo(): ResultRecord["run"] {
  return { at: new Date().toISOString(), node: process.version, cpus: availableParallelism() };
}

/** The identity of a record: its bench and its key, with the key's fields in a stable order. */
export function keyOf(record: Pick<ResultRecord, "bench" | "key">): string {
  const fields = Object.keys(record.key)
    .sort()
    .map((k) => `${k}=${String(record.key[k])}`);
  return `${record.bench}:${fields.join(",")}`;
}

export function appendRecords(file: string, records: readonly ResultRecord[]): void {
  if (records.length === 0) return;
  mkdirSync(dirname(file), { recursive: true });
  appendFileSync(file, `${records.map((r) => JSON.stringify(r)).join("\n")}\n`);
}

function isRecord(value: unknown): value is ResultRecord {
  const v = value as Partial<ResultRecord> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.bench === "string" &&
    typeof v.key === "object" &&
    typeof v.metrics === "object"
  );
}

/**
 * Reads records from a results file: JSON lines (what runs append), or one JSON document — an array of
 * records or `{ records: [...] }` (what `--json` prints).
 */
export function parseRecords(text: string, source = "input"): ResultRecord[] {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  let values: unknown[];
  try {
    const doc: unknown = JSON.parse(trimmed);
    values = Array.isArray(doc)
      ? doc
      : isRecord(doc)
        ? [doc]
        : ((doc as { records?: unknown[] }).records ?? []);
  } catch {
    values = trimmed.split("\n").flatMap((line, i) => {
      if (line.trim() === "") return [];
      try {
        return [JSON.parse(line) as unknown];
      } catch {
        throw new Error(`${source}:${i + 1}: not a JSON line`);
      }
    });
  }
  const bad = values.findIndex((v) => !isRecord(v));
  if (bad >= 0) throw new Error(`${source}: entry ${bad + 1} is not a result record`);
  return values as ResultRecord[];
}

export function readRecords(file: string): ResultRecord[] {
  return parseRecords(readFileSync(file, "utf8"), file);
}

/** Merges shards: one record per key, the last one read winning, in the order keys first appeared. */
export function mergeRecords(lists: readonly (readonly ResultRecord[])[]): ResultRecord[] {
  const byKey = new Map<string, ResultRecord>();
  for (const list of lists) for (const r of list) byKey.set(keyOf(r), r);
  return [...byKey.values()];
}

/** Where a case sits in a sweep's fixed order: compared field by field (numbers and strings). */
export type Rank = (key: Readonly<Record<string, KeyValue>>) => readonly (number | string)[];

/**
 * Puts cases (or records, by their key) in a sweep's fixed order, so that a sharded and merged sweep
 * prints exactly what one run prints, whatever order the shard files are given in.
 */
export function sortByRank<T>(
  items: readonly T[],
  rank: Rank,
  keyOf: (item: T) => Readonly<Record<string, KeyValue>>,
): T[] {
  const ranked = items.map((item, at) => ({ item, at, rank: rank(keyOf(item)) }));
  ranked.sort((a, b) => {
    for (let i = 0; i < Math.max(a.rank.length, b.rank.length); i++) {
      const x = a.rank[i];
      const y = b.rank[i];
      if (x === y) continue;
      if (x === undefined) return -1;
      if (y === undefined) return 1;
      return x < y ? -1 : 1;
    }
    return a.at - b.at;
  });
  return ranked.map((r) => r.item);
}
