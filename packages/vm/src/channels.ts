// Per-channel costs of a multi-queue NIC, measured by the layers: the ring GPADL messages from VMBus's
// trace events (trace_vmbus_establish_gpadl_header/_body carry the handle), the ring allocation from the
// buddy allocator's block of the ring's first page, the traffic from the driver's per-queue counters and
// the host's. Each channel is one vmbus_open: its own order-9 block (for netvsc's default rings), its
// own ring GPADL, its own OPENCHANNEL.

import { PageFlag } from "@ivm/memory";
import { gpadlPfns, RING_TAGS, type VmbusTraceEvent } from "@ivm/vmbus";
import type { InvariantViolation } from "./invariants.js";
import type { Nic, Vm } from "./vm.js";

export interface ChannelCost {
  /** chan_table index (the offer's sub_channel_index; 0 is the primary). */
  readonly index: number;
  readonly relid: number;
  readonly opened: boolean;
  /** Pages the ring GPADL covers (both rings, their header pages included). */
  readonly ringPages: number;
  /** Pages of the buddy block the rings were allocated as (get_order of the two rings). */
  readonly ringBlockPages: number;
  /** GPADL_HEADER and GPADL_BODY messages of this channel's ring GPADL. */
  readonly ringGpadlMessages: number;
  /** Frames the guest sent on this queue, and that the host verified on it. */
  readonly txFrames: number;
  readonly txVerified: number;
  /** Frames the host sent on this queue, and that the guest received (and completed) on it. */
  readonly rxSent: number;
  readonly rxFrames: number;
}

/** One NIC's channels and what they cost together with its buffers. */
export interface NicChannelReport {
  readonly channels: readonly ChannelCost[];
  readonly totals: {
    readonly channels: number;
    readonly ringBlockPages: number;
    readonly ringGpadlMessages: number;
    /** Pages of the send and receive buffers (one of each per NIC, shared by every queue). */
    readonly bufferPages: number;
    /** Rings and buffers: the NIC's shared-memory footprint in pages. */
    readonly pages: number;
  };
}

/**
 * Counts GPADL messages per handle from the moment it is created (create it before addNic): VMBus's
 * own trace events, no message bytes decoded. Call `report(nic)` whenever, `stop()` when done.
 */
export function trackChannels(vm: Vm): {
  report(nic: Nic): NicChannelReport;
  stop(): void;
} {
  const byHandle = new Map<number, number>();
  const off = vm.conn.onTrace((e: VmbusTraceEvent) => {
    if (e.kind === "establish-gpadl-header" || e.kind === "establish-gpadl-body")
      byHandle.set(e.handle, (byHandle.get(e.handle) ?? 0) + 1);
  });
  return {
    stop: off,
    report(nic) {
      const host = nic.host.counters.queues;
      const channels = nic.device.channels.map((c): ChannelCost => {
        const vc = vm.conn.channels.get(c.relid);
        const g = vc?.ringGpadl;
        const first = g === undefined ? undefined : gpadlPfns(g)[0];
        const block = first === undefined ? null : vm.memory.buddy.blockOf(first);
        const h = host[c.index];
        return {
          index: c.index,
          relid: c.relid,
          opened: c.opened,
          ringPages: c.ringPages,
          ringBlockPages: block === null ? 0 : 2 ** block.order,
          ringGpadlMessages: byHandle.get(c.ringGpadl) ?? 0,
          txFrames: c.counters.txFrames,
          txVerified: h?.txFramesVerified ?? 0,
          rxSent: h?.rxFramesSent ?? 0,
          rxFrames: c.counters.rxFrames,
        };
      });
      const bufferPages = (nic.device.rxBuffer?.pages ?? 0) + (nic.device.txBuffer?.pages ?? 0);
      const ringBlockPages = channels.reduce((s, c) => s + c.ringBlockPages, 0);
      return {
        channels,
        totals: {
          channels: channels.length,
          ringBlockPages,
          ringGpadlMessages: channels.reduce((s, c) => s + c.ringGpadlMessages, 0),
          bufferPages,
          pages: ringBlockPages + bufferPages,
        },
      };
    },
  };
}

/**
 * The invariants per channel, cheap enough for every fuzz step (a few reads per channel): every open
 * channel of every NIC, sub-channels included, has its own ring GPADL whose pages are ring pages, host
 * visible in an isolated guest (I8: shared only on purpose, and the host can reach what it was given);
 * a sub-channel belongs to its NIC's primary. Pushes what is broken onto `out`.
 */
export function checkChannels(vm: Vm, out: InvariantViolation[]): void {
  const handles = new Set<number>();
  for (const nic of vm.nics) {
    const primary = vm.conn.channels.get(nic.relid);
    for (const c of nic.device.channels) {
      const ch = vm.conn.channels.get(c.relid);
      if (ch === undefined || ch.state !== "opened") continue;
      if (c.index > 0 && ch.primaryChannel !== primary)
        out.push({ invariant: "I8", detail: `channel ${c.relid} is not a sub-channel of NIC ${nic.relid}` });
      const g = ch.ringGpadl;
      if (g === undefined || handles.has(g.handle)) {
        out.push({ invariant: "I8", detail: `channel ${c.relid} has no ring GPADL of its own` });
        continue;
      }
      handles.add(g.handle);
      const pfns = gpadlPfns(g);
      for (const pfn of [pfns[0]!, pfns[pfns.length - 1]!]) {
        const owner = vm.memory.buddy.ownerOf(pfn);
        if (owner !== RING_TAGS.pages)
          out.push({ invariant: "I8", detail: `channel ${c.relid}'s ring page is owned by "${owner}"`, pfn });
        else if (vm.isolated && !vm.memory.phys.hasFlag(pfn, PageFlag.HostVisible))
          out.push({ invariant: "I8", detail: `channel ${c.relid}'s open ring is not host-visible`, pfn });
      }
    }
  }
}
