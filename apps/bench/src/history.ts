import { formatBytes, strategyByName } from "@ivm/catalog";
import { getProfile, type ProfileName } from "@ivm/kernel";
import { NETVSC_DEFAULT_RX, NETVSC_DEFAULT_TX } from "@ivm/netvsc-protocol";
import { type CompareCase, compareRank, findingsCell, pair } from "./compare.js";
import { type MetricValue, type ResultRecord, sortByRank } from "./records.js";
import { num, type TableData } from "./render.js";

/**
 * The history as it happened: approach (1), which landed in 5.17, on the kernel it shipped in, beside
 * approach (5), which replaced it in 6.4, on each later kernel — each measured clean and with the
 * receive buffer's re-encryption refused at remove (the fault the 2024 fixes are about).
 */
export const HISTORY: readonly { readonly strategy: string; readonly kernel: ProfileName }[] = [
  { strategy: "vmalloc-remap", kernel: "5.17" },
  { strategy: "vtom-pte", kernel: "6.4" },
  { strategy: "vtom-pte", kernel: "6.6" },
  { strategy: "vtom-pte", kernel: "6.9" },
  { strategy: "vtom-pte", kernel: "6.12" },
  { strategy: "vtom-pte", kernel: "6.18" },
];

/** The history's compare cases: each row clean and with `reencrypt-fail`, at the default buffer sizes. */
export function historyCases(o: {
  readonly memory: number;
  readonly seed: number;
  readonly packets: number;
}): CompareCase[] {
  const cases = HISTORY.flatMap(({ strategy, kernel }) =>
    [undefined, "reencrypt-fail" as const].map(
      (fault): CompareCase => ({
        strategy,
        era: getProfile(kernel).era,
        kernel,
        isolated: true,
        memory: o.memory,
        uptime: "none",
        seed: o.seed,
        packets: o.packets,
        rxSections: NETVSC_DEFAULT_RX,
        txSections: NETVSC_DEFAULT_TX,
        ...(fault !== undefined ? { fault } : {}),
      }),
    ),
  );
  return sortByRank(cases, compareRank, (c) => ({ ...c }));
}

const n = (v: MetricValue | undefined): number | null => (typeof v === "number" ? v : null);

/** One row per (strategy, kernel): the clean run's costs, then what the re-encryption failure left. */
export function historyTable(records: readonly ResultRecord[]): TableData {
  const compare = records.filter((r) => r.bench === "compare" && r.key.kernel !== undefined);
  const clean = compare.filter((r) => r.key.fault === undefined);
  const rows = clean.map((r) => {
    const k = r.key;
    const m = r.metrics;
    const failed = compare.find(
      (f) => f.key.fault === "reencrypt-fail" && f.key.strategy === k.strategy && f.key.kernel === k.kernel,
    )?.metrics;
    const s = strategyByName(String(k.strategy));
    return [
      s ? `(${s.approach}) ${s.name}` : String(k.strategy),
      `${String(k.kernel)} (${String(k.era)})`,
      pair(m, "liveMappings"),
      pair(m, "vmallocBytes", formatBytes),
      pair(m, "ptePages"),
      pair(m, "persistentMetadataBytes", formatBytes),
      pair(m, "hypercalls"),
      pair(m, "gpadlMessages"),
      failed ? num(n(failed["remove.leakedPages"])) : "–",
      failed ? num(n(failed["remove.hostVisibleLeft"])) : "–",
      failed ? findingsCell(failed) : "–",
    ];
  });
  return {
    title: "The history as it happened: approach (1) on 5.17 beside approach (5) on 6.4 and later",
    head: [
      "strategy",
      "kernel",
      "live mappings",
      "vmalloc VA",
      "PTE pages",
      "persistent metadata",
      "hypercalls",
      "GPADL msgs",
      "reencrypt-fail: leaked pages",
      "host-visible left",
      "findings",
    ],
    rows,
    notes: [
      "Costs: RX buffer + TX buffer after device add at the default sizes, on the named kernel (kernel-exact).",
      "reencrypt-fail: the hypervisor refuses the second visibility batch of the receive buffer at remove. A kernel with the 2024 fixes (6.9, and 6.1.91/6.6.31 by backport) leaks the pages it could not re-encrypt and says nothing; one without them frees them (0 leaked, the pages back in the allocator still host-visible), which the lab reports as findings.",
    ],
  };
}
