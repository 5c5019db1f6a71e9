import { baselineTable, compareWithBaseline } from "./baseline.js";
import {
  appendRecords,
  type BenchName,
  mergeRecords,
  type Rank,
  type ResultRecord,
  sortByRank,
} from "./records.js";
import { type TableData, toMarkdown, toTerminal } from "./render.js";

/** The flags every subcommand shares: where results go, how they print, what they are compared with. */
export interface OutputOptions {
  readonly json?: boolean;
  readonly markdown?: boolean;
  /** The JSON-lines file to append to; false with --no-out. */
  readonly out: string | false;
  /** The files given to --merge, read and checked while the arguments were parsed. */
  readonly merge?: readonly RecordsFile[];
  readonly baseline?: RecordsFile;
  /** Percent. */
  readonly threshold: number;
}

/** A results file named on the command line, with the records of one bench it holds. */
export interface RecordsFile {
  readonly file: string;
  readonly records: readonly ResultRecord[];
}

/**
 * Merges shards for --merge: one record per key (the last file winning), in the sweep's order, so the
 * merged shards print what one unsharded run prints.
 */
export function loadMerged(files: readonly RecordsFile[], rank: Rank): ResultRecord[] {
  return sortByRank(mergeRecords(files.map((f) => f.records)), rank, (r) => r.key);
}

/**
 * Saves (unless merging or --no-out), prints the tables (terminal, Markdown or JSON), and compares with
 * the baseline. Returns the exit code: 1 when the baseline comparison found a regression.
 */
export function finish(
  bench: BenchName,
  records: readonly ResultRecord[],
  tables: (records: readonly ResultRecord[]) => readonly TableData[],
  o: OutputOptions,
  write: (text: string) => void = (t) => process.stdout.write(`${t}\n`),
): number {
  if (!o.merge && o.out) appendRecords(o.out, records);
  if (o.json) write(JSON.stringify({ bench, records }, null, 2));
  else if (o.markdown)
    write(
      tables(records)
        .map((t) => toMarkdown(t))
        .join("\n\n"),
    );
  else write(tables(records).map(toTerminal).join("\n\n"));
  if (!o.baseline) return 0;
  const threshold = o.threshold / 100;
  const report = compareWithBaseline(records, o.baseline.records, threshold);
  const table = baselineTable(report, threshold);
  // With --json, stdout stays one JSON document; the comparison goes to stderr.
  const text = o.markdown ? toMarkdown(table) : toTerminal(table);
  if (o.json) process.stderr.write(`${text}\n`);
  else write(`\n${text}`);
  return report.failures > 0 ? 1 : 0;
}
