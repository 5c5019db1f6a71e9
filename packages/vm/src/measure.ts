import type { HypercallEvent } from "@ivm/hypercall";
import { type AllocatorWork, type GuestMemory, snapshotWork, type VmArea, workSince } from "@ivm/memory";
import { decodeChannelMessage, decodePfnArray, type MessageEvent } from "@ivm/vmbus";
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

const MESSAGE_NAMES: Record<number, string> = {
  1: "offer",
  5: "open channel",
  6: "open result",
  7: "close channel",
  8: "GPADL header",
  9: "GPADL body",
  10: "GPADL created",
  11: "GPADL teardown",
  12: "GPADL torndown",
};

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
  const offMsg = vm.conn.onMessage((e: MessageEvent) => {
    if (e.direction !== "guest-to-host") return;
    channelMessages++;
    // Decoded with VMBus's own codecs, not re-read at hand-kept offsets.
    const decoded = decodeChannelMessage(e.bytes);
    const msg = decoded.ok ? decoded.value : undefined;
    if (msg?.kind === "gpadl-header" || msg?.kind === "gpadl-body") {
      gpadlMessages++;
      const handle = msg.gpadl;
      if (msg.kind === "gpadl-header") {
        // gpa_range: byte_count u32, byte_offset u32, then the PFNs; the first names the buffer.
        const pfns = decodePfnArray(msg.rangeData.subarray(8, 16));
        const pfn = pfns.ok ? pfns.value[0] : undefined;
        if (pfn !== undefined) {
          gpadlOwner.set(handle, vm.memory.phys.pfnValid(pfn) ? vm.memory.buddy.ownerOf(pfn) : "?");
          gpadlFirstPfn.set(handle, pfn);
        }
      }
      const owner = gpadlOwner.get(handle) ?? "?";
      gpadlMessagesBy.set(handle, (gpadlMessagesBy.get(handle) ?? 0) + 1);
      push("gpadl", `${MESSAGE_NAMES[e.type]}: ${owner}`);
    } else {
      push("channel", MESSAGE_NAMES[e.type] ?? `type ${e.type}`);
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
    if (!nic || !buffer) return undefined;
    const sections = nic.device.sections;
    // A pool buffer lives inside the pool's own mapping (a vmap_pfn alias in the address-bit era, the
    // direct map in the pte-bit era): count the vmalloc areas that contain it.
    const areas = buffer.preShared
      ? vm.memory.vmalloc
          .areas()
          .filter((a) => buffer.gpadlVa >= a.start && buffer.gpadlVa < a.start + a.size)
      : mappingsOf(vm.memory, purpose);
    return {
      sections: (purpose === "netvsc-rx" ? sections?.recvCount : sections?.sendCount) ?? 0,
      pages: buffer.pages,
      hypercalls: hypercallsBy.get(purpose) ?? 0,
      gpadlMessages: gpadlMessagesFor(vm.memory.virtToPfn(buffer.gpadlVa)),
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
