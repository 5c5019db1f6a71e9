import type { HypercallEvent } from "@ivm/hypercall";
import { type AllocatorWork, type GuestMemory, snapshotWork, type VmArea, workSince } from "@ivm/memory";
import { CHANNELMSG, channelMessageName, type VmbusTraceEvent } from "@ivm/vmbus";
import type { StrategyCallCost } from "./measured-strategy.js";
import type { Nic, NicOptions, Vm } from "./vm.js";

/** One run of the same event in the device-add timeline. */
export interface TimelineEntry {
  readonly kind: "hypercall" | "gpadl" | "channel";
  /** What it was for: the owner of the pages ("netvsc-rx", a ring…) or the message name. */
  readonly label: string;
  readonly count: number;
}

/** The seed's criteria for one buffer, measured after device add. */
export interface BufferCost {
  readonly sections: number;
  readonly pages: number;
  /** Host-visibility hypercalls whose pages belong to this buffer. */
  readonly hypercalls: number;
  /** GPADL header and body messages of this buffer's GPADL. */
  readonly gpadlMessages: number;
  /** vmalloc-range mappings of the buffer's pages alive after device add. */
  readonly liveMappings: number;
  /** PTE pages those mappings use (one per 2 MiB window they touch). */
  readonly ptePages: number;
  /** Address space those mappings reserve, guard pages included. */
  readonly vmallocBytes: number;
  /** The strategy's own costs (metadata, temporaries, pages by order). */
  readonly strategy: StrategyCallCost | undefined;
}

export interface DeviceAddCost {
  readonly ok: boolean;
  readonly error?: string;
  readonly buffers: { readonly rx: BufferCost | undefined; readonly tx: BufferCost | undefined };
  /** Everything device add did, buffers, rings and all. */
  readonly hypercalls: number;
  readonly gpadlMessages: number;
  readonly channelMessages: number;
  readonly pageTablePagesAdded: number;
  /** Order-10 allocation failures during the add (strategy (4)'s fallback shows here). */
  readonly order10Failures: number;
  /**
   * The allocator work the whole add caused: compaction runs and their pages scanned, isolated and
   * migrated, deferrals, direct reclaim stalls and pages reclaimed, kswapd, migratetype fallbacks.
   */
  readonly allocator: AllocatorWork;
  /** The fragmentation indices (thousandths) of the ring's order 9 and the page-blocks order 10, before the add. */
  readonly fragmentation: readonly {
    readonly order: number;
    readonly extfrag: number;
    readonly unusable: number;
  }[];
  readonly timeline: readonly TimelineEntry[];
}

function windows(start: number, bytes: number): number {
  const w = 2 * 1024 * 1024;
  return Math.floor((start + bytes - 1) / w) - Math.floor(start / w) + 1;
}

/** The areas that map pages owned by `purpose` (by the owner of their first page). */
export function mappingsOf(memory: GuestMemory, purpose: string): VmArea[] {
  return memory.vmalloc.areas().filter((a) => {
    const frame = a.frames[0];
    if (frame === undefined) return false;
    const pfn = frame >= memory.vtomPfn && memory.vtomPfn > 0 ? frame - memory.vtomPfn : frame;
    return memory.phys.pfnValid(pfn) && memory.buddy.ownerOf(pfn) === purpose;
  });
}

/**
 * A buffer's cost as plain numbers, the shape the demo's JSON and the lab's recordings keep: BufferCost
 * without the strategy's own record, but with its allocator work when the strategy made the buffer.
 */
export type BufferSummary = Pick<
  BufferCost,
  "sections" | "pages" | "hypercalls" | "gpadlMessages" | "liveMappings" | "ptePages" | "vmallocBytes"
> & {
  /** The page allocator's work inside the strategy's allocate call for this buffer. */
  readonly allocatorWork?: AllocatorWork;
};

/** BufferSummary of a measured buffer, or null when the add measured none. Key order is stable. */
export function summarizeBuffer(b: BufferCost | undefined): BufferSummary | null {
  if (!b) return null;
  const { sections, pages, hypercalls, gpadlMessages, liveMappings, ptePages, vmallocBytes } = b;
  const out = { sections, pages, hypercalls, gpadlMessages, liveMappings, ptePages, vmallocBytes };
  return b.strategy ? { ...out, allocatorWork: b.strategy.allocatorWork } : out;
}

/**
 * Hot-adds a NIC and measures what the add cost, from the layers' own counters: hypercalls by the owner
 * of their pages, GPADL messages by the owner of their first page, the mappings alive afterwards, page
 * tables, and the strategy's own metadata (via the measured strategy the VM injects).
 */
export function addNicMeasured(
  vm: Vm,
  options: NicOptions = {},
): { nic: Nic | undefined; cost: DeviceAddCost } {
  const timeline: TimelineEntry[] = [];
  const push = (kind: TimelineEntry["kind"], label: string): void => {
    const last = timeline[timeline.length - 1];
    if (last && last.kind === kind && last.label === label)
      timeline[timeline.length - 1] = { ...last, count: last.count + 1 };
    else timeline.push({ kind, label, count: 1 });
  };
  const hypercallsBy = new Map<string, number>();
  const gpadlOwner = new Map<number, string>();
  const gpadlFirstPfn = new Map<number, number>();
  const gpadlMessagesBy = new Map<number, number>();
  let hypercalls = 0;
  let gpadlMessages = 0;
  let channelMessages = 0;
  const offHv = vm.hyperv.hypervisor.onHypercall((e: HypercallEvent) => {
    hypercalls++;
    hypercallsBy.set(e.owner, (hypercallsBy.get(e.owner) ?? 0) + 1);
    push("hypercall", `${e.visibility === 0 ? "make private" : "make visible"}: ${e.owner}`);
  });
  // VMBus's own trace events (its tracepoints): no channel-message bytes are decoded here.
  const gpadlMessage = (handle: number, name: string): void => {
    gpadlMessages++;
    gpadlMessagesBy.set(handle, (gpadlMessagesBy.get(handle) ?? 0) + 1);
    push("gpadl", `${name}: ${gpadlOwner.get(handle) ?? "?"}`);
  };
  const offMsg = vm.conn.onTrace((e: VmbusTraceEvent) => {
    if (e.kind === "message") {
      if (e.direction !== "guest-to-host") return;
      channelMessages++;
      // The GPADL messages are counted from their own events, which carry the handle and the PFNs.
      if (e.type !== CHANNELMSG.GPADL_HEADER && e.type !== CHANNELMSG.GPADL_BODY) push("channel", e.name);
    } else if (e.kind === "establish-gpadl-header") {
      // The first PFN names the buffer.
      const pfn = e.pfns[0];
      if (pfn !== undefined) {
        gpadlOwner.set(e.handle, vm.memory.phys.pfnValid(pfn) ? vm.memory.buddy.ownerOf(pfn) : "?");
        gpadlFirstPfn.set(e.handle, pfn);
      }
      gpadlMessage(e.handle, channelMessageName(CHANNELMSG.GPADL_HEADER));
    } else if (e.kind === "establish-gpadl-body") {
      gpadlMessage(e.handle, channelMessageName(CHANNELMSG.GPADL_BODY));
    }
  });
  const tables = vm.memory.pageTables.totalTablePages;
  const failures = vm.memory.buddy.failuresByOrder[10]!;
  const workBefore = snapshotWork(vm.memory.buddy.work);
  const fragmentation = vm.memory.fragmentation().filter((f) => f.order >= 9);
  const costsBefore = vm.strategyCosts.length;
  let added: ReturnType<Vm["addNic"]>;
  try {
    added = vm.addNic(options);
  } finally {
    offHv();
    offMsg();
  }
  const nic = added.ok ? added.nic : undefined;
  const newCosts = vm.strategyCosts.slice(costsBefore);
  const gpadlMessagesFor = (firstPfn: number): number => {
    for (const [handle, pfn] of gpadlFirstPfn) if (pfn === firstPfn) return gpadlMessagesBy.get(handle) ?? 0;
    return 0;
  };
  const bufferCost = (purpose: "netvsc-rx" | "netvsc-tx"): BufferCost | undefined => {
    const buffer = purpose === "netvsc-rx" ? nic?.device.rxBuffer : nic?.device.txBuffer;
    const gpadlVa = purpose === "netvsc-rx" ? nic?.device.rxGpadlVa : nic?.device.txGpadlVa;
    if (!nic || !buffer || gpadlVa === undefined) return undefined;
    const sections = nic.device.sections;
    // A pool buffer lives inside the pool's own mapping (a vmap_pfn alias in the address-bit era, the
    // direct map in the pte-bit era): count the vmalloc areas that contain it.
    const areas = buffer.preShared
      ? vm.memory.vmalloc.areas().filter((a) => gpadlVa >= a.start && gpadlVa < a.start + a.size)
      : mappingsOf(vm.memory, purpose);
    return {
      sections: (purpose === "netvsc-rx" ? sections?.recvCount : sections?.sendCount) ?? 0,
      pages: buffer.pages,
      hypercalls: hypercallsBy.get(purpose) ?? 0,
      gpadlMessages: gpadlMessagesFor(vm.memory.virtToPfn(gpadlVa)),
      liveMappings: areas.length,
      ptePages: buffer.preShared ? 0 : areas.reduce((s, a) => s + windows(a.start, a.size), 0),
      vmallocBytes: buffer.preShared ? 0 : areas.reduce((s, a) => s + a.reserved, 0),
      strategy: newCosts.find((c) => c.purpose === purpose),
    };
  };
  return {
    nic,
    cost: {
      ok: added.ok,
      ...(added.ok ? {} : { error: added.error.message }),
      buffers: { rx: bufferCost("netvsc-rx"), tx: bufferCost("netvsc-tx") },
      hypercalls,
      gpadlMessages,
      channelMessages,
      pageTablePagesAdded: vm.memory.pageTables.totalTablePages - tables,
      order10Failures: vm.memory.buddy.failuresByOrder[10]! - failures,
      allocator: workSince(vm.memory.buddy.work, workBefore),
      fragmentation,
      timeline,
    },
  };
}
