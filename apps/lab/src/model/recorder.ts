/**
 * The lab's one door into the model. It boots the real packages (@ivm/vm and below), runs the demo's
 * scenario — device add, traffic, device remove — and records every event the layers' public hooks
 * report, with the page state each event left behind as a compact diff. Nothing here computes a cost or
 * re-implements a layer: counts come from the layers' own counters, bytes from the wire or from raw
 * physical memory (the debugger's view, which no layer counts).
 *
 * Hooks used (all public, none added): Hypervisor.onHypercall, VmbusConnection.onMessage and onOffer.
 * Ring packets have no hook yet, so the channel the NIC is offered on is decorated (its send and drain
 * calls pass through unchanged) — the place to switch to typed VMBus events once they land.
 */
import { STRATEGIES } from "@ivm/catalog";
import type { HypercallEvent } from "@ivm/hypercall";
import { type Finding, getProfile } from "@ivm/kernel";
import { formatKernelVa, type GuestMemory, VMALLOC_START } from "@ivm/memory";
import { sendSectionOffset } from "@ivm/netvsc";
import { decodeNvspMessage } from "@ivm/netvsc-protocol";
import {
  addNicMeasured,
  type BufferSummary,
  type DeviceAddCost,
  runTraffic,
  summarizeBuffer,
  Vm,
} from "@ivm/vm";
import {
  decodeChannelMessage,
  decodeGpaDirectPacket,
  decodePfnArray,
  decodeTransferPagePacket,
  type MessageEvent,
  readPacketDescriptor,
  VM_PKT,
  type VmbusChannel,
} from "@ivm/vmbus";
import type { LabConfig } from "./config.js";
import { type PageDiff, PageTracker } from "./page-state.js";

export type Phase = "add" | "traffic" | "remove";
export const PHASES: readonly Phase[] = ["add", "traffic", "remove"];
export type EventKind = "hypercall" | "message" | "packet";
export type Direction = "guest-to-host" | "host-to-guest";

/** One hypercall of a recording: the hypervisor's own event record (@ivm/hypercall). */
export type HypercallInfo = HypercallEvent;

/** One vmalloc-range mapping of a buffer or ring, and the alias its PTEs reach. */
export interface MappingRow {
  readonly start: string;
  readonly bytes: number;
  readonly tag: string;
  readonly kind: string;
  readonly pages: number;
  /** Pages whose PTE carries the shared (vTOM) bit. */
  readonly sharedPages: number;
  readonly firstPfn: number;
}

export interface LabEvent {
  /** The step this event ends (step 0 is the booted guest). */
  readonly step: number;
  readonly phase: Phase;
  readonly kind: EventKind;
  readonly direction: Direction;
  /** The wire bytes: the hypercall input page (header and PFNs), a channel message, or a ring packet. */
  readonly bytes: Uint8Array;
  readonly relid?: number;
  readonly hypercall?: HypercallInfo;
  /** The RNDIS message a data packet points at, read from the buffer it names. */
  readonly rndis?: Uint8Array;
  /** Where `rndis` was read (buffer and byte offset), for the panel. */
  readonly rndisFrom?: string;
}

/** The counters the lab shows at every step, in this order. */
export const STEP_COUNTERS = [
  "hypercalls",
  "reps",
  "failed hypercalls",
  "channel messages (guest → host)",
  "GPADL messages",
  "ring packets",
  "host-visible pages",
  "leaked pages",
  "MMU faults",
  "findings",
] as const;

/** A finding of the booted kernel (vm.findings) and the step whose event reported it. */
export interface LabFinding extends Finding {
  readonly step: number;
}

/** The demo's `--json` numbers for this run (same names and meaning as apps/demo's StrategyResult). */
export interface RunSummary {
  readonly ran: boolean;
  readonly error?: string;
  readonly buffers: { readonly rx: BufferSummary | null; readonly tx: BufferSummary | null };
  readonly deviceAdd: {
    readonly ok: boolean;
    readonly hypercalls: number;
    readonly gpadlMessages: number;
    readonly channelMessages: number;
    readonly pageTablePagesAdded: number;
  };
  readonly hostVisiblePagesAfterRemove: number;
  readonly leakedPages: number;
  readonly faults: number;
  readonly packets: { readonly sent: number; readonly received: number; readonly verified: number };
  readonly swiotlbSlots: number;
  /** The NIC's VMBus channels (the primary and its vRSS sub-channels), 0 when no NIC came up. */
  readonly channels: number;
}

/** A buffer's cost in a recording: the demo's JSON shape (@ivm/vm's BufferSummary). */
export type { BufferSummary };

export interface Recording {
  readonly strategy: string;
  readonly approach: number;
  readonly era: string;
  /** The kernel profile the guest booted, and whether hardened. */
  readonly kernel: string;
  readonly hardened: boolean;
  /** Why the strategy did not run (the descriptor's unsupportedOn text for this kernel), or undefined. */
  readonly skipped?: string;
  /** Every finding the guest reported, in order, each with the step it appeared at. */
  readonly findings: readonly LabFinding[];
  readonly pages: number;
  readonly vtomPfn: number;
  /** Owner tag names by id (ids are stable for a run; the list only grows). */
  readonly tags: readonly string[];
  /** Packed page state (see packPage) after boot. */
  readonly initial: Uint32Array;
  readonly events: readonly LabEvent[];
  /** diffs[k-1] turns the state after step k-1 into the state after step k. */
  readonly diffs: readonly PageDiff[];
  /** mappings[k]: the mappings after step k (rows shared between steps where nothing changed). */
  readonly mappings: readonly (readonly MappingRow[])[];
  /** counters[k * STEP_COUNTERS.length + i]: counter i after step k. */
  readonly counters: Float64Array;
  /** First step of each phase (add starts at 1); a phase is empty when its first equals the next's. */
  readonly phaseStart: Readonly<Record<Phase, number>>;
  readonly summary: RunSummary;
  /** Pages the per-event scans missed and a phase-end scan found (0 unless a page mutator went unwatched). */
  readonly missedPages: number;
  /** Milliseconds: Vm.boot alone, and the whole recording. */
  readonly bootMs: number;
  readonly recordMs: number;
}

const PAGE = 4096;
const TRAILER = 8;

/** Reads bytes at a byte offset of a buffer given by its GPADL PFNs, from raw guest-physical memory. */
function readRaw(memory: GuestMemory, pfns: Float64Array, offset: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const at = offset + done;
    const index = Math.floor(at / PAGE);
    const frame = pfns[index];
    if (frame === undefined) return out.subarray(0, done);
    const pfn = memory.vtomPfn > 0 && frame >= memory.vtomPfn ? frame - memory.vtomPfn : frame;
    const inPage = at - index * PAGE;
    const n = Math.min(PAGE - inPage, length - done);
    memory.phys.read(pfn * PAGE + inPage, out.subarray(done, done + n));
    done += n;
  }
  return out;
}

function mappingRows(memory: GuestMemory): MappingRow[] {
  return memory.vmalloc
    .areas()
    .filter(
      (a) =>
        a.start >= VMALLOC_START &&
        (a.tag.startsWith("netvsc-") ||
          a.tag.includes("shared-pool") ||
          a.tag.startsWith("dma-") ||
          a.tag.includes("ring")),
    )
    .map((a) => {
      let shared = 0;
      for (let i = 0; i < a.frames.length; i++) if (memory.isSharedMapping(a.start + i * PAGE)) shared++;
      const frame = a.frames[0] ?? 0;
      return {
        start: formatKernelVa(a.start),
        bytes: a.size,
        tag: a.tag,
        kind: a.kind,
        pages: a.frames.length,
        sharedPages: shared,
        firstPfn: memory.vtomPfn > 0 && frame >= memory.vtomPfn ? frame - memory.vtomPfn : frame,
      };
    });
}

function skippedRecording(config: LabConfig, strategy: string, era: string, reason: string): Recording {
  const entry = STRATEGIES.find((s) => s.name === strategy);
  const none = { ok: false, hypercalls: 0, gpadlMessages: 0, channelMessages: 0, pageTablePagesAdded: 0 };
  return {
    strategy,
    approach: entry?.approach ?? 0,
    era,
    kernel: config.kernel,
    hardened: config.hardened,
    skipped: reason,
    findings: [],
    pages: config.memory / PAGE,
    vtomPfn: 0,
    tags: ["none"],
    initial: new Uint32Array(0),
    events: [],
    diffs: [],
    mappings: [[]],
    counters: new Float64Array(STEP_COUNTERS.length),
    phaseStart: { add: 1, traffic: 1, remove: 1 },
    summary: {
      ran: false,
      error: reason,
      buffers: { rx: null, tx: null },
      deviceAdd: none,
      hostVisiblePagesAfterRemove: 0,
      leakedPages: 0,
      faults: 0,
      packets: { sent: 0, received: 0, verified: 0 },
      swiotlbSlots: 0,
      channels: 0,
    },
    missedPages: 0,
    bootMs: 0,
    recordMs: 0,
  };
}

/** Boots one guest with `strategy` and records its device add, traffic and remove, event by event. */
export function record(config: LabConfig, strategy: string): Recording {
  const entry = STRATEGIES.find((s) => s.name === strategy);
  // As the demo boots `--kernel` (apps/demo runKernel): the profile, hardened or the kernel's own logic.
  const kernel = { ...getProfile(config.kernel), hardened: config.hardened };
  const era = kernel.era;
  if (!entry) return skippedRecording(config, strategy, era, `no strategy named ${strategy}`);
  // The strategy's own declaration of the kernels it was written for decides, never a version test here.
  const unsupported = entry.unsupportedOn(kernel);
  if (unsupported !== null) return skippedRecording(config, strategy, era, unsupported);
  const t0 = performance.now();
  const vm = Vm.boot({
    memory: config.memory,
    kernel,
    // Vm.boot's own default for a given kernel is the kernel's logic; say which, every time.
    hardened: kernel.hardened,
    isolation: config.isolation,
    uptime: config.uptime,
    seed: config.seed,
    strategy: entry,
    ...(config.cpus > 0 ? { cpus: config.cpus } : {}),
  });
  const bootMs = performance.now() - t0;
  const memory = vm.memory;
  const tracker = new PageTracker(memory);
  const events: LabEvent[] = [];
  const diffs: PageDiff[] = [];
  let rows = mappingRows(memory);
  let rowsKey = "";
  const mappings: (readonly MappingRow[])[] = [rows];
  const counterRows: number[] = [];
  let phase: Phase = "add";
  const phaseStart: Record<Phase, number> = { add: 1, traffic: 1, remove: 1 };
  let g2hMessages = 0;
  let gpadlMessages = 0;
  let ringPackets = 0;
  const hv = vm.hyperv.hypervisor;
  const pushCounters = (): void => {
    counterRows.push(
      hv.counters.hypercalls,
      hv.counters.reps,
      hv.counters.failedCalls,
      g2hMessages,
      gpadlMessages,
      ringPackets,
      memory.phys.hostVisiblePages,
      memory.leakedPages,
      memory.mmu.totalFaults,
      vm.findingLog.count(),
    );
  };
  const findings: LabFinding[] = [];
  /** Takes the findings reported since the last call, as of `step` (stepping back before it hides them). */
  const takeFindings = (step: number): void => {
    const all = vm.findings;
    for (let i = findings.length; i < all.length; i++) findings.push({ ...all[i]!, step });
  };
  pushCounters();

  /** Closes the event in hand: its page diff, the mappings if they changed, the counters. */
  const settle = (full: boolean): PageDiff => {
    const diff = tracker.scan(full);
    // Mappings change with vmap/vunmap (the set of areas) or with a conversion rewriting their PTEs.
    const areas = memory.vmalloc.areas();
    const key = `${areas.map((a) => a.start).join(",")}|${memory.phys.visibilityChanges}|${memory.cpaPages}`;
    if (key !== rowsKey) {
      rowsKey = key;
      rows = mappingRows(memory);
    }
    return diff;
  };
  /**
   * At a phase end, folds whatever changed since the last event into that event (its diff, mappings and
   * counters), so that the state after the phase's last step is exactly the model's.
   */
  const settlePhase = (): void => {
    const extra = settle(true);
    const last = events.length;
    if (last === 0) {
      tracker.rebase();
      mappings[0] = rows;
    } else {
      diffs[last - 1] = diffs[last - 1]!.merge(extra);
      mappings[last] = rows;
    }
    counterRows.length -= STEP_COUNTERS.length;
    pushCounters();
    takeFindings(last);
  };
  const push = (e: Omit<LabEvent, "step" | "phase">): void => {
    const step = events.length + 1;
    events.push({ ...e, step, phase });
    diffs.push(settle(false));
    mappings.push(rows);
    pushCounters();
    takeFindings(step);
  };

  // GPADL PFNs by handle, from the guest's own header and body messages; rings and buffers by handle.
  const gpadlPfns = new Map<number, number[]>();
  const ringOf = new Map<number, { handle: number; downstream: number }>();
  const buffers: { rx?: number; tx?: number; txSection: number } = { txSection: 0 };
  const pfnArrays = new Map<number, Float64Array>();
  const pfnsOf = (handle: number | undefined): Float64Array | undefined => {
    if (handle === undefined) return undefined;
    let arr = pfnArrays.get(handle);
    if (!arr) {
      const list = gpadlPfns.get(handle);
      if (!list) return undefined;
      arr = Float64Array.from(list);
      pfnArrays.set(handle, arr);
    }
    return arr;
  };

  const offHv = hv.onHypercall((e: HypercallEvent) => {
    // The per-CPU input page still holds what the guest wrote: its header and the PFN list.
    const input = new Uint8Array(16 + e.repCount * 8);
    memory.phys.read(vm.hyperv.hypercalls.inputPagePa, input);
    const { seq, code, repStart, repCount, repsCompleted, result, visibility, owner } = e;
    push({
      kind: "hypercall",
      direction: "guest-to-host",
      bytes: input,
      hypercall: { seq, code, repStart, repCount, repsCompleted, result, visibility, owner },
    });
  });
  const offMsg = vm.conn.onMessage((e: MessageEvent) => {
    if (e.direction === "guest-to-host") {
      g2hMessages++;
      const d = decodeChannelMessage(e.bytes);
      if (d.ok && (d.value.kind === "gpadl-header" || d.value.kind === "gpadl-body")) {
        gpadlMessages++;
        // gpa_range: byte_count u32, byte_offset u32, then the PFNs.
        const raw = d.value.kind === "gpadl-header" ? d.value.rangeData.subarray(8) : d.value.data;
        const usable = raw.subarray(0, raw.length - (raw.length % 8));
        const pfns = decodePfnArray(usable);
        if (pfns.ok) {
          const list = gpadlPfns.get(d.value.gpadl) ?? [];
          if (d.value.kind === "gpadl-header") list.length = 0;
          list.push(...pfns.value);
          gpadlPfns.set(d.value.gpadl, list);
          pfnArrays.delete(d.value.gpadl);
        }
      }
      if (d.ok && d.value.kind === "open-channel") {
        ringOf.set(d.value.childRelid, {
          handle: d.value.ringBufferGpadlHandle,
          downstream: d.value.downstreamRingBufferPageOffset,
        });
      }
    }
    push({ kind: "message", direction: e.direction, bytes: e.bytes.slice() });
  });

  /** What a data packet's NVSP message points at: the RNDIS message in a buffer section or page buffers. */
  const rndisOf = (pkt: Uint8Array, direction: Direction): { rndis?: Uint8Array; rndisFrom?: string } => {
    if (pkt.length < 16) return {};
    const desc = readPacketDescriptor(pkt);
    const payload = pkt.subarray(desc.offset8 * 8, desc.len8 * 8);
    const nvsp = decodeNvspMessage(payload, direction);
    if (!nvsp.ok) return {};
    const m = nvsp.value;
    if (direction === "host-to-guest" && m.kind === "send-send-buf-complete")
      buffers.txSection = m.sectionSize;
    if (direction === "guest-to-host" && m.kind === "send-recv-buf") buffers.rx = m.gpadlHandle;
    if (direction === "guest-to-host" && m.kind === "send-send-buf") buffers.tx = m.gpadlHandle;
    if (m.kind !== "send-rndis-pkt") return {};
    if (direction === "host-to-guest" && desc.type === VM_PKT.DATA_USING_XFER_PAGES) {
      const x = decodeTransferPagePacket(pkt);
      const range = x.ok ? x.value.ranges[0] : undefined;
      const pfns = pfnsOf(buffers.rx);
      if (!range || !pfns) return {};
      return {
        rndis: readRaw(memory, pfns, range.byteOffset, Math.min(range.byteCount, 65536)),
        rndisFrom: `receive buffer +0x${range.byteOffset.toString(16)}`,
      };
    }
    if (m.sendBufSectionIndex !== 0xffffffff) {
      const pfns = pfnsOf(buffers.tx);
      if (!pfns || buffers.txSection === 0) return {};
      const at = sendSectionOffset(m.sendBufSectionIndex, buffers.txSection);
      // With page buffers as well, netvsc copied only the head of the packet into the section
      // (cp_partial): the RNDIS header is here, the frame's tail travels in the page buffers.
      const partial = desc.type === VM_PKT.DATA_USING_GPA_DIRECT;
      return {
        rndis: readRaw(memory, pfns, at, Math.min(m.sendBufSectionSize, buffers.txSection)),
        rndisFrom: `send section ${m.sendBufSectionIndex} (+0x${at.toString(16)})${partial ? "; partial copy: the frame's tail is in the page buffers, so bytes past the head are stale" : ""}`,
      };
    }
    if (desc.type === VM_PKT.DATA_USING_GPA_DIRECT) {
      // The RNDIS header and the frame after it, gathered from every range as the host reads them.
      const g = decodeGpaDirectPacket(pkt);
      if (!g.ok || g.value.ranges.length === 0) return {};
      const pieces = g.value.ranges.map((r) => readRaw(memory, r.pfns, r.offset, Math.min(r.len, 65536)));
      const all = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of pieces) {
        all.set(p, at);
        at += p.length;
      }
      const first = g.value.ranges[0]!;
      return {
        rndis: all,
        rndisFrom: `${g.value.ranges.length} page-buffer ranges from PFN 0x${(first.pfns[0] ?? 0).toString(16)} +0x${first.offset.toString(16)}`,
      };
    }
    return {};
  };

  /** The outbound ring's data area, read raw from its GPADL pages (header page first). */
  const outboundRing = (relid: number): { pfns: Float64Array; dataSize: number } | undefined => {
    const ring = ringOf.get(relid);
    const pfns = pfnsOf(ring?.handle);
    if (!ring || !pfns) return undefined;
    return { pfns: pfns.subarray(0, ring.downstream), dataSize: (ring.downstream - 1) * PAGE };
  };
  const writeIndex = (r: { pfns: Float64Array }): number => {
    const b = readRaw(memory, r.pfns, 0, 4);
    return new DataView(b.buffer).getUint32(0, true);
  };
  const ringBytes = (r: { pfns: Float64Array; dataSize: number }, from: number, to: number): Uint8Array => {
    const len = (to - from + r.dataSize) % r.dataSize;
    const out = new Uint8Array(Math.max(0, len - TRAILER));
    const first = Math.min(out.length, r.dataSize - from);
    out.set(readRaw(memory, r.pfns, PAGE + from, first), 0);
    if (first < out.length) out.set(readRaw(memory, r.pfns, PAGE, out.length - first), first);
    return out;
  };

  const decorate = (ch: VmbusChannel): void => {
    const relid = ch.relid;
    const sent = <A extends unknown[], R extends { ok: boolean }>(
      call: (...args: A) => R,
    ): ((...args: A) => R) => {
      return (...args: A): R => {
        const ring = outboundRing(relid);
        const before = ring ? writeIndex(ring) : 0;
        const r = call(...args);
        if (r.ok && ring) {
          ringPackets++;
          const bytes = ringBytes(ring, before, writeIndex(ring));
          push({
            kind: "packet",
            direction: "guest-to-host",
            bytes,
            relid,
            ...rndisOf(bytes, "guest-to-host"),
          });
        }
        return r;
      };
    };
    ch.sendPacket = sent(ch.sendPacket.bind(ch));
    ch.sendMpbDesc = sent(ch.sendMpbDesc.bind(ch));
    ch.sendPageBuffer = sent(ch.sendPageBuffer.bind(ch));
    const drain = ch.drain.bind(ch);
    ch.drain = (fn, budget) =>
      drain((packet) => {
        ringPackets++;
        // The guest's private copy, the only bytes the guest parses (hv_pkt_iter_first copies first).
        const bytes = packet.bytes.slice();
        push({
          kind: "packet",
          direction: "host-to-guest",
          bytes,
          relid,
          ...rndisOf(bytes, "host-to-guest"),
        });
        fn(packet);
      }, budget);
  };
  const offOffer = vm.conn.onOffer(decorate);
  // Sub-channels are not offers to a driver: they reach netvsc through the primary's callback.
  const offSub = vm.conn.onSubChannel(decorate);

  if (config.failHypercall > 0) hv.faults.failCall(config.failHypercall);
  let cost: DeviceAddCost | undefined;
  let summary: RunSummary;
  try {
    const added = addNicMeasured(vm, {
      ...(config.rxSections > 0 ? { rxSections: config.rxSections } : {}),
      ...(config.txSections > 0 ? { txSections: config.txSections } : {}),
      ...(config.queues > 0 ? { queues: config.queues } : {}),
    });
    cost = added.cost;
    const channels = added.nic?.device.channelCount?.combined ?? 0;
    const nic = added.nic;
    settlePhase();
    phase = "traffic";
    phaseStart.traffic = events.length + 1;
    const traffic = nic ? runTraffic(vm, nic, { packets: config.packets, seed: config.seed }) : undefined;
    settlePhase();
    phase = "remove";
    phaseStart.remove = events.length + 1;
    // Re-encryption is the first hypercall device remove makes (the GPADL teardown's set_memory_encrypted).
    if (config.failReencrypt) hv.faults.failCall(1);
    if (nic) vm.removeNic(nic);
    settlePhase();
    const pool = vm.dmaLayer.pool?.stats();
    summary = {
      ran: cost.ok,
      ...(cost.error ? { error: cost.error } : {}),
      buffers: { rx: summarizeBuffer(cost.buffers.rx), tx: summarizeBuffer(cost.buffers.tx) },
      deviceAdd: {
        ok: cost.ok,
        hypercalls: cost.hypercalls,
        gpadlMessages: cost.gpadlMessages,
        channelMessages: cost.channelMessages,
        pageTablePagesAdded: cost.pageTablePagesAdded,
      },
      hostVisiblePagesAfterRemove: vm.hostVisibleOutsideSwiotlb(),
      leakedPages: memory.leakedPages,
      faults: memory.mmu.totalFaults,
      packets: {
        sent: traffic?.txFrames ?? 0,
        received: traffic?.rxFrames ?? 0,
        verified: (traffic?.rxVerified ?? 0) + (nic?.host.counters.txFramesVerified ?? 0),
      },
      swiotlbSlots: pool?.nslabs ?? 0,
      channels,
    };
  } finally {
    offHv();
    offMsg();
    offOffer();
    offSub();
  }
  return {
    strategy,
    approach: entry.approach,
    era,
    kernel: kernel.name,
    hardened: kernel.hardened,
    findings,
    pages: memory.phys.pages,
    vtomPfn: memory.vtomPfn,
    tags: [...memory.phys.tags.names],
    initial: tracker.initial,
    events,
    diffs,
    mappings,
    counters: Float64Array.from(counterRows),
    phaseStart,
    summary,
    missedPages: tracker.missedPages,
    bootMs,
    recordMs: performance.now() - t0,
  };
}
