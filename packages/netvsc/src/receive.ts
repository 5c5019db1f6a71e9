// The receive path: netvsc_receive (transfer-page packets), enq_receive_complete and
// send_recv_completions (the completion ring), netvsc_receive_inband (drivers/net/hyperv/netvsc.c).
//
// Host bytes are parsed only from private copies (invariant I3): the transfer-page packet is the
// channel's private copy, and the RNDIS headers of each range are copied out of the shared receive
// buffer into the channel's private buffer before anything in them is read ("Copy packets sent by
// Hyper-V out of the receive buffer", 0ba35fe91ce3); a frame's payload goes from the shared buffer
// into the skb once.

import {
  decodeNvspMessage,
  NAPI_POLL_WEIGHT,
  NVSP_RECV_COMPLETION_SIZE,
  NVSP_STATUS,
  RNDIS_HEADER_SIZE,
  RNDIS_MSG_TYPE,
  RNDIS_PACKET_AT,
  RNDIS_PACKET_SIZE,
  validateXferPagePacket,
  writeNvspRecvCompletion,
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
  // The lower bound on offset8 << 3 is sizeof(struct vmtransfer_page_packet_header) of this kernel.
  const v = validateXferPagePacket(
    bytes,
    { recvBufSize: nv.recvBufSize, recvSectionSize: nv.recvSectionSize },
    env.kernel.profile.netvsc.xferPageHeaderSize.value,
  );
  if (!v.ok) {
    stats.rxDrops.count(v.error.reason);
    return 0;
  }
  let status = v.value.status;
  for (const range of v.value.ranges) {
    if (!range.ok) {
      stats.rxDrops.count(range.reason);
      continue;
    }
    const copy = copyRndisHeaders(nv, recvVa + range.offset, range.length);
    if (rndisFilterReceive(nv, copy, recvVa + range.offset) !== NVSP_STATUS.SUCCESS)
      status = NVSP_STATUS.FAIL;
  }
  enqReceiveComplete(nv, v.value.transactionId, status);
  return v.value.ranges.length;
}

/**
 * The reads of shared memory rndis_filter_receive makes before it validates anything, each into the
 * channel's private recv_buf at the offset it has in the message (0ba35fe91ce3): the RNDIS header; for
 * a data message rndis_packet and then, if it lies inside the range, the per-packet-info area; for a
 * control message the whole message (the kernel copies a response into its request). The frame itself
 * is not copied here: rndisFilterReceive copies it from the shared buffer into the skb, once.
 *
 * Returns the JS image of the private buffer (`length` bytes, zero where nothing was copied) that the
 * parser reads; every read behind it is of private memory (checked: I3).
 */
function copyRndisHeaders(nv: NetvscDev, shared: number, length: number): Uint8Array {
  const priv = nv.rxPrivate[0]!;
  const image = nv.rxScratch.subarray(0, length);
  image.fill(0);
  let copied = takeShared(nv, priv, shared, image, 0, Math.min(RNDIS_HEADER_SIZE, length));
  const dv = imageView(image);
  const base = image.byteOffset;
  if (length >= RNDIS_HEADER_SIZE && dv.getUint32(base, true) === RNDIS_MSG_TYPE.PACKET) {
    const pkt = Math.min(RNDIS_PACKET_SIZE, length - RNDIS_HEADER_SIZE);
    copied += takeShared(nv, priv, shared, image, RNDIS_HEADER_SIZE, pkt);
    if (pkt === RNDIS_PACKET_SIZE) {
      const ppiOffset = dv.getUint32(base + RNDIS_PACKET_AT.perPktInfoOffset, true);
      const ppiLen = dv.getUint32(base + RNDIS_PACKET_AT.perPktInfoLen, true);
      const room = length - RNDIS_HEADER_SIZE;
      if (ppiOffset <= room && ppiLen <= room - ppiOffset)
        copied += takeShared(nv, priv, shared, image, RNDIS_HEADER_SIZE + ppiOffset, ppiLen);
    }
  } else if (length >= RNDIS_HEADER_SIZE) {
    // a control message: msg_len bytes, once rndis_filter_receive has checked msg_len <= buflen
    const msgLen = dv.getUint32(base + 4, true);
    if (msgLen >= RNDIS_HEADER_SIZE && msgLen <= length)
      copied += takeShared(nv, priv, shared, image, RNDIS_HEADER_SIZE, msgLen - RNDIS_HEADER_SIZE);
  }
  const stats = nv.env.stats;
  stats.rxRangeCopies++;
  stats.rxRangeBytes += copied;
  return image;
}

/**
 * One copy of shared memory into the private buffer at `at` (the kernel's memcpy: a read of the shared
 * bytes, a write of them to private memory), then the parser's read of the private copy into the image.
 */
function takeShared(
  nv: NetvscDev,
  priv: number,
  shared: number,
  image: Uint8Array,
  at: number,
  n: number,
): number {
  if (n <= 0) return 0;
  const mmu = nv.env.memory.mmu;
  const part = imagePart(image, at, n);
  mmu.read(shared + at, part);
  mmu.write(priv + at, part);
  const before = mmu.sharedReads;
  mmu.read(priv + at, part);
  nv.env.stats.parsedFromShared += mmu.sharedReads - before;
  return n;
}

// The two fixed reads of every range (RNDIS header, rndis_packet) get views made once per scratch.
let partsOf: ArrayBufferLike | undefined;
let headerPart: Uint8Array | undefined;
let packetPart: Uint8Array | undefined;

function imagePart(image: Uint8Array, at: number, n: number): Uint8Array {
  if (at === 0 && n === image.length) return image;
  if (partsOf !== image.buffer || headerPart === undefined || packetPart === undefined) {
    const base = new Uint8Array(image.buffer, image.byteOffset);
    partsOf = image.buffer;
    headerPart = base.subarray(0, RNDIS_HEADER_SIZE);
    packetPart = base.subarray(RNDIS_HEADER_SIZE, RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE);
  }
  if (headerPart.byteOffset === image.byteOffset) {
    if (at === 0 && n === headerPart.length) return headerPart;
    if (at === RNDIS_HEADER_SIZE && n === packetPart.length) return packetPart;
  }
  return image.subarray(at, at + n);
}

let boundImage: ArrayBufferLike | undefined;
let boundImageView: DataView | undefined;

/** A DataView over the scratch's whole buffer, made once per buffer (index it with byteOffset). */
function imageView(image: Uint8Array): DataView {
  if (image.buffer !== boundImage || boundImageView === undefined) {
    boundImage = image.buffer;
    boundImageView = new DataView(image.buffer);
  }
  return boundImageView;
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

/** The completion being sent: copied into the ring before sendPacket returns. */
const RECV_COMPLETION = new Uint8Array(NVSP_RECV_COMPLETION_SIZE);

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
    const r = channel.sendPacket(writeNvspRecvCompletion(RECV_COMPLETION, c.status), {
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
