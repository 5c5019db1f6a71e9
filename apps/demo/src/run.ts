import { STRATEGIES, type StrategyEntry } from "@ivm/catalog";
import type { Era } from "@ivm/hypercall";
import { eraProfile, type Finding, getProfile, type KernelProfile, type ProfileName } from "@ivm/kernel";
import type { AllocatorWork, UptimeLevel } from "@ivm/memory";
import {
  addNicMeasured,
  type BufferSummary,
  type DeviceAddCost,
  type FaultName,
  type FaultReport,
  type NicChannelReport,
  runTraffic,
  summarizeBuffer,
  trackChannels,
  Vm,
} from "@ivm/vm";
import type { StrategyReport, TimelineEvent } from "./report-model.js";
import { formatBytes } from "./size.js";
import { mappingViews, memoryPicture } from "./snapshot.js";

export interface DemoOptions {
  readonly strategies: readonly StrategyEntry[];
  /** One era for every strategy, or each strategy in each era it supports. */
  readonly era: Era | "each";
  readonly memory: number;
  readonly rxSections?: number;
  readonly txSections?: number;
  readonly uptime: UptimeLevel;
  readonly packets: number;
  readonly seed: number;
  readonly isolation: boolean;
  /** Collect what the HTML report draws (memory picture, mappings, timeline). */
  readonly picture: boolean;
  /** The kernel every strategy boots (its era is the run's); without it, each era's representative kernel. */
  readonly kernel?: ProfileName;
  /** With `kernel`: keep the lab's stricter checks of host values (default: the kernel's own logic). */
  readonly hardened?: boolean;
  /** A named fault armed in every strategy's guest (@ivm/vm's VM_FAULTS). */
  readonly fault?: FaultName;
  /** vCPUs of the guest; with it (or `queues`) the NIC is multi-queue, one host queue per vCPU. */
  readonly cpus?: number;
  /** Channels the NIC asks for (ethtool -L combined); default the kernel's count for `cpus`. */
  readonly queues?: number;
}

/** One VMBus channel of the NIC (the primary is index 0): its own rings, GPADL and traffic. */
export interface ChannelJson {
  readonly index: number;
  readonly relid: number;
  readonly ringPages: number;
  readonly ringBlockPages: number;
  readonly ringGpadlMessages: number;
  readonly txFrames: number;
  readonly rxFrames: number;
  /** Every frame sent on this queue was verified by the host and every frame the host sent on it arrived. */
  readonly trafficVerified: boolean;
}

/** One finding in the JSON document: the kernel's record plus the strategy (and era) whose run found it. */
export interface FindingJson extends Finding {
  readonly strategy: string;
  readonly era: Era;
}

/** The kernel a run boots: `--kernel`, or the era's representative (hardened, as the era shorthand is). */
export function runKernel(o: Pick<DemoOptions, "kernel" | "hardened">, era: Era): KernelProfile {
  if (o.kernel === undefined) return { ...eraProfile(era), hardened: true };
  const profile = getProfile(o.kernel);
  return { ...profile, hardened: o.hardened ?? false };
}

/** One strategy's run in the stable JSON shape printed by --json (documented in the README). */
export interface StrategyResult {
  readonly strategy: string;
  readonly approach: number;
  readonly era: Era;
  readonly isolation: boolean;
  /** The kernel profile the guest booted. */
  readonly kernel: ProfileName;
  readonly ran: boolean;
  readonly skipReason?: string;
  /** The armed named fault: whether it fired and where (null when none was armed). */
  readonly fault: FaultReport | null;
  /** How many findings this run's guest reported (listed in the document's top-level `findings`). */
  readonly findingCount: number;
  readonly buffers: { readonly rx: BufferSummary | null; readonly tx: BufferSummary | null };
  readonly persistentMetadataBytes: number;
  readonly transientPeakBytes: number;
  /** Data pages of both buffers, as buddy blocks per order 0..10. */
  readonly pagesByOrder: readonly number[];
  /** Order-10 allocation failures during device add (strategy (4) falling back). */
  readonly fallbacks: number;
  readonly swiotlb: { readonly slots: number; readonly pages: number; readonly bootHypercalls: number };
  readonly deviceAdd: {
    readonly ok: boolean;
    readonly error?: string;
    readonly hypercalls: number;
    readonly gpadlMessages: number;
    readonly channelMessages: number;
    readonly pageTablePagesAdded: number;
    /** What the add made the page allocator do (compaction…, reclaim, fallbacks); absent when it was not tried. */
    readonly allocator?: AllocatorWork;
    /** Fragmentation indices for orders 9 and 10 just before the add. */
    readonly fragmentation?: DeviceAddCost["fragmentation"];
  };
  readonly hostVisiblePagesAfterRemove: number;
  readonly leakedPages: number;
  readonly faults: number;
  readonly packets: {
    readonly sent: number;
    readonly received: number;
    readonly verified: number;
    readonly dropped: Readonly<Record<string, number>>;
  };
  /** The NIC's channels (one without multi-queue), measured after the traffic, before the remove. */
  readonly channels: readonly ChannelJson[];
  /** Per-NIC totals: rings (one order-9 block per channel by default) plus the two buffers, in pages. */
  readonly nic: {
    readonly channels: number;
    readonly ringPages: number;
    readonly bufferPages: number;
    readonly pages: number;
    readonly ringGpadlMessages: number;
  };
}

export interface DemoRun {
  readonly result: StrategyResult;
  readonly report: StrategyReport;
  readonly findings: readonly FindingJson[];
}

function skipped(
  entry: StrategyEntry,
  era: Era,
  kernel: ProfileName,
  isolation: boolean,
  reason: string,
): DemoRun {
  const none = { ok: false, hypercalls: 0, gpadlMessages: 0, channelMessages: 0, pageTablePagesAdded: 0 };
  return {
    findings: [],
    result: {
      strategy: entry.name,
      approach: entry.approach,
      era,
      isolation,
      kernel,
      ran: false,
      skipReason: reason,
      fault: null,
      findingCount: 0,
      buffers: { rx: null, tx: null },
      persistentMetadataBytes: 0,
      transientPeakBytes: 0,
      pagesByOrder: new Array(11).fill(0),
      fallbacks: 0,
      swiotlb: { slots: 0, pages: 0, bootHypercalls: 0 },
      deviceAdd: none,
      hostVisiblePagesAfterRemove: 0,
      leakedPages: 0,
      faults: 0,
      packets: { sent: 0, received: 0, verified: 0, dropped: {} },
      channels: [],
      nic: { channels: 0, ringPages: 0, bufferPages: 0, pages: 0, ringGpadlMessages: 0 },
    },
    report: {
      strategy: entry.name,
      era,
      kernel,
      ran: false,
      skipReason: reason,
      findings: [],
      mappings: [],
      timeline: [],
      counters: {},
    },
  };
}

/** The aged guest a run starts from, before its NIC is added. */
export function bootGuest(entry: StrategyEntry, kernel: KernelProfile, o: DemoOptions): Vm {
  return Vm.boot({
    memory: o.memory,
    kernel,
    ...(o.fault !== undefined ? { fault: o.fault } : {}),
    isolation: o.isolation,
    uptime: o.uptime,
    seed: o.seed,
    strategy: entry,
    ...(o.cpus !== undefined ? { cpus: o.cpus } : {}),
  });
}

function channelJson(report: NicChannelReport | undefined): readonly ChannelJson[] {
  return (report?.channels ?? []).map((c) => ({
    index: c.index,
    relid: c.relid,
    ringPages: c.ringPages,
    ringBlockPages: c.ringBlockPages,
    ringGpadlMessages: c.ringGpadlMessages,
    txFrames: c.txFrames,
    rxFrames: c.rxFrames,
    trafficVerified: c.opened && c.txVerified === c.txFrames && c.rxFrames === c.rxSent,
  }));
}

/** Boots one guest per strategy (same seed, same aged memory), adds a NIC, moves traffic, removes it. */
export function runOne(entry: StrategyEntry, era: Era, o: DemoOptions): DemoRun {
  const kernel = runKernel(o, era);
  // With --kernel, the strategy's own declaration of the kernels it was written for decides; with the
  // era shorthand, the eras it supports.
  const unsupported =
    o.kernel !== undefined
      ? entry.unsupportedOn(kernel)
      : entry.eras.includes(era)
        ? null
        : `${entry.name} was written for the ${entry.eras.join(" and ")} era, not ${era}`;
  if (unsupported !== null) return skipped(entry, era, kernel.name, o.isolation, unsupported);
  const vm = bootGuest(entry, kernel, o);
  const tracker = trackChannels(vm);
  const { nic, cost } = addNicMeasured(vm, {
    ...(o.rxSections !== undefined ? { rxSections: o.rxSections } : {}),
    ...(o.txSections !== undefined ? { txSections: o.txSections } : {}),
    ...(o.queues !== undefined ? { queues: o.queues } : {}),
  });
  const picture = o.picture ? memoryPicture(vm.memory) : undefined;
  const mappings = o.picture
    ? mappingViews(
        vm.memory,
        (tag) => tag.startsWith("netvsc-") || tag.includes("shared-pool") || tag.startsWith("dma-"),
      )
    : [];
  const traffic = nic ? runTraffic(vm, nic, { packets: o.packets, seed: o.seed }) : undefined;
  const dropped: Record<string, number> = nic
    ? { ...nic.device.stats.txDrops.snapshot(), ...nic.device.stats.rxDrops.snapshot() }
    : {};
  const channels = nic ? tracker.report(nic) : undefined;
  tracker.stop();
  if (nic) vm.removeNic(nic);
  const rx = cost.buffers.rx;
  const tx = cost.buffers.tx;
  const orders = new Array<number>(11).fill(0);
  for (const b of [rx, tx]) {
    b?.strategy?.pagesByOrder.forEach((n, i) => {
      orders[i]! += n;
    });
  }
  const pool = vm.dmaLayer.pool?.stats();
  const findings: FindingJson[] = vm.findings.map((f) => ({ ...f, strategy: entry.name, era }));
  const result: StrategyResult = {
    strategy: entry.name,
    approach: entry.approach,
    era,
    isolation: o.isolation,
    kernel: kernel.name,
    ran: cost.ok,
    ...(cost.ok ? {} : { skipReason: `device add failed: ${cost.error}` }),
    fault: vm.fault ?? null,
    findingCount: vm.findingLog.count(),
    buffers: { rx: summarizeBuffer(rx), tx: summarizeBuffer(tx) },
    persistentMetadataBytes:
      (rx?.strategy?.persistentMetadataBytes ?? 0) + (tx?.strategy?.persistentMetadataBytes ?? 0),
    transientPeakBytes: Math.max(
      rx?.strategy?.transientPeakBytes ?? 0,
      tx?.strategy?.transientPeakBytes ?? 0,
    ),
    pagesByOrder: orders,
    fallbacks: cost.order10Failures,
    swiotlb: {
      slots: pool?.nslabs ?? 0,
      pages: pool?.poolPages ?? 0,
      bootHypercalls: pool?.bootHypercalls ?? 0,
    },
    deviceAdd: {
      ok: cost.ok,
      ...(cost.error ? { error: cost.error } : {}),
      hypercalls: cost.hypercalls,
      gpadlMessages: cost.gpadlMessages,
      channelMessages: cost.channelMessages,
      pageTablePagesAdded: cost.pageTablePagesAdded,
      allocator: cost.allocator,
      fragmentation: cost.fragmentation,
    },
    hostVisiblePagesAfterRemove: vm.hostVisibleOutsideSwiotlb(),
    leakedPages: vm.memory.leakedPages,
    faults: vm.memory.mmu.totalFaults,
    packets: {
      sent: traffic?.txFrames ?? 0,
      received: traffic?.rxFrames ?? 0,
      verified: (traffic?.rxVerified ?? 0) + (nic?.host.counters.txFramesVerified ?? 0),
      dropped,
    },
    channels: channelJson(channels),
    nic: {
      channels: channels?.totals.channels ?? 0,
      ringPages: channels?.totals.ringBlockPages ?? 0,
      bufferPages: channels?.totals.bufferPages ?? 0,
      pages: channels?.totals.pages ?? 0,
      ringGpadlMessages: channels?.totals.ringGpadlMessages ?? 0,
    },
  };
  const timeline: TimelineEvent[] = cost.timeline.map((t) => ({
    kind: t.kind,
    label: t.label,
    count: t.count,
  }));
  const counters: Record<string, number | string> = {
    "live mappings (rx + tx)": `${rx?.liveMappings ?? 0} + ${tx?.liveMappings ?? 0}`,
    "hypercalls (rx + tx)": `${rx?.hypercalls ?? 0} + ${tx?.hypercalls ?? 0}`,
    "GPADL messages (rx + tx)": `${rx?.gpadlMessages ?? 0} + ${tx?.gpadlMessages ?? 0}`,
    "vmalloc address space (rx + tx)": formatBytes((rx?.vmallocBytes ?? 0) + (tx?.vmallocBytes ?? 0)),
    "PTE pages used (rx + tx)": (rx?.ptePages ?? 0) + (tx?.ptePages ?? 0),
    "persistent metadata": formatBytes(result.persistentMetadataBytes),
    "temporary peak": formatBytes(result.transientPeakBytes),
    "order-10 fallbacks": result.fallbacks,
    "device-add hypercalls (all)": cost.hypercalls,
    "swiotlb slots": result.swiotlb.slots,
    "channels (queues)": result.nic.channels,
    "NIC pages (rings + buffers)": `${result.nic.ringPages} + ${result.nic.bufferPages}`,
    "packets sent / received / verified": `${result.packets.sent} / ${result.packets.received} / ${result.packets.verified}`,
    "host-visible pages after remove": result.hostVisiblePagesAfterRemove,
    "leaked pages": result.leakedPages,
    faults: result.faults,
    findings: result.findingCount,
    ...(result.fault
      ? { [`fault ${result.fault.name}`]: result.fault.fired ? "fired" : "did not fire" }
      : {}),
  };
  return {
    findings,
    result,
    report: {
      strategy: entry.name,
      era,
      kernel: kernel.name,
      ran: cost.ok,
      ...(cost.ok ? {} : { skipReason: `device add failed: ${cost.error}` }),
      ...(result.fault ? { fault: result.fault } : {}),
      findings,
      ...(picture ? { picture } : {}),
      mappings,
      timeline,
      counters,
    },
  };
}

/** The (strategy, era) pairs a run covers: with a kernel, every strategy in its era. */
export function plan(
  o: Pick<DemoOptions, "strategies" | "era" | "kernel">,
): { entry: StrategyEntry; era: Era }[] {
  const era = o.kernel !== undefined ? getProfile(o.kernel).era : o.era;
  return o.strategies.flatMap((entry) =>
    (era === "each" ? entry.eras : [era]).map((e) => ({ entry, era: e })),
  );
}

export { STRATEGIES };

/**
 * What `--json` prints: one object. `tool` and `version` say what wrote it; `config` the settings of
 * the run; `kernel` the kernel every strategy booted (null when each ran on its own era's kernel, named
 * in each result); `strategies` one result per (strategy, era); `findings` what the booted kernels would
 * have done that their fixed successors do not, each with the strategy whose run found it (empty when
 * none). Further top-level fields may be added.
 */
export interface DemoDocument {
  readonly tool: "ivm-demo";
  readonly version: string;
  readonly config: {
    readonly strategies: readonly string[];
    readonly era: Era | "each";
    readonly memory: number;
    readonly rxSections: number;
    readonly txSections: number;
    readonly uptime: UptimeLevel;
    readonly packets: number;
    readonly seed: number;
    readonly isolation: boolean;
    readonly fault: FaultName | null;
    /** Present with --cpus / --queues. */
    readonly cpus?: number;
    readonly queues?: number;
  };
  readonly kernel: { readonly name: ProfileName; readonly era: Era; readonly hardened: boolean } | null;
  readonly strategies: readonly StrategyResult[];
  readonly findings: readonly FindingJson[];
  /** With --pagetypeinfo: the first run's aged guest as /proc/buddyinfo and /proc/pagetypeinfo print it. */
  readonly pagetypeinfo?: string;
}
