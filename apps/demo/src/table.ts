import { wrapText } from "@ivm/catalog/cli";
import Table from "cli-table3";
import type { DemoRun, StrategyResult } from "./run.js";
import { formatBytes } from "./size.js";

const pair = (rx: number | undefined, tx: number | undefined): string => `${rx ?? "–"} + ${tx ?? "–"}`;
/** How the tables are drawn: box-drawing on a terminal, ASCII (one byte a column) into pipes and files. */
export interface TableStyle {
  readonly ascii: boolean;
}

const ASCII_CHARS = {
  top: "-",
  "top-mid": "+",
  "top-left": "+",
  "top-right": "+",
  bottom: "-",
  "bottom-mid": "+",
  "bottom-left": "+",
  "bottom-right": "+",
  left: "|",
  "left-mid": "+",
  mid: "-",
  "mid-mid": "+",
  right: "|",
  "right-mid": "+",
  middle: "|",
};

// No colours: the demo's tables read the same in a terminal, a pipe and a log.
const options = (style: TableStyle, compact: boolean) => ({
  style: { head: [], border: [], compact },
  ...(style.ascii ? { chars: ASCII_CHARS } : {}),
});

/** The rows both layouts show: a label and how to read it from one strategy's result. */
const METRICS: readonly (readonly [string, (r: StrategyResult) => string])[] = [
  ["mappings rx+tx", (r) => pair(r.buffers.rx?.liveMappings, r.buffers.tx?.liveMappings)],
  ["metadata", (r) => formatBytes(r.persistentMetadataBytes)],
  ["temp peak", (r) => formatBytes(r.transientPeakBytes)],
  ["hypercalls rx+tx", (r) => pair(r.buffers.rx?.hypercalls, r.buffers.tx?.hypercalls)],
  ["GPADL msgs rx+tx", (r) => pair(r.buffers.rx?.gpadlMessages, r.buffers.tx?.gpadlMessages)],
  ["4 MiB blocks", (r) => String(r.pagesByOrder[10] ?? 0)],
  ["fallbacks", (r) => String(r.fallbacks)],
  ["faults", (r) => String(r.faults)],
  ["leaked", (r) => String(r.leakedPages)],
  ["findings", (r) => String(r.findingCount)],
  ["packets ok", (r) => `${r.packets.verified}/${r.packets.sent + r.packets.received}`],
  ["channels", (r) => String(r.nic.channels)],
  ["NIC pages r+b", (r) => `${r.nic.ringPages} + ${r.nic.bufferPages}`],
];

const label = (r: StrategyResult): string => `(${r.approach}) ${r.strategy}`;

/** The full comparison (`--wide`): one row per strategy and era, one column per metric (about 230 columns). */
export function comparisonTable(
  results: readonly StrategyResult[],
  style: TableStyle = { ascii: false },
): string {
  const table = new Table({
    head: ["strategy", "era", ...METRICS.map(([name]) => name)],
    ...options(style, false),
  });
  for (const r of results) {
    if (!r.ran) {
      table.push([label(r), r.era, { colSpan: METRICS.length, content: `not run: ${r.skipReason}` }]);
      continue;
    }
    table.push([label(r), r.era, ...METRICS.map(([, read]) => read(r))]);
  }
  return table.toString();
}

function transposed(results: readonly StrategyResult[], style: TableStyle): string {
  const table = new Table({
    head: ["", ...results.map((r) => `${r.strategy}\n(${r.approach}) ${r.era}`)],
    ...options(style, true),
  });
  for (const [name, read] of METRICS)
    table.push([name, ...results.map((r) => (r.ran ? read(r) : "not run"))]);
  return table.toString();
}

const widest = (text: string): number => Math.max(...text.split("\n").map((l) => l.length));

/**
 * The default layout, for an 80–100 column terminal: one row per metric and one column per strategy
 * and era, in as many stacked tables as the width needs (each repeats the metric names). Strategies
 * that did not run are listed under the tables with the reason.
 */
export function transposedTables(
  results: readonly StrategyResult[],
  columns: number,
  style: TableStyle = { ascii: false },
): string {
  const groups: StrategyResult[][] = [];
  let group: StrategyResult[] = [];
  for (const r of results) {
    if (group.length > 0 && widest(transposed([...group, r], style)) > columns) {
      groups.push(group);
      group = [];
    }
    group.push(r);
  }
  if (group.length > 0) groups.push(group);
  const skipped = results
    .filter((r) => !r.ran)
    .map((r) => wrapText(`${label(r)}, ${r.era}: not run: ${r.skipReason}`, columns));
  return [...groups.map((g) => transposed(g, style)), ...(skipped.length ? [skipped.join("\n")] : [])].join(
    "\n",
  );
}

/**
 * The findings section under the tables: what each booted kernel would have done that its fixed
 * successors do not, one line per finding id and strategy (with its count), and whether an armed fault
 * fired. Empty when there is nothing to say.
 */
export function findingLines(runs: readonly DemoRun[], columns: number): string {
  const lines: string[] = [];
  for (const { result: r } of runs) {
    if (r.fault && !r.fault.fired)
      lines.push(wrapText(`${label(r)}: fault ${r.fault.name} did not fire: ${r.fault.detail}`, columns));
  }
  const seen = new Map<string, { first: DemoRun["findings"][number]; count: number }>();
  for (const { findings } of runs) {
    for (const f of findings) {
      const key = `${f.strategy}\u0000${f.era}\u0000${f.id}`;
      const entry = seen.get(key);
      if (entry) entry.count++;
      else seen.set(key, { first: f, count: 1 });
    }
  }
  if (seen.size > 0) {
    lines.push("Findings (what the booted kernel would do; not failures of the model):");
    for (const { first: f, count } of seen.values()) {
      const times = count > 1 ? ` (×${count})` : "";
      lines.push(
        wrapText(`- ${f.id} [${f.profile}, ${f.strategy}]${times}: ${f.what} (${f.where})`, columns),
      );
    }
  }
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}
