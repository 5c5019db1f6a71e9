// The send path: netvsc_xmit (netvsc_drv.c: the skb, its RNDIS header, init_page_array, the verdict on
// netvsc_send's result) and netvsc_send / netvsc_copy_to_send_buf / netvsc_dma_map / netvsc_send_pkt /
// netvsc_send_tx_complete (netvsc.c). Page buffers go out in the multi-page-buffer form
// (vmbus_sendpacket_mpb_desc) with physically contiguous entries merged into one range, as the 2025
// rework requires.

import { type GuestMemory, PAGE_SIZE } from "@ivm/memory";
import {
  NETVSC_INVALID_INDEX,
  type NetvscResult,
  NVSP_CHANNEL_TYPE,
  NVSP_MESSAGE_SIZE,
  ok,
  RNDIS_HEADER_SIZE,
  RNDIS_PACKET_SIZE,
  shouldStopQueue,
  shouldWakeQueue,
  writeNvspRndisPacket,
  writeRndisDataHeader,
} from "@ivm/netvsc-protocol";
import { DMA_MAPPING_ERROR, DMA_TO_DEVICE, dmaMapSingle, dmaUnmapSingle } from "@ivm/swiotlb";
import {
  bytesToWrite,
  type HvPageBuffer,
  MAX_PAGE_BUFFER_COUNT,
  mpbRangesFromPageBuffers,
  RING_HEADER,
  VM_PKT,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMBUS_RQST_ERROR,
} from "@ivm/vmbus";
import { fromVmbus } from "./control.js";
import type { DriverEnv, NetvscDev, RequestCtx, Skb, TxPacket } from "./nvdev.js";
import { type NetvscErrorReason, reject } from "./reasons.js";
import { type SendCopyInput, sendCopyDecision, sendPadding } from "./send-buffer.js";
import { ViewCache } from "./view-cache.js";

/** RNDIS_MESSAGE_SIZE(struct rndis_packet): the header netvsc_xmit puts in front of a frame (no PPIs). */
export const RNDIS_DATA_HEADER_SIZE: number = RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE;
/**
 * Headroom of the model's skb: skb_cow_head(skb, RNDIS_AND_PPI_SIZE) makes room for the RNDIS message
 * and its PPIs (116 bytes, computed) in front of the frame; rounded to 128.
 */
export const SKB_RNDIS_HEADROOM = 128;
export const SKB_TAG = "skb";
/** The skb's kmalloc options, one object for every frame. */
const SKB_ALLOC = { tag: SKB_TAG } as const;
export const DMA_RANGE_TAG = "netvsc-dma-range";
/** sizeof(struct hv_dma_range): dma_addr_t + u32, padded. */
export const HV_DMA_RANGE_SIZE = 16;

export type XmitVerdict = "sent" | "busy" | "dropped";

/**
 * fill_pg_buf: one page-buffer entry per page a direct-map range touches, appended to `out`. With a
 * `pool`, the entries are the pool's objects at the same index (reused from frame to frame) instead of
 * new ones.
 */
export function fillPgBuf(
  memory: GuestMemory,
  va: number,
  len: number,
  out: HvPageBuffer[],
  pool?: MutablePageBuffer[],
): number {
  let n = 0;
  let at = va;
  let left = len;
  while (left > 0) {
    const offset = at % PAGE_SIZE;
    const chunk = Math.min(PAGE_SIZE - offset, left);
    const pfn = memory.virtToPfn(at - offset);
    if (pool === undefined) out.push({ pfn, offset, len: chunk });
    else out.push(pooledPageBuffer(pool, out.length, pfn, offset, chunk));
    at += chunk;
    left -= chunk;
    n++;
  }
  return n;
}

function pooledPageBuffer(pool: MutablePageBuffer[], i: number, pfn: number, offset: number, len: number) {
  let e = pool[i];
  if (e === undefined) {
    e = new MutablePageBuffer(pfn, offset, len);
    pool.push(e);
  } else {
    e.pfn = pfn;
    e.offset = offset;
    e.len = len;
  }
  return e;
}

/** A pool's page-buffer entry (reused from frame to frame, so dmaMap may rewrite it in place). */
class MutablePageBuffer implements HvPageBuffer {
  pfn: number;
  offset: number;
  len: number;
  constructor(pfn: number, offset: number, len: number) {
    this.pfn = pfn;
    this.offset = offset;
    this.len = len;
  }
}

/**
 * netvsc_xmit's pb array lives on its stack: the entries are read (copied into a section, or mapped and
 * put in the ring) before netvsc_xmit returns, so one array and one set of entries serve every frame.
 */
const XMIT_PB: HvPageBuffer[] = [];
const XMIT_PB_POOL: MutablePageBuffer[] = [];
/** The success result, one object for every packet (results are never mutated). */
const SENT = Object.freeze(ok(undefined));
/** What a packet's pb becomes once its entries are consumed. */
const NO_PAGE_BUFFERS: HvPageBuffer[] = Object.freeze([]) as unknown as HvPageBuffer[];

function directVa(memory: GuestMemory, pb: HvPageBuffer): number {
  return memory.pageToVirt(pb.pfn) + pb.offset;
}

function freeSkb(env: DriverEnv, skb: Skb | null): void {
  if (skb !== null) env.memory.kmalloc.kfree(skb.va);
}

/**
 * The RNDIS data header netvsc_xmit writes at skb->head (per_pkt_info_offset is set even without PPIs),
 * in one buffer reused for every frame: the caller copies it into the skb at once. It depends on the
 * frame's length only, so it is written again only when that changes (nothing else writes the buffer).
 */
const DATA_HEADER = new Uint8Array(RNDIS_DATA_HEADER_SIZE);
let dataHeaderLen = -1;
function rndisDataHeader(frameLen: number): Uint8Array {
  if (frameLen !== dataHeaderLen) {
    dataHeaderLen = -1; // a throw below leaves no stale length behind
    writeRndisDataHeader(DATA_HEADER, 0, frameLen, RNDIS_PACKET_SIZE);
    dataHeaderLen = frameLen;
  }
  return DATA_HEADER;
}

/** SEND_RNDIS_PKT of the packet being sent: copied into the ring before sendPkt returns. */
const NVSP_SCRATCH = new Uint8Array(NVSP_MESSAGE_SIZE);

/**
 * netvsc_xmit for one linear frame: the skb is a kmalloc'd buffer (the slab up to 8 KiB, whole pages
 * above) holding the RNDIS header in its headroom and the frame after it; init_page_array describes
 * both; netvsc_send decides how it travels. EAGAIN is NETDEV_TX_BUSY (the caller keeps the frame),
 * anything else drops it.
 */
export function netvscXmit(
  nv: NetvscDev | undefined,
  env: DriverEnv,
  frame: Uint8Array,
  xmitMore: boolean,
): XmitVerdict {
  const { stats, memory } = env;
  // A stopped queue is never asked to transmit: the qdisc keeps the packet.
  if (env.txq.stopped) return "busy";
  if (nv === undefined || nv.destroy) {
    stats.txDrops.count("tx-no-device");
    return "dropped";
  }
  const len = frame.length;
  if (len === 0) {
    stats.txDrops.count("tx-empty");
    return "dropped";
  }
  const skbVa = memory.kmalloc.kmalloc(SKB_RNDIS_HEADROOM + len, SKB_ALLOC);
  if (skbVa === null) {
    stats.txDrops.count("tx-no-memory");
    return "dropped";
  }
  const skb: Skb = { va: skbVa, len };
  memory.mmu.write(skbVa + SKB_RNDIS_HEADROOM, frame);
  memory.mmu.write(skbVa, rndisDataHeader(len));
  const pb = XMIT_PB;
  // Emptied by pops, not by length = 0 (which gives up the array's backing store).
  while (pb.length > 0) pb.pop();
  const rmsgPgcnt = fillPgBuf(memory, skbVa, RNDIS_DATA_HEADER_SIZE, pb, XMIT_PB_POOL);
  fillPgBuf(memory, skbVa + SKB_RNDIS_HEADROOM, len, pb, XMIT_PB_POOL);
  // Two entries are reserved for the RNDIS header; the frame is linear already, so no skb_linearize.
  if (pb.length - rmsgPgcnt + 2 > MAX_PAGE_BUFFER_COUNT) {
    freeSkb(env, skb);
    stats.txDrops.count("tx-too-big");
    return "dropped";
  }
  const packet: TxPacket = {
    skb,
    rndisReq: null,
    sendBufIndex: NETVSC_INVALID_INDEX,
    totalDataBuflen: RNDIS_DATA_HEADER_SIZE + len,
    rmsgSize: RNDIS_DATA_HEADER_SIZE,
    rmsgPgcnt,
    pb,
    pageBufCnt: pb.length,
    cpPartial: false,
    totalPackets: 1,
    totalBytes: len,
    dmaRange: null,
  };
  const r = netvscSend(nv, packet, xmitMore);
  // The entries were consumed (copied, or mapped and written into the ring): none outlives the call.
  packet.pb = NO_PAGE_BUFFERS;
  if (r.ok) return "sent";
  freeSkb(env, skb);
  // Frames batched into this packet's section earlier were reported "sent"; they are lost with it.
  if (packet.totalPackets > 1) stats.txDrops.count("batch-send-failed", packet.totalPackets - 1);
  if (r.error.code === "EAGAIN") {
    stats.txBusy++;
    return "busy";
  }
  stats.txDrops.count(r.error.code === "ENOSPC" ? "tx-no-space" : r.error.reason);
  return "dropped";
}

/** move_pkt_msd: take the pending batch out of the channel's multi-send data. */
function moveMsd(nv: NetvscDev): TxPacket | null {
  const pkt = nv.msd.pkt;
  nv.msd.pkt = null;
  nv.msd.count = 0;
  return pkt;
}

/** sendCopyDecision's input, one object refilled for every packet. */
const COPY_INPUT: { -readonly [K in keyof SendCopyInput]-?: NonNullable<SendCopyInput[K]> } = {
  pktLen: 0,
  rmsgSize: 0,
  msdLen: 0,
  msdCount: 0,
  sectionSize: 0,
  maxPkt: 0,
  pktAlign: 0,
};

/**
 * netvsc_send. Control messages go straight out. A data packet is copied into the pending section when
 * it fits behind the batch, else only its RNDIS header (cp_partial), else into a fresh section when it
 * fits one, else it goes by page buffers (and the pending batch is flushed first).
 */
export function netvscSend(nv: NetvscDev, packet: TxPacket, xmitMoreIn: boolean): NetvscResult<void> {
  const { env } = nv;
  if (nv.destroy) return reject("ENODEV", "tx-no-device", "the device is being removed");
  packet.sendBufIndex = NETVSC_INVALID_INDEX;
  packet.cpPartial = false;
  if (packet.skb === null) return sendPkt(nv, packet);

  const msd = nv.msd;
  let msdLen = msd.pkt?.totalDataBuflen ?? 0;
  let sectionIndex = NETVSC_INVALID_INDEX;
  let msdSend: TxPacket | null = null;
  const input = COPY_INPUT;
  input.pktLen = packet.totalDataBuflen;
  input.rmsgSize = packet.rmsgSize;
  input.msdLen = msdLen;
  input.msdCount = msd.count;
  input.sectionSize = nv.sendSectionSize;
  input.maxPkt = nv.maxPkt;
  input.pktAlign = nv.pktAlign;
  const decision = sendCopyDecision(input);
  if (decision === "batch") {
    sectionIndex = msd.pkt!.sendBufIndex;
  } else if (decision === "batch-partial") {
    sectionIndex = msd.pkt!.sendBufIndex;
    packet.cpPartial = true;
  } else if (decision === "new-section") {
    sectionIndex = nv.sectionMap?.allocate() ?? NETVSC_INVALID_INDEX;
    if (sectionIndex === NETVSC_INVALID_INDEX) {
      env.stats.txSendFull++;
    } else {
      msdSend = moveMsd(nv);
      msdLen = 0;
    }
  }

  // Keep aggregating only if more is coming, this is not a mixed send, and the queue is not stopped.
  const xmitMore = xmitMoreIn && !packet.cpPartial && !env.txq.stopped;
  let curSend: TxPacket | null = null;
  if (sectionIndex !== NETVSC_INVALID_INDEX) {
    copyToSendBuf(nv, sectionIndex, msdLen, packet, xmitMore);
    packet.sendBufIndex = sectionIndex;
    if (packet.cpPartial) {
      packet.pb = packet.pb.slice(packet.rmsgPgcnt);
      packet.pageBufCnt -= packet.rmsgPgcnt;
      packet.totalDataBuflen = msdLen + packet.rmsgSize;
    } else {
      packet.pb = NO_PAGE_BUFFERS;
      packet.pageBufCnt = 0;
      packet.totalDataBuflen += msdLen;
    }
    const pending = msd.pkt;
    if (pending !== null) {
      packet.totalPackets += pending.totalPackets;
      packet.totalBytes += pending.totalBytes;
      // dev_consume_skb_any(msdp->skb): its bytes are in the section now.
      freeSkb(env, pending.skb);
      pending.skb = null;
    }
    if (xmitMore) {
      msd.pkt = packet;
      msd.count++;
    } else {
      curSend = packet;
      msd.pkt = null;
      msd.count = 0;
    }
  } else {
    msdSend = moveMsd(nv);
    curSend = packet;
  }

  if (msdSend !== null) {
    const m = sendPkt(nv, msdSend);
    if (!m.ok) {
      freeSection(nv, msdSend.sendBufIndex);
      freeSkb(env, msdSend.skb);
      // Every frame batched into the section is lost, not one: each was already reported "sent".
      env.stats.txDrops.count("batch-send-failed", msdSend.totalPackets);
    }
  }
  let ret: NetvscResult<void> = SENT;
  if (curSend !== null) ret = sendPkt(nv, curSend);
  if (!ret.ok && sectionIndex !== NETVSC_INVALID_INDEX) freeSection(nv, sectionIndex);
  return ret;
}

function freeSection(nv: NetvscDev, index: number): void {
  const r = nv.sectionMap?.free(index);
  if (r !== undefined && !r.ok) nv.env.stats.errors.count(r.error.reason);
}

/**
 * netvsc_copy_to_send_buf: the page-buffer entries (all, or only the RNDIS header for cp_partial) go
 * to send_buf + index * section_size + pend. With more packets coming, the message is padded to
 * pkt_align: msg_len grows first (in the skb's header, which is then copied) and the pad is zeroed.
 */
function copyToSendBuf(
  nv: NetvscDev,
  index: number,
  pend: number,
  packet: TxPacket,
  xmitMore: boolean,
): void {
  const { memory, stats } = nv.env;
  const mmu = memory.mmu;
  const start = nv.send!.va! + index * nv.sendSectionSize + pend;
  const pageCount = packet.cpPartial ? packet.rmsgPgcnt : packet.pageBufCnt;
  const padding = sendPadding(packet.totalDataBuflen, nv.pktAlign, xmitMore);
  if (padding > 0) {
    // rndis_msg->msg_len += padding; the header in the (guest-private) skb holds total_data_buflen.
    mmu.writeU32(packet.skb!.va + 4, packet.totalDataBuflen + padding);
    packet.totalDataBuflen += padding;
  }
  // Each entry is read from the skb in its turn (the memcpy's loads) into the section image, the pad
  // is zeroed (memset in the kernel), and the image goes to send_buf + offset with one store: the
  // section bytes the kernel's memcpys leave, with the same reads, faults and byte counts.
  let copied = 0;
  for (let i = 0; i < pageCount; i++) {
    const pb = packet.pb[i]!;
    mmu.read(directVa(memory, pb), sectionImage(copied, pb.len));
    copied += pb.len;
  }
  const image = sectionImage(0, copied + padding);
  if (padding > 0) image.fill(0, copied);
  mmu.write(start, image);
  stats.sendSectionCopies++;
  if (packet.cpPartial) stats.partialCopies++;
  stats.sendSectionBytes += copied + padding;
}

/** The section image copyToSendBuf assembles (grown when a message needs more), and its views. */
let sectionScratch = new Uint8Array(8192);
const sectionViews = new ViewCache();

function sectionImage(at: number, len: number): Uint8Array {
  if (at + len > sectionScratch.length) {
    sectionScratch = new Uint8Array(Math.max(at + len, 2 * sectionScratch.length));
  }
  return sectionViews.view(sectionScratch, at, len);
}

/**
 * netvsc_dma_map. Only isolated guests map (hv_is_isolation_supported()); the mappings bounce through
 * swiotlb and each entry keeps its page offset thanks to min_align_mask 0xFFF. Divergence: the 5.17 loop
 * returns on a failed mapping without unmapping the entries it already mapped; the model unmaps them.
 */
function dmaMap(nv: NetvscDev, packet: TxPacket): boolean {
  const { env } = nv;
  if (!env.isolated) return true;
  const { memory, dma, stats } = env;
  const n = packet.pb.length;
  const arrayVa = memory.kmalloc.kzalloc(n * HV_DMA_RANGE_SIZE, { tag: DMA_RANGE_TAG });
  if (arrayVa === null) {
    stats.dmaMapErrors++;
    return false;
  }
  const range = takeDmaRange(arrayVa, n);
  for (let i = 0; i < n; i++) {
    const pb = packet.pb[i]!;
    const addr = dmaMapSingle(dma, directVa(memory, pb), pb.len, DMA_TO_DEVICE);
    if (addr === DMA_MAPPING_ERROR) {
      for (let j = 0; j < i; j++) dmaUnmapSingle(dma, range.dma[j]!, range.len[j]!, DMA_TO_DEVICE);
      memory.kmalloc.kfree(arrayVa);
      giveDmaRange(range);
      stats.dmaMapErrors++;
      return false;
    }
    range.dma[i] = addr;
    range.len[i] = pb.len;
    const pfn = Math.floor(addr / PAGE_SIZE);
    const offset = addr % PAGE_SIZE;
    // The entry now names the bounce address: a pooled entry is rewritten, any other replaced.
    if (pb instanceof MutablePageBuffer) {
      pb.pfn = pfn;
      pb.offset = offset;
    } else {
      packet.pb[i] = { pfn, offset, len: pb.len };
    }
    stats.pageBufferMaps++;
    stats.bytesBounced += pb.len;
  }
  packet.dmaRange = range;
  return true;
}

interface MutableDmaRange {
  arrayVa: number;
  readonly dma: Float64Array;
  readonly len: Uint32Array;
}

/**
 * The JS side of packet->dma_range, reused: released ranges wait here by entry count (the kmalloc'd
 * array itself is allocated and freed per packet, as in the kernel, and measured).
 */
const FREE_DMA_RANGES: MutableDmaRange[][] = [];
const FREE_DMA_RANGES_MAX = 64;

function takeDmaRange(arrayVa: number, n: number): MutableDmaRange {
  const r = FREE_DMA_RANGES[n]?.pop();
  if (r === undefined) return { arrayVa, dma: new Float64Array(n), len: new Uint32Array(n) };
  r.arrayVa = arrayVa;
  return r;
}

function giveDmaRange(range: MutableDmaRange): void {
  const n = range.dma.length;
  let free = FREE_DMA_RANGES[n];
  if (free === undefined) {
    free = [];
    FREE_DMA_RANGES[n] = free;
  }
  if (free.length < FREE_DMA_RANGES_MAX) free.push(range);
}

/** netvsc_dma_unmap. */
export function dmaUnmap(nv: NetvscDev, packet: TxPacket): void {
  const range = packet.dmaRange;
  if (range === null) return;
  const { dma, memory } = nv.env;
  for (let i = 0; i < range.dma.length; i++) dmaUnmapSingle(dma, range.dma[i]!, range.len[i]!, DMA_TO_DEVICE);
  memory.kmalloc.kfree(range.arrayVa);
  packet.dmaRange = null;
  giveDmaRange(range as MutableDmaRange);
}

/**
 * hv_get_avail_to_write_percent of the outbound ring: free bytes * 10 / (ring_size / 10), ring_size
 * counting the header page, from the shared indices (which the host can move).
 */
export function ringAvailPercent(env: DriverEnv): number {
  const out = env.channel.outbound;
  if (out === undefined) return 0;
  const mem = out.mem;
  const avail = bytesToWrite(
    mem.dataSize,
    mem.readHeaderU32(RING_HEADER.WRITE_INDEX),
    mem.readHeaderU32(RING_HEADER.READ_INDEX),
  );
  return Math.floor((avail * 10) / Math.floor(env.ringBytes / 10));
}

function stopQueue(env: DriverEnv): void {
  if (env.txq.stopped) return;
  env.txq.stopped = true;
  env.stats.stopQueue++;
}

function wakeQueue(env: DriverEnv): void {
  env.txq.stopped = false;
  env.stats.wakeQueue++;
}

/**
 * netvsc_send_pkt: SEND_RNDIS_PKT inband (section) or with page buffers (DMA-mapped first). The ring's
 * free share is read before the write, as the kernel reads it. EAGAIN (ring or request table full, or a
 * failed mapping) stops the queue; with nothing outstanding the queue is woken again and the packet
 * fails with ENOSPC instead, so it is dropped rather than retried forever.
 */
export function sendPkt(nv: NetvscDev, packet: TxPacket): NetvscResult<void> {
  const { env } = nv;
  const ch = env.channel;
  const ringAvail = ringAvailPercent(env);
  const nvsp = writeNvspRndisPacket(
    NVSP_SCRATCH,
    packet.rndisReq === null ? NVSP_CHANNEL_TYPE.DATA : NVSP_CHANNEL_TYPE.CONTROL,
    packet.sendBufIndex,
    packet.sendBufIndex === NETVSC_INVALID_INDEX ? 0 : packet.totalDataBuflen,
  );
  if (ch.rescinded) return reject("ENODEV", "channel-rescinded", "the channel was rescinded");
  const ctx: RequestCtx = { kind: "tx", pkt: packet };
  packet.dmaRange = null;
  let ret: NetvscResult<void, NetvscErrorReason>;
  if (packet.pageBufCnt > 0) {
    if (!dmaMap(nv, packet)) {
      ret = reject("EAGAIN", "dma-map-failed", "netvsc_dma_map failed");
    } else {
      // vmbus_sendpacket_pagebuffer (one hv_page_buffer per entry) until the 2025 move to mpb ranges.
      const r =
        env.kernel.profile.netvsc.pageBufferSend.value === "pagebuffer"
          ? ch.sendPageBuffer(packet.pb, nvsp, ctx)
          : ch.sendMpbDesc(mpbRangesFromPageBuffers(packet.pb), nvsp, ctx);
      if (r.ok) {
        env.stats.pageBufferSends++;
        ret = SENT;
      } else {
        dmaUnmap(nv, packet);
        ret = fromVmbus(r.error, `tx-${r.error.reason}`);
      }
    }
  } else {
    const r = ch.sendInband(
      nvsp,
      VM_PKT.DATA_INBAND,
      VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
      VMBUS_RQST_ERROR,
      ctx,
    );
    ret = r.ok ? SENT : fromVmbus(r.error, `tx-${r.error.reason}`);
  }

  if (ret.ok) {
    nv.queueSends++;
    nv.inflight.add(packet);
    if (shouldStopQueue(ringAvail)) stopQueue(env);
  } else if (ret.error.code === "EAGAIN") {
    stopQueue(env);
  } else {
    env.stats.errors.count(ret.error.reason);
  }
  if (env.txq.stopped && nv.queueSends < 1 && !nv.txDisable) {
    wakeQueue(env);
    if (!ret.ok && ret.error.code === "EAGAIN") {
      return reject("ENOSPC", ret.error.reason, "ring full with nothing outstanding");
    }
  }
  return ret;
}

/**
 * netvsc_send_tx_complete for a request id the table accepted: the section goes back (validated), the
 * counters advance, the mappings and the skb are released, and a stopped queue wakes above 20 % free
 * or when nothing is outstanding. A control message has no skb; its mappings are released when its
 * RNDIS response arrives (rndis_filter_receive_response), or here for HALT, which gets none.
 */
export function txComplete(nv: NetvscDev, packet: TxPacket): void {
  const { env } = nv;
  // I6: only a packet still in flight may be completed; anything else would release a section, a
  // mapping or an skb a second time.
  if (!nv.inflight.has(packet)) {
    env.stats.staleCompletions++;
    return;
  }
  if (packet.rndisReq === null) {
    if (packet.sendBufIndex !== NETVSC_INVALID_INDEX) freeSection(nv, packet.sendBufIndex);
    env.stats.txPackets += packet.totalPackets;
    env.stats.txBytes += packet.totalBytes;
    dmaUnmap(nv, packet);
    freeSkb(env, packet.skb);
    packet.skb = null;
  } else if (!packet.rndisReq.expectsResponse) {
    dmaUnmap(nv, packet);
  }
  nv.inflight.delete(packet);
  nv.queueSends--;
  if (nv.destroy) return;
  if (env.txq.stopped && !nv.txDisable && shouldWakeQueue(ringAvailPercent(env), nv.queueSends))
    wakeQueue(env);
}
