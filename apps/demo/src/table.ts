import Table from "cli-table3";
import type { StrategyResult } from "./run.js";
import { formatBytes } from "./size.js";

const pair = (rx: number | undefined, tx: number | undefined): string => `${rx ?? "–"} + ${tx ?? "–"}`;

/** The compact comparison: one row per strategy and era. */
export function comparisonTable(results: readonly StrategyResult[]): string {
  const table = new Table({
    head: [
      "strategy",
      "era",
      "mappings rx+tx",
      "metadata",
      "temp peak",
      "hypercalls rx+tx",
      "GPADL msgs rx+tx",
      "4 MiB blocks",
      "fallbacks",
      "faults",
      "leaked",
      "packets ok",
    ],
    style: { head: [], border: [] },
  });
  for (const r of results) {
    if (!r.ran) {
      table.push([
        `(${r.approach}) ${r.strategy}`,
        r.era,
        { colSpan: 10, content: `not run: ${r.skipReason}` },
      ]);
      continue;
    }
    const { rx, tx } = r.buffers;
    table.push([
      `(${r.approach}) ${r.strategy}`,
      r.era,
      pair(rx?.liveMappings, tx?.liveMappings),
      formatBytes(r.persistentMetadataBytes),
      formatBytes(r.transientPeakBytes),
      pair(rx?.hypercalls, tx?.hypercalls),
      pair(rx?.gpadlMessages, tx?.gpadlMessages),
      String(r.pagesByOrder[10] ?? 0),
      String(r.fallbacks),
      String(r.faults),
      String(r.leakedPages),
      `${r.packets.verified}/${r.packets.sent + r.packets.received}`,
    ]);
  }
  return table.toString();
}
