// The receive path: netvsc_receive (transfer-page packets), enq_receive_complete and
// send_recv_completions (the completion ring), netvsc_receive_inband (drivers/net/hyperv/netvsc.c).
//
// Host bytes are parsed only from private copies (invariant I3): the transfer-page packet is the
// channel's private copy, and each range is copied out of the shared receive buffer into the channel's
// private buffer before anything in it is read ("Copy packets sent by Hyper-V out of the receive
// buffer", 0ba35fe91ce3).

import {
  decodeNvspMessage,
  encodeNvspRecvCompletion,
  NAPI_POLL_WEIGHT,
  NVSP_STATUS,
  validateXferPagePacket,
} from "@ivm/netvsc-protocol";
import { VM_PKT } from "@ivm/vmbus";
import type { NetvscDev } from "./nvdev.js";
import { rndisFilterReceive } from "./rndis-filter.js";

/**
 * netvsc_receive: packet-level checks (a rejection sends no completion), then per range: bounds
 * against the receive buffer and the section size (a bad range fails the packet, the others still go
 * up), copy, RNDIS. One completion per transfer-page packet. Returns the ranges handled (NAPI work).
 */
export function netvscReceive(nv: NetvscDev, bytes: Uint8Array): number {
  const { env } = nv;
  const stats = env.stats;
  const recvVa = nv.recv?.va ?? null;
  if (recvVa === null || nv.mrc === undefined) {
    // No receive buffer yet (or any more): the kernel would dereference NULL; the model drops it.
    stats.rxDrops.count("rx-without-receive-buffer");
    return 0;
  }
  const v = validateXferPagePacket(bytes, {
    recvBufSize: nv.recvBufSize,
    recvSectionSize: nv.recvSectionSize,
  });
  if (!v.ok) {
    stats.rxDrops.count(v.error.reason);
    return 0;
  }
  let status = v.value.status;
  const priv = nv.rxPrivate[0]!;
  const mmu = env.memory.mmu;
  for (const range of v.value.ranges) {
    if (!range.ok) {
      stats.rxDrops.count(range.reason);
      continue;
    }
    // The one read of shared memory for this range: into chan_table[0].recv_buf.
    mmu.copy(priv, recvVa + range.offset, range.length);
    stats.rxRangeCopies++;
    stats.rxRangeBytes += range.length;
    // I3: what is parsed is read from the private copy, never through a shared alias (the MMU counts
    // shared-alias reads); the parser itself only sees this JS copy.
    const sharedBefore = mmu.sharedReads;
    const copy = nv.rxScratch.subarray(0, range.length);
    mmu.read(priv, copy);
    stats.parsedFromShared += mmu.sharedReads - sharedBefore;
    if (rndisFilterReceive(nv, copy) !== NVSP_STATUS.SUCCESS) status = NVSP_STATUS.FAIL;
  }
  enqReceiveComplete(nv, v.value.transactionId, status);
  return v.value.ranges.length;
}

/**
 * enq_receive_complete: flush first when more than NAPI_POLL_WEIGHT are queued; if the ring is still
 * full the completion is lost ("Recv_comp full buf") and the host keeps those sections.
 */
export function enqReceiveComplete(nv: NetvscDev, tid: bigint, status: number): void {
  const mrc = nv.mrc!;
  let { filled, avail } = mrc.slotAvail();
  if (filled > NAPI_POLL_WEIGHT) {
    sendRecvCompletions(nv);
    ({ filled, avail } = mrc.slotAvail());
  }
  if (avail === 0) {
    nv.env.stats.rxCompletionsLost++;
    return;
  }
  mrc.push(tid, status);
}

/**
 * send_recv_completions: the 8-byte RNDIS_PKT_COMPLETE as VM_PKT_COMP with the host's trans_id, oldest
 * first. A full ring stops the flush (rx_comp_busy); the rest go on the next poll. Returns how many went.
 */
export function sendRecvCompletions(nv: NetvscDev): number {
  const mrc = nv.mrc;
  if (mrc === undefined) return 0;
  const { channel, stats } = nv.env;
  let sent = 0;
  for (let c = mrc.peek(); c !== undefined; c = mrc.peek()) {
    const r = channel.sendPacket(encodeNvspRecvCompletion(c.status), {
      type: VM_PKT.COMP,
      flags: 0,
      requestId: c.tid,
    });
    if (!r.ok) {
      stats.rxCompBusy++;
      break;
    }
    mrc.shift();
    sent++;
    stats.rxCompletionsSent++;
  }
  return sent;
}

/**
 * netvsc_receive_inband: the host's unsolicited NVSP messages (send indirection table, VF association).
 * The model has one channel and no VF, so they are decoded, counted and otherwise ignored.
 */
export function netvscReceiveInband(nv: NetvscDev, data: Uint8Array): void {
  const d = decodeNvspMessage(data, "host-to-guest");
  nv.env.stats.errors.count(d.ok ? `inband-${d.value.kind}` : d.error.reason);
}
