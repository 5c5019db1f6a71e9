import { formatBytes, STRATEGIES, strategyByName, strategyEras } from "@ivm/catalog";
import type { Era } from "@ivm/hypercall";
import { getProfile, PROFILE_NAMES, type ProfileName } from "@ivm/kernel";
import type { UptimeLevel } from "@ivm/memory";
import { NETVSC_DEFAULT_RX, NETVSC_DEFAULT_TX } from "@ivm/netvsc-protocol";
import { addNicMeasured, type BufferCost, type FaultName, runTraffic, trackChannels, Vm } from "@ivm/vm";
import { packageLoc } from "./loc.js";
import { eraOrder, strategyOrder, uptimeOrder } from "./order.js";
import { type MetricValue, type Rank, type ResultRecord, runInfo, sortByRank } from "./records.js";
import { num, type TableData } from "./render.js";

/** One row of the comparison: a strategy in one era, at one set of sizes. */
export interface CompareCase {
  readonly strategy: string;
  readonly era: Era;
  readonly isolated: boolean;
  readonly memory: number;
  readonly uptime: UptimeLevel;
  readonly seed: number;
  readonly rxSections: number;
  readonly txSections: number;
  /** Frames of the fixed traffic mix used to measure bytes copied per packet. */
  readonly packets: number;
  /** The kernel the guest boots, kernel-exact (its era is `era`); absent: the era's representative. */
  readonly kernel?: ProfileName;
  /** A named fault armed in the guest (@ivm/vm's VM_FAULTS). */
  readonly fault?: FaultName;
  /** vCPUs: with it the NIC is multi-queue (the kernel's default channel count for them). */
  readonly cpus?: number;
  /** Channels the NIC asks for (ethtool -L combined). */
  readonly queues?: number;
}

type Metrics = Record<string, MetricValue>;

function bufferMetrics(prefix: "rx" | "tx", b: BufferCost | undefined, out: Metrics): void {
  const s = b?.strategy;
  Object.assign(out, {
    [`${prefix}.sections`]: b?.sections ?? null,
    [`${prefix}.pages`]: b?.pages ?? null,
    [`${prefix}.liveMappings`]: b?.liveMappings ?? null,
    [`${prefix}.vmallocBytes`]: b?.vmallocBytes ?? null,
    [`${prefix}.ptePages`]: b?.ptePages ?? null,
    [`${prefix}.persistentMetadataBytes`]: s?.persistentMetadataBytes ?? null,
    [`${prefix}.transientPeakBytes`]: s?.transientPeakBytes ?? null,
    [`${prefix}.pagesByOrder`]: s?.pagesByOrder ?? null,
    [`${prefix}.pageWalks`]: s?.pageWalks ?? null,
    [`${prefix}.hypercalls`]: b?.hypercalls ?? null,
    [`${prefix}.gpadlMessages`]: b?.gpadlMessages ?? null,
  });
}

const ratio = (bytes: number, packets: number): number | null =>
  packets === 0 ? null : Math.round((bytes / packets) * 10) / 10;

/**
 * Boots a guest with the case's strategy, hot-adds a NIC (measured by @ivm/vm), runs a fixed, seeded
 * traffic mix through it and removes it. Every number comes from the model's counters.
 */
export function measureCompare(c: CompareCase): ResultRecord {
  const entry = strategyByName(c.strategy);
  if (!entry) throw new Error(`unknown strategy ${c.strategy}`);
  const vm = Vm.boot({
    memory: c.memory,
    ...(c.kernel !== undefined ? { kernel: c.kernel } : { era: c.era }),
    ...(c.fault !== undefined ? { fault: c.fault } : {}),
    isolation: c.isolated,
    uptime: c.uptime,
    seed: c.seed,
    strategy: entry,
    ...(c.cpus !== undefined ? { cpus: c.cpus } : {}),
  });
  const tracker = trackChannels(vm);
  const { nic, cost } = addNicMeasured(vm, {
    rxSections: c.rxSections,
    txSections: c.txSections,
    ...(c.queues !== undefined ? { queues: c.queues } : {}),
  });
  const totals = nic ? tracker.report(nic).totals : undefined;
  tracker.stop();
  const metrics: Metrics = { ok: cost.ok, error: cost.error ?? null };
  bufferMetrics("rx", cost.buffers.rx, metrics);
  bufferMetrics("tx", cost.buffers.tx, metrics);
  Object.assign(metrics, {
    "add.hypercalls": cost.hypercalls,
    "add.gpadlMessages": cost.gpadlMessages,
    "add.channelMessages": cost.channelMessages,
    "add.pageTablePages": cost.pageTablePagesAdded,
    "add.order10Failures": cost.order10Failures,
    // the NIC's shared-memory footprint: every channel's ring block plus the two buffers
    "nic.channels": totals?.channels ?? null,
    "nic.ringPages": totals?.ringBlockPages ?? null,
    "nic.bufferPages": totals?.bufferPages ?? null,
    "nic.pages": totals?.pages ?? null,
    "nic.ringGpadlMessages": totals?.ringGpadlMessages ?? null,
  });
  if (nic) {
    const stats = nic.device.stats;
    const bounced = (): number => vm.dmaLayer.pool?.stats().bounce.bytesCopiedAtMap ?? 0;
    const before = { ...stats, bounced: bounced(), hostVerified: nic.host.counters.txFramesVerified };
    const t = runTraffic(vm, nic, { packets: c.packets, seed: c.seed });
    const d = (
      k: "sendSectionCopies" | "sendSectionBytes" | "pageBufferSends" | "rxRangeCopies" | "rxRangeBytes",
    ) => stats[k] - before[k];
    const bouncedBytes = bounced() - before.bounced;
    const hostVerified = nic.host.counters.txFramesVerified - before.hostVerified;
    Object.assign(metrics, {
      "traffic.txFrames": t.txFrames,
      "traffic.rxFrames": t.rxFrames,
      "traffic.verified":
        t.rxVerified === t.rxQueued && t.rxCorrupt === 0 && t.txDropped === 0 && hostVerified === t.txFrames,
      "copy.txSection.packets": d("sendSectionCopies"),
      "copy.txSection.bytesPerPacket": ratio(d("sendSectionBytes"), d("sendSectionCopies")),
      "copy.txBounce.packets": d("pageBufferSends"),
      "copy.txBounce.bytesPerPacket": ratio(bouncedBytes, d("pageBufferSends")),
      "copy.rx.packets": d("rxRangeCopies"),
      "copy.rx.bytesPerPacket": ratio(d("rxRangeBytes"), d("rxRangeCopies")),
      "copy.perTxFrame": ratio(d("sendSectionBytes") + bouncedBytes, t.txFrames),
      "copy.perRxFrame": ratio(d("rxRangeBytes"), t.rxFrames),
    });
    const removed = vm.removeNic(nic);
    metrics["remove.leakedBuffers"] = removed.leakedBuffers;
    metrics["remove.hostVisibleLeft"] = vm.hostVisibleOutsideSwiotlb();
  }
  metrics["remove.leakedPages"] = vm.memory.leakedPages;
  // what the booted kernel would do that its fixed successors do not (counted, never a failure)
  metrics.findings = vm.findingLog.count();
  metrics["findings.ids"] = [...vm.findingLog.countsById().keys()].sort().join(" ");
  if (c.fault !== undefined) metrics["fault.fired"] = vm.fault?.fired ?? false;
  metrics.loc = packageLoc(entry.packageName).loc;
  return {
    bench: "compare",
    key: {
      strategy: c.strategy,
      era: c.era,
      isolated: c.isolated,
      memory: c.memory,
      uptime: c.uptime,
      seed: c.seed,
      rxSections: c.rxSections,
      txSections: c.txSections,
      packets: c.packets,
      // only when given, so that records of the era shorthand keep their keys (and baselines match)
      ...(c.kernel !== undefined ? { kernel: c.kernel } : {}),
      ...(c.fault !== undefined ? { fault: c.fault } : {}),
      ...(c.cpus !== undefined ? { cpus: c.cpus } : {}),
      ...(c.queues !== undefined ? { queues: c.queues } : {}),
    },
    metrics,
    run: runInfo(),
  };
}

/** The compare sweep's order: the default buffer sizes first, isolated first, then catalog order. */
export const compareRank: Rank = (k) => [
  k.rxSections === NETVSC_DEFAULT_RX && k.txSections === NETVSC_DEFAULT_TX ? 0 : 1,
  Number(k.rxSections),
  Number(k.txSections),
  k.isolated === false ? 1 : 0,
  strategyOrder(k.strategy),
  eraOrder(k.era),
  k.kernel === undefined ? -1 : PROFILE_NAMES.indexOf(k.kernel as ProfileName),
  k.fault === undefined ? "" : String(k.fault),
  Number(k.memory),
  uptimeOrder(k.uptime),
  Number(k.seed),
  Number(k.packets),
];

/**
 * Every (strategy, era) pair the catalog lists, filtered, times each isolation and size setting, in the
 * compare sweep's order (`compareRank`).
 */
export function compareCases(o: {
  readonly strategies?: readonly string[];
  readonly eras?: readonly Era[];
  /** Boot these kernels instead of the eras' representatives: each strategy on each kernel it was written for. */
  readonly kernels?: readonly ProfileName[];
  readonly fault?: FaultName;
  readonly isolation: readonly boolean[];
  readonly sizes: readonly { readonly rxSections: number; readonly txSections: number }[];
  readonly memory: number;
  readonly uptime: UptimeLevel;
  readonly seed: number;
  readonly packets: number;
  readonly cpus?: number;
  readonly queues?: number;
}): CompareCase[] {
  const { memory, uptime, seed, packets } = o;
  const fault = {
    ...(o.fault !== undefined ? { fault: o.fault } : {}),
    ...(o.cpus !== undefined ? { cpus: o.cpus } : {}),
    ...(o.queues !== undefined ? { queues: o.queues } : {}),
  };
  const pairs: { name: string; era: Era; kernel?: ProfileName }[] =
    o.kernels !== undefined
      ? o.kernels.flatMap((kernel) => {
          const profile = getProfile(kernel);
          return STRATEGIES.filter(
            (s) =>
              (!o.strategies || o.strategies.includes(s.name)) &&
              (!o.eras || o.eras.includes(profile.era)) &&
              s.unsupportedOn(profile) === null,
          ).map((s) => ({ name: s.name, era: profile.era, kernel }));
        })
      : strategyEras({
          ...(o.strategies ? { names: o.strategies } : {}),
          ...(o.eras ? { eras: o.eras } : {}),
        }).map(({ entry, era }) => ({ name: entry.name, era }));
  const cases: CompareCase[] = [];
  for (const size of o.sizes)
    for (const isolated of o.isolation)
      for (const { name, era, kernel } of pairs)
        cases.push({
          strategy: name,
          era,
          isolated,
          memory,
          uptime,
          seed,
          packets,
          ...size,
          ...(kernel !== undefined ? { kernel } : {}),
          ...fault,
        });
  return sortByRank(cases, compareRank, (c) => ({ ...c }));
}

const n = (v: MetricValue | undefined): number | null => (typeof v === "number" ? v : null);

/** `rx + tx` of one metric (`rx.<name>`, `tx.<name>`), or `–` when either is missing. */
export const pair = (
  m: Readonly<Record<string, MetricValue>>,
  name: string,
  f: (v: number) => string = (v) => num(v),
): string => {
  const rx = n(m[`rx.${name}`]);
  const tx = n(m[`tx.${name}`]);
  return rx === null || tx === null ? "–" : `${f(rx)} + ${f(tx)}`;
};

/** `4096×o0`, `4×o10`, or `pool` when the strategy allocated no pages of its own. */
export function formatOrders(orders: MetricValue | undefined): string {
  if (!Array.isArray(orders)) return "–";
  const parts = orders.flatMap((count, order) => (count > 0 ? [`${count}×o${order}`] : []));
  return parts.length ? parts.join(" ") : "pool";
}

function label(name: string): string {
  const s = strategyByName(name);
  return s ? `(${s.approach}) ${name}` : name;
}

/** `0`, or the count and the ids: `2: CVE-2024-36911 CVE-2024-36912`. */
export function findingsCell(m: Readonly<Record<string, MetricValue>>): string {
  const count = n(m.findings);
  if (count === null) return "–";
  return count === 0 ? "0" : `${num(count)}: ${String(m["findings.ids"])}`;
}

export function compareTable(records: readonly ResultRecord[]): TableData {
  // the findings column only for runs on named kernels or with a fault (the era shorthand has none)
  const withFindings = records.some((r) => r.key.kernel !== undefined || r.key.fault !== undefined);
  const rows = records
    .filter((r) => r.bench === "compare")
    .map((r) => {
      const k = r.key;
      const m = r.metrics;
      const kernel = k.kernel === undefined ? String(k.era) : `${String(k.kernel)} (${String(k.era)})`;
      const era = k.isolated === false ? `${kernel}, no isolation` : kernel;
      const failed = m.ok === false ? `add failed: ${String(m.error)}` : null;
      return [
        label(String(k.strategy)),
        era,
        `${num(n(k.rxSections))} / ${num(n(k.txSections))}`,
        failed ?? pair(m, "liveMappings"),
        pair(m, "vmallocBytes", formatBytes),
        pair(m, "ptePages"),
        pair(m, "persistentMetadataBytes", formatBytes),
        pair(m, "transientPeakBytes", formatBytes),
        `${formatOrders(m["rx.pagesByOrder"])} + ${formatOrders(m["tx.pagesByOrder"])}`,
        pair(m, "hypercalls"),
        pair(m, "gpadlMessages"),
        num(n(m["nic.channels"])),
        n(m["nic.pages"]) === null ? "–" : `${num(n(m["nic.ringPages"]))} + ${num(n(m["nic.bufferPages"]))}`,
        pair(m, "pageWalks"),
        num(n(m["copy.txSection.bytesPerPacket"])),
        num(n(m["copy.txBounce.bytesPerPacket"])),
        num(n(m["copy.rx.bytesPerPacket"])),
        num(n(m.loc)),
        ...(withFindings ? [findingsCell(m)] : []),
      ];
    });
  const first = records.find((r) => r.bench === "compare");
  const traffic = first
    ? `${String(first.key.packets)} frames, seed ${String(first.key.seed)}, ${formatBytes(Number(first.key.memory))} guest, uptime ${String(first.key.uptime)}`
    : "";
  return {
    title: "Strategies compared (RX + TX buffer)",
    head: [
      "strategy",
      "era",
      "sections RX / TX",
      "live mappings",
      "vmalloc VA",
      "PTE pages",
      "persistent metadata",
      "temporary peak",
      "pages by order",
      "hypercalls",
      "GPADL msgs",
      "channels",
      "NIC pages rings + buffers",
      "page walks",
      "TX section B/pkt",
      "TX bounce B/pkt",
      "RX copy B/pkt",
      "LOC",
      ...(withFindings ? ["findings"] : []),
    ],
    rows,
    notes: [
      "Each cell is RX buffer + TX buffer, measured by the model after device add (packages/vm addNicMeasured).",
      `Bytes copied per packet: a fixed seeded mix (${traffic}) through the driver; the driver's and the swiotlb pool's counters divided by the packets on each path (section copy, swiotlb bounce of page-buffer sends, receive-buffer copy-out).`,
      "channels: the NIC's VMBus channels (the primary and its vRSS sub-channels; --cpus/--queues); NIC pages: every channel's ring block (order 9 each at netvsc's default ring size) plus the RX and TX buffers.",
      "LOC: non-blank, non-comment lines of packages/<strategy>/src/**/*.ts without tests, read from this repository at run time.",
    ],
  };
}
