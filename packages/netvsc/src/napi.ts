// NAPI: netvsc_poll, netvsc_process_raw_pkt and netvsc_send_completion (drivers/net/hyperv/netvsc.c).
// The channel callback runs this poll; so can the caller (NetvscDevice.poll).

import { decodeNvspMessage, NVSP_HEADER_SIZE, NVSP_STATUS } from "@ivm/netvsc-protocol";
import { type IncomingPacket, VM_PKT } from "@ivm/vmbus";
import type { NetvscDev, RequestCtx } from "./nvdev.js";
import { netvscReceive, netvscReceiveInband, sendRecvCompletions } from "./receive.js";
import { txComplete } from "./send.js";

/**
 * netvsc_poll: handle inbound packets until `budget` receive ranges were processed or the ring is
 * empty (completions cost no budget), then flush the receive completions. Returns the work done.
 */
export function napiPoll(nv: NetvscDev, budget: number): number {
  const ch = nv.env.channel;
  let work = 0;
  const handle = (p: IncomingPacket): void => {
    work += processRawPkt(nv, p);
  };
  while (work < budget) {
    const slice = budget - work;
    const r = ch.drain(handle, slice);
    if (!r.ok || r.value === 0) break;
    // The reader stopped at its packet budget. Packets that cost no work (completions, refused
    // transfer pages) could otherwise keep this loop going for ever: a hostile len8 makes the ring
    // reader revisit the same bytes (the kernel soft-locks there). NAPI ends the poll instead; the
    // channel is polled again while the host has published more than the guest has read.
    if (r.value >= slice) break;
  }
  sendRecvCompletions(nv);
  return Math.min(work, budget);
}

/** netvsc_process_raw_pkt. */
function processRawPkt(nv: NetvscDev, p: IncomingPacket): number {
  switch (p.desc.type) {
    case VM_PKT.COMP:
      netvscSendCompletion(nv, p);
      return 0;
    case VM_PKT.DATA_USING_XFER_PAGES:
      return netvscReceive(nv, p.bytes);
    case VM_PKT.DATA_INBAND:
      netvscReceiveInband(nv, p.data);
      return 0;
    default:
      nv.env.stats.rxDrops.count("unhandled-packet-type");
      return 0;
  }
}

/**
 * netvsc_send_completion. The request id is released only through the channel's request table, so a
 * forged, duplicate or unknown id is refused and counted and never acted upon (invariant I6). A
 * message too short to read is dropped before the table is consulted, as the kernel returns early.
 * Divergence: the kernel hands the control completions to channel_init_pkt without consulting the
 * requestor; the model releases their ids too, so every completion must match an outstanding request.
 */
function netvscSendCompletion(nv: NetvscDev, p: IncomingPacket): void {
  const { stats } = nv.env;
  const rejected = stats.rejectedCompletions;
  if (p.data.length === 0) {
    // Only SWITCH_DATA_PATH is completed without data; the model never sends it.
    if (takeRequest(nv, p) !== undefined) rejected.count("unexpected-empty-completion");
    return;
  }
  if (p.data.length < NVSP_HEADER_SIZE) {
    rejected.count("nvsp-header-too-short");
    return;
  }
  const d = decodeNvspMessage(p.data, "host-to-guest");
  if (!d.ok) {
    rejected.count(d.error.reason);
    return;
  }
  const m = d.value;
  switch (m.kind) {
    case "init-complete":
    case "send-recv-buf-complete":
    case "send-send-buf-complete":
    case "subchannel-complete": {
      const ctx = takeRequest(nv, p);
      if (ctx === undefined) return;
      if (ctx.kind === "init") {
        ctx.reply = m;
        return;
      }
      // A control answer on a data request's id: the id is spent, so the packet is released.
      rejected.count("completion-type-mismatch");
      txComplete(nv, ctx.pkt);
      return;
    }
    case "send-rndis-pkt-complete": {
      if (m.status === null) {
        rejected.count("rndis-pkt-complete-too-short");
        return;
      }
      const ctx = takeRequest(nv, p);
      if (ctx === undefined) return;
      if (ctx.kind === "init") {
        rejected.count("completion-type-mismatch");
        ctx.reply = m;
        return;
      }
      // An error status is logged and the completion processed anyway, so resources are released.
      if (m.status !== NVSP_STATUS.SUCCESS) stats.errors.count("tx-completion-status-fail");
      txComplete(nv, ctx.pkt);
      return;
    }
    default:
      rejected.count("unknown-completion-type");
  }
}

/**
 * Releases the completion's request id through the channel's table: a number below 2^53 (no BigInt per
 * packet), the bigint otherwise. A refused id is counted by reason and yields undefined.
 */
function takeRequest(nv: NetvscDev, p: IncomingPacket): RequestCtx | undefined {
  const { channel, stats } = nv.env;
  const c = channel.completeRequest(p.transIdNumber >= 0 ? p.transIdNumber : p.desc.transId);
  if (c.ok) return c.value as RequestCtx;
  stats.rejectedCompletions.count(c.error.reason);
  return undefined;
}
