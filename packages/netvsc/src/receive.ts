// The receive path: netvsc_receive (transfer-page packets), enq_receive_complete and
// send_recv_completions (the completion ring), netvsc_receive_inband (drivers/net/hyperv/netvsc.c).
//
// Host bytes are parsed only from private copies (invariant I3): the transfer-page packet is the
// channel's private copy, and the RNDIS headers of each range are copied out of the shared receive
// buffer into the channel's private buffer before anything in them is read ("Copy packets sent by
// Hyper-V out of the receive buffer", 0ba35fe91ce3); a frame's payload goes from the shared buffer
// into the skb once.

import { PAGE_SIZE } from "@ivm/memory";
import {
  decodeNvspMessage,
  NAPI_POLL_WEIGHT,
  NVSP_RECV_COMPLETION_SIZE,
  NVSP_STATUS,
  parseSendIndirectionTable,
  RNDIS_HEADER_SIZE,
  RNDIS_MSG_TYPE,
  RNDIS_PACKET_SIZE,
  scanXferPagePacket,
  writeNvspRecvCompletion,
  XferPageScan,
} from "@ivm/netvsc-protocol";
import { VM_PKT } from "@ivm/vmbus";
import type { NetvscDev } from "./nvdev.js";
import { rndisFilterReceive } from "./rndis-filter.js";
import { ViewCache } from "./view-cache.js";

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
  const scan = takeScan();
  try {
    const problem = scanXferPagePacket(
      bytes,
      nv.recvBufSize,
      nv.recvSectionSize,
      env.kernel.profile.netvsc.xferPageHeaderSize.value,
      scan,
    );
    if (problem !== null) {
      stats.rxDrops.count(problem);
      return 0;
    }
    let status = scan.status;
    const count = scan.count;
    for (let i = 0; i < count; i++) {
      const reason = scan.rangeReason(i);
      if (reason !== null) {
        stats.rxDrops.count(reason);
        continue;
      }
      // One address for both calls: above 2^31 it is a heap number, made once rather than per call.
      const shared = recvVa + scan.offsets[i]!;
      const copy = copyRndisHeaders(nv, shared, scan.lengths[i]!);
      if (rndisFilterReceive(nv, copy, shared) !== NVSP_STATUS.SUCCESS) status = NVSP_STATUS.FAIL;
    }
    enqReceiveComplete(nv, scan.transactionId, status);
    return count;
  } finally {
    scanDepth--;
  }
}

/**
 * The transfer-page scans netvscReceive fills, one per nesting level (a receive callback may poll
 * again), reused from packet to packet.
 */
const SCANS: XferPageScan[] = [];
let scanDepth = 0;

function takeScan(): XferPageScan {
  let s = SCANS[scanDepth];
  if (s === undefined) {
    s = new XferPageScan();
    SCANS.push(s);
  }
  scanDepth++;
  return s;
}

/**
 * The reads of shared memory rndis_filter_receive makes before it validates anything, each into the
 * channel's private recv_buf at the offset it has in the message (0ba35fe91ce3): the RNDIS header; for
 * a data message rndis_packet; for a control message the whole message (the kernel copies a response
 * into its request). Not here: a data message's per-packet info, which each of rndis_get_ppi's four
 * lookups copies for itself, and only after checking its offset and length (rndisGetPpis, rndis-ppi.ts);
 * and the frame, which rndisFilterReceive copies from the shared buffer into the skb, once.
 *
 * Returns the JS image of the private buffer (`length` bytes) that the parser reads; every read behind
 * it is of private memory (checked: I3). Past what was copied the image keeps what an earlier range
 * left, as recv_buf does: a data message's parse reads only its first 44 bytes and the PPI areas its
 * lookups copy, and a control message's rest is zeroed before it lands.
 */
function copyRndisHeaders(nv: NetvscDev, shared: number, length: number): Uint8Array {
  const priv = nv.rxPrivate[0]!;
  const image = rxViews.view(nv.rxScratch, 0, length);
  const copies = COPIES;
  copies.n = 0;
  let copied = takeShared(nv, copies, priv, shared, 0, Math.min(RNDIS_HEADER_SIZE, length));
  const dv = scratchView(nv.rxScratch);
  // the image starts where the scratch does
  const base = boundScratchOffset;
  if (length >= RNDIS_HEADER_SIZE && dv.getUint32(base, true) === RNDIS_MSG_TYPE.PACKET) {
    // rndis_filter_receive_data copies rndis_packet once rndis_filter_receive has accepted msg_len and
    // the range holds all of it (44144185951a's checks come first).
    const msgLen = dv.getUint32(base + 4, true);
    if (msgLen >= RNDIS_HEADER_SIZE && msgLen <= length && length >= RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE)
      copied += takeShared(nv, copies, priv, shared, RNDIS_HEADER_SIZE, RNDIS_PACKET_SIZE);
  } else if (length >= RNDIS_HEADER_SIZE) {
    // The image so far is the header: zero the rest before the message lands on it.
    image.fill(0, RNDIS_HEADER_SIZE);
    // a control message: msg_len bytes, once rndis_filter_receive has checked msg_len <= buflen
    const msgLen = dv.getUint32(base + 4, true);
    if (msgLen >= RNDIS_HEADER_SIZE && msgLen <= length)
      copied += takeShared(nv, copies, priv, shared, RNDIS_HEADER_SIZE, msgLen - RNDIS_HEADER_SIZE);
  }
  readPrivate(nv, copies, priv);
  const stats = nv.env.stats;
  stats.rxRangeCopies++;
  stats.rxRangeBytes += copied;
  return image;
}

/** The pieces copied into the private buffer for one range, in copy order (at most two). */
const COPIES = { n: 0, at: new Uint32Array(2), len: new Uint32Array(2) };

/**
 * One copy of shared memory into the private buffer at `at` (the kernel's memcpy: a read of the shared
 * bytes, a write of them to private memory), recorded for readPrivate.
 */
function takeShared(
  nv: NetvscDev,
  copies: typeof COPIES,
  priv: number,
  shared: number,
  at: number,
  n: number,
): number {
  if (n <= 0) return 0;
  const mmu = nv.env.memory.mmu;
  // image is the scratch's first bytes, so its pieces are pieces of the scratch.
  mmu.readInto(shared + at, nv.rxScratch, at, n);
  mmu.writeFrom(priv + at, nv.rxScratch, at, n);
  const i = copies.n++;
  copies.at[i] = at;
  copies.len[i] = n;
  return n;
}

/**
 * The parser's read of the private copy into the image (what the checks above and the decode read):
 * one read when the pieces lie back to back from offset 0 (every message does), else one per piece, so
 * the image keeps what it held wherever nothing was copied. Any of it coming from
 * shared memory is counted (parsedFromShared, I3).
 */
function readPrivate(nv: NetvscDev, copies: typeof COPIES, priv: number): void {
  const mmu = nv.env.memory.mmu;
  const scratch = nv.rxScratch;
  const before = mmu.sharedReads;
  let end = 0;
  let contiguous = true;
  for (let i = 0; i < copies.n; i++) {
    if (copies.at[i] !== end) contiguous = false;
    end = copies.at[i]! + copies.len[i]!;
  }
  if (!contiguous) {
    for (let i = 0; i < copies.n; i++) {
      const at = copies.at[i]!;
      mmu.readInto(priv + at, scratch, at, copies.len[i]!);
    }
    nv.env.stats.parsedFromShared += mmu.sharedReads - before;
    return;
  }
  if (end > 0) mmu.readInto(priv, scratch, 0, end);
  // The count is per piece, as the pieces are read: only a private buffer with a shared page gets here.
  if (mmu.sharedReads !== before) {
    for (let i = 0; i < copies.n; i++) {
      if (touchesShared(nv, priv + copies.at[i]!, copies.len[i]!)) nv.env.stats.parsedFromShared++;
    }
  }
}

/** Whether any page of [va, va + len) is reached through a shared (host-visible) alias. */
function touchesShared(nv: NetvscDev, va: number, len: number): boolean {
  const mmu = nv.env.memory.mmu;
  for (let page = Math.floor(va / PAGE_SIZE); page * PAGE_SIZE < va + len; page++) {
    if (mmu.translate(Math.max(va, page * PAGE_SIZE)).shared) return true;
  }
  return false;
}

let boundScratch: Uint8Array | undefined;
let boundScratchView: DataView | undefined;
/** The bound scratch's byteOffset in its buffer, read once with the view. */
let boundScratchOffset = 0;

/**
 * A DataView over the scratch's whole buffer, made once per scratch (index it with the image's
 * byteOffset). Keyed by the scratch itself: reading `.buffer` per range costs more than the compare.
 */
function scratchView(scratch: Uint8Array): DataView {
  if (scratch !== boundScratch || boundScratchView === undefined) {
    boundScratch = scratch;
    boundScratchView = new DataView(scratch.buffer);
    boundScratchOffset = scratch.byteOffset;
  }
  return boundScratchView;
}

/** Views of the receive scratch (the range image and its pieces). */
const rxViews = new ViewCache();

/**
 * enq_receive_complete: flush first when more than NAPI_POLL_WEIGHT are queued; if the ring is still
 * full the completion is lost ("Recv_comp full buf") and the host keeps those sections.
 */
export function enqReceiveComplete(nv: NetvscDev, tid: bigint | number, status: number): void {
  const mrc = nv.mrc!;
  if (mrc.pending > NAPI_POLL_WEIGHT) sendRecvCompletions(nv);
  if (mrc.slotsFree === 0) {
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
  while (!mrc.empty) {
    const msg = writeNvspRecvCompletion(RECV_COMPLETION, mrc.firstStatus);
    const r = channel.sendInband(msg, VM_PKT.COMP, 0, mrc.firstTid);
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
 * netvsc_receive_inband: the host's unsolicited NVSP messages, each counted by kind. A send indirection
 * table replaces the transmit queue table (netvsc_send_table); the model has no VF, so a VF association
 * is counted and otherwise ignored, as is anything else.
 */
export function netvscReceiveInband(nv: NetvscDev, data: Uint8Array): void {
  const stats = nv.env.stats;
  const d = decodeNvspMessage(data, "host-to-guest");
  if (!d.ok) {
    stats.errors.count(d.error.reason);
    return;
  }
  stats.errors.count(`inband-${d.value.kind}`);
  if (d.value.kind === "send-indirection-table") netvscSendTable(nv, data);
}

/**
 * netvsc_send_table: the host's table, checked as the kernel checks it (exactly VRSS_SEND_TAB_SIZE
 * entries; hosts up to NVSP 6 get their offset corrected; the entries inside the message, 505e3f00c3f3),
 * is copied into ndev_ctx->tx_table — whose entries are u16, so each u32 entry keeps its low 16 bits —
 * and nothing checks the queue numbers: netvsc_select_queue folds one past the real queues back into
 * range at each send (netvscPickTx). A refused table is logged and leaves the old one.
 */
function netvscSendTable(nv: NetvscDev, data: Uint8Array): void {
  const t = parseSendIndirectionTable(data, nv.nvspVersion);
  if (!t.ok) {
    nv.env.stats.errors.count(t.error.reason);
    return;
  }
  for (let i = 0; i < t.value.length; i++) nv.txTable[i] = t.value[i]!;
  nv.env.stats.sendTablesApplied++;
}
