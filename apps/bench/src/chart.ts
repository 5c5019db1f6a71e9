import { strategyByName } from "@ivm/catalog";
import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import { summarize, UPTIMES } from "./fragmentation.js";
import type { ResultRecord } from "./records.js";

/** Renders a Vega-Lite spec to SVG in Node: no DOM and no canvas (the "none" renderer). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The fragmentation sweep as four panels: add success, allocator cost, buffer pages by order, and the indices. */
/** The x axis every panel shares: uptime levels in their own order. */
const uptime = {
  field: "uptime",
  type: "ordinal",
  sort: [...UPTIMES],
  title: "uptime",
  axis: { labelAngle: 0 },
} as const;

/** One small stacked-bar chart of pages per uptime for each strategy, stacked by `stackBy`. */
function pagesPerStrategy(title: string, values: object[], stackBy: string, scheme: string) {
  return {
    title,
    data: { values },
    facet: { column: { field: "strategy", title: null } },
    spec: {
      width: 110,
      height: 140,
      mark: "bar",
      encoding: {
        x: uptime,
        y: { field: "pages", type: "quantitative", title: "pages", stack: "zero" },
        color: { field: stackBy, type: "nominal", scale: { scheme } },
      },
    },
  } as const;
}

export function fragmentationChart(records: readonly ResultRecord[]): TopLevelSpec {
  const summaries = summarize(records);
  // "(1) vmalloc-remap": sorts by the seed's numbering; a strategy in two eras is told apart by era.
  const eras = new Map<string, Set<string>>();
  for (const s of summaries) eras.set(s.strategy, (eras.get(s.strategy) ?? new Set()).add(s.era));
  const name = (s: { strategy: string; era: string }) =>
    `(${strategyByName(s.strategy)?.approach ?? "?"}) ${s.strategy}${(eras.get(s.strategy)?.size ?? 0) > 1 ? `, ${s.era}` : ""}`;
  const success = summaries.map((s) => ({
    strategy: name(s),
    uptime: s.uptime,
    success: s.runs ? s.added / s.runs : 0,
    fallbacks: s.runs ? s.fallbacks / s.runs : 0,
  }));
  const cost = summaries.flatMap((s) => [
    {
      strategy: name(s),
      uptime: s.uptime,
      work: "pages migrated by compaction",
      pages: s.compactionMigrated,
    },
    { strategy: name(s), uptime: s.uptime, work: "pages reclaimed", pages: s.reclaimed },
  ]);
  const orders = summaries.flatMap((s) =>
    s.meanBlocks.flatMap((blocks, order) =>
      blocks > 0
        ? [{ strategy: name(s), uptime: s.uptime, order: `order ${order}`, pages: blocks * 2 ** order }]
        : [],
    ),
  );
  const indexRows = new Map<string, { uptime: string; index: string; value: number; n: number }>();
  for (const s of summaries)
    for (const [index, value] of [
      ["extfrag order 10", s.extfrag10],
      ["unusable order 10", s.unusable10],
      ["extfrag order 9", s.extfrag9],
      ["unusable order 9", s.unusable9],
    ] as const) {
      const id = `${s.uptime}|${index}`;
      const row = indexRows.get(id) ?? { uptime: s.uptime, index, value: 0, n: 0 };
      row.value += value / 1000;
      row.n++;
      indexRows.set(id, row);
    }
  const indices = [...indexRows.values()].map((r) => ({
    uptime: r.uptime,
    index: r.index,
    value: r.value / r.n,
  }));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: "netvsc device add after uptime: success, allocator cost, pages by order, fragmentation",
    config: { font: "sans-serif", view: { stroke: null }, legend: { labelLimit: 300 } },
    vconcat: [
      {
        title: "device add succeeded (share of seeds); dark overlay = runs with an order-10 fallback",
        width: 520,
        height: 160,
        data: { values: success },
        layer: [
          {
            mark: "bar",
            encoding: {
              x: uptime,
              xOffset: { field: "strategy" },
              y: { field: "success", type: "quantitative", axis: { format: "%" }, title: "added" },
              color: { field: "strategy", type: "nominal" },
            },
          },
          {
            mark: { type: "bar", color: "black", opacity: 0.35 },
            encoding: {
              x: uptime,
              xOffset: { field: "strategy" },
              y: { field: "fallbacks", type: "quantitative" },
            },
          },
        ],
      },
      pagesPerStrategy(
        "what the add cost the allocator (mean per add): pages compaction migrated, pages reclaimed",
        cost,
        "work",
        "set2",
      ),
      pagesPerStrategy(
        "buffer pages (RX + TX) by buddy order, mean of successful adds (shared-pool: carved from its pool)",
        orders,
        "order",
        "category10",
      ),
      {
        title: "fragmentation indices after aging (mean over seeds and strategies)",
        width: 520,
        height: 140,
        data: { values: indices },
        mark: { type: "line", point: true },
        encoding: {
          x: uptime,
          y: { field: "value", type: "quantitative", title: "index", scale: { domain: [-1, 1] } },
          color: { field: "index", type: "nominal" },
        },
      },
    ],
    resolve: { scale: { color: "independent" } },
  } as TopLevelSpec;
}
