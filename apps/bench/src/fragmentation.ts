import { strategyByName, strategyEras } from "@ivm/catalog";
import type { Era } from "@ivm/hypercall";
import type { UptimeLevel } from "@ivm/memory";
import { addNicMeasured, Vm } from "@ivm/vm";
import { formatOrders } from "./compare.js";
import { eraOrder, strategyOrder, UPTIMES, uptimeOrder } from "./order.js";
import type { MetricValue, Rank, ResultRecord } from "./records.js";
import { runInfo, sortByRank } from "./records.js";
import { num, type TableData } from "./render.js";

export { UPTIMES };

export interface FragmentationCase {
  readonly strategy: string;
  readonly era: Era;
  readonly memory: number;
  readonly uptime: UptimeLevel;
  readonly seed: number;
}

/**
 * Ages a guest (seeded), reads the fragmentation indices the kernel would report, then hot-adds a NIC:
 * did the add succeed, how often did an order-10 allocation fail (strategy (4) then falls back to
 * order-0 pages), which orders the buffers' pages came from, and what the allocator did for it
 * (direct compaction runs and pages migrated, pages reclaimed, allocation stalls) — for the whole add
 * and for the RX buffer's own allocation (where (4)'s order-10 attempts are).
 */
export function measureFragmentation(c: FragmentationCase): ResultRecord {
  const entry = strategyByName(c.strategy);
  if (!entry) throw new Error(`unknown strategy ${c.strategy}`);
  const vm = Vm.boot({ memory: c.memory, era: c.era, uptime: c.uptime, seed: c.seed, strategy: entry });
  const frag = vm.memory.fragmentation();
  const free = vm.memory.buddyinfo();
  const { cost } = addNicMeasured(vm);
  const rx = cost.buffers.rx?.strategy?.pagesByOrder;
  const tx = cost.buffers.tx?.strategy?.pagesByOrder;
  const blocks = Array.from({ length: 11 }, (_, o) => (rx?.[o] ?? 0) + (tx?.[o] ?? 0));
  return {
    bench: "fragmentation",
    key: { strategy: c.strategy, era: c.era, memory: c.memory, uptime: c.uptime, seed: c.seed },
    metrics: {
      ok: cost.ok,
      error: cost.error ?? null,
      order10Failures: cost.order10Failures,
      // buddy blocks per order (0..10) taken for the RX and TX buffers together
      blocksByOrder: blocks,
      freeBlocksByOrder: free,
      extfrag9: frag[9]!.extfrag,
      extfrag10: frag[10]!.extfrag,
      unusable9: frag[9]!.unusable,
      unusable10: frag[10]!.unusable,
      compactionStalls: cost.allocator.compactionStalls,
      compactionSuccesses: cost.allocator.compactionSuccesses,
      compactionMigrateScanned: cost.allocator.compactionMigrateScanned,
      compactionFreeScanned: cost.allocator.compactionFreeScanned,
      compactionMigrated: cost.allocator.compactionMigrated,
      compactionDeferred: cost.allocator.compactionDeferred,
      allocStalls: cost.allocator.allocStalls,
      reclaimed:
        cost.allocator.reclaimed + cost.allocator.kswapdReclaimed + cost.allocator.slabPagesReclaimed,
      rxCompactionStalls: cost.buffers.rx?.strategy?.allocatorWork.compactionStalls ?? 0,
      rxCompactionMigrated: cost.buffers.rx?.strategy?.allocatorWork.compactionMigrated ?? 0,
    },
    run: runInfo(),
  };
}

/** The fragmentation sweep's order: uptime level, seed, then catalog order. */
export const fragmentationRank: Rank = (k) => [
  uptimeOrder(k.uptime),
  Number(k.seed),
  strategyOrder(k.strategy),
  eraOrder(k.era),
  Number(k.memory),
];

/** Every (uptime, seed, strategy, era) case, in the sweep's order (`fragmentationRank`). */
export function fragmentationCases(o: {
  readonly strategies?: readonly string[];
  readonly uptimes: readonly UptimeLevel[];
  readonly seeds: readonly number[];
  readonly memory: number;
}): FragmentationCase[] {
  const pairs = strategyEras(o.strategies ? { names: o.strategies } : {});
  const cases: FragmentationCase[] = [];
  for (const uptime of o.uptimes)
    for (const seed of o.seeds)
      for (const { entry, era } of pairs)
        cases.push({ strategy: entry.name, era, memory: o.memory, uptime, seed });
  return sortByRank(cases, fragmentationRank, (c) => ({ ...c }));
}

/** Runs of one (strategy, era, uptime) over all seeds, averaged. */
export interface FragmentationSummary {
  readonly strategy: string;
  readonly era: string;
  readonly uptime: string;
  readonly runs: number;
  readonly added: number;
  /** Runs in which an order-10 allocation failed (a fallback, or a failed add). */
  readonly fallbacks: number;
  /** Mean blocks per order per successful add. */
  readonly meanBlocks: readonly number[];
  readonly extfrag10: number;
  readonly unusable10: number;
  readonly extfrag9: number;
  readonly unusable9: number;
  /** Mean direct-compaction runs, pages migrated and pages reclaimed per add (all runs). */
  readonly compactionStalls: number;
  readonly compactionMigrated: number;
  readonly compactionScanned: number;
  readonly reclaimed: number;
  readonly allocStalls: number;
  /** Mean pages migrated inside the RX buffer's allocate call (strategy (4)'s order-10 attempts). */
  readonly rxCompactionMigrated: number;
  readonly errors: readonly string[];
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const nums = (v: MetricValue | undefined): readonly number[] => (Array.isArray(v) ? v : []);

export function summarize(records: readonly ResultRecord[]): FragmentationSummary[] {
  const groups = new Map<string, ResultRecord[]>();
  for (const r of records) {
    if (r.bench !== "fragmentation") continue;
    const id = `${String(r.key.strategy)}|${String(r.key.era)}|${String(r.key.uptime)}`;
    groups.set(id, [...(groups.get(id) ?? []), r]);
  }
  return [...groups.values()].map((runs) => {
    const k = runs[0]!.key;
    const ok = runs.filter((r) => r.metrics.ok === true);
    const metric = (name: string) => mean(runs.map((r) => Number(r.metrics[name])));
    return {
      strategy: String(k.strategy),
      era: String(k.era),
      uptime: String(k.uptime),
      runs: runs.length,
      added: ok.length,
      fallbacks: runs.filter((r) => Number(r.metrics.order10Failures) > 0).length,
      meanBlocks: Array.from({ length: 11 }, (_, o) =>
        mean(ok.map((r) => nums(r.metrics.blocksByOrder)[o] ?? 0)),
      ),
      extfrag10: metric("extfrag10"),
      unusable10: metric("unusable10"),
      extfrag9: metric("extfrag9"),
      unusable9: metric("unusable9"),
      compactionStalls: metric("compactionStalls"),
      compactionMigrated: metric("compactionMigrated"),
      compactionScanned: metric("compactionMigrateScanned") + metric("compactionFreeScanned"),
      reclaimed: metric("reclaimed"),
      allocStalls: metric("allocStalls"),
      rxCompactionMigrated: metric("rxCompactionMigrated"),
      errors: [
        ...new Set(runs.flatMap((r) => (typeof r.metrics.error === "string" ? [r.metrics.error] : []))),
      ],
    };
  });
}

const index = (thousandths: number): string => num(thousandths / 1000, 3);

export function fragmentationTable(records: readonly ResultRecord[]): TableData {
  const summaries = summarize(records);
  const seeds = new Set(records.map((r) => r.key.seed));
  const errors = [...new Set(summaries.flatMap((s) => s.errors))];
  return {
    title: `Device add after uptime (${seeds.size} seed${seeds.size === 1 ? "" : "s"} per cell)`,
    head: [
      "strategy",
      "era",
      "uptime",
      "added",
      "order-10 fallbacks",
      "blocks by order (mean)",
      "extfrag o10",
      "unusable o10",
      "extfrag o9",
      "unusable o9",
      "compaction runs",
      "pages migrated",
      "of which RX alloc",
      "reclaimed",
      "stalls",
    ],
    rows: summaries.map((s) => [
      `(${strategyByName(s.strategy)?.approach ?? "?"}) ${s.strategy}`,
      s.era,
      s.uptime,
      `${s.added}/${s.runs}`,
      `${s.fallbacks}/${s.runs}`,
      s.added ? formatOrders(s.meanBlocks.map((b) => Math.round(b * 10) / 10)) : "–",
      index(s.extfrag10),
      index(s.unusable10),
      index(s.extfrag9),
      index(s.unusable9),
      num(s.compactionStalls, 1),
      num(s.compactionMigrated, 0),
      num(s.rxCompactionMigrated, 0),
      num(s.reclaimed, 0),
      num(s.allocStalls, 1),
    ]),
    notes: [
      "Indices as mm/vmstat.c computes them, after aging and before the add (extfrag −1 = a free block of that order exists; unusable = share of free memory in smaller blocks).",
      "Allocator work per add (means over seeds): direct compaction runs (compact_stall), pages migrated (pgmigrate_success), of those inside the RX buffer's allocation, pages reclaimed (direct, kswapd, slab), direct-reclaim stalls (allocstall).",
      ...errors.map((e) => `Failed adds: ${e}`),
    ],
  };
}
