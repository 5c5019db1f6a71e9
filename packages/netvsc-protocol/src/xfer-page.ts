// Transfer-page packets: how the host tells the guest which parts of the receive buffer hold new RNDIS
// messages. Layout mirrors `struct vmtransfer_page_packet_header` (include/linux/hyperv.h); the checks
// mirror netvsc_receive (drivers/net/hyperv/netvsc.c) after "Copy packets sent by Hyper-V out of the
// receive buffer" (0ba35fe91ce3, Jan 2021). VMBus owns the descriptor and the packet's encoder; the
// constants below are VMBus's, imported and re-exported, never declared twice.

import {
  readU64NumberAt,
  VM_PKT,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMPACKET_DESCRIPTOR_SIZE,
  writeTransferPagePacket,
  writeTransferPageRange,
  XFER_PAGE_HEADER_SIZE,
} from "@ivm/vmbus";
import { type NetvscResult, ok, reject } from "./errors.js";
import { encodeNvspMessage, NVSP_HEADER_SIZE, NVSP_MSG_TYPE, NVSP_STATUS } from "./nvsp.js";
import { checkU16, checkU32, checkU64, readU16, readU32, readU64 } from "./wire.js";

export { VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, VMPACKET_DESCRIPTOR_SIZE, XFER_PAGE_HEADER_SIZE };
/**
 * The kernel rejects `offset8 << 3 < sizeof(struct vmtransfer_page_packet_header)`. That sizeof was 32
 * while `ranges` was declared `[1]`, and is 24 since it became a flexible array member (2023); the
 * model uses the current value. Pass 32 to {@link validateXferPagePacket} to model older kernels.
 */
export const XFER_PAGE_HEADER_MIN_SIZE = 24;
/** sizeof(struct vmtransfer_page_range): byte_count u32, byte_offset u32. */
export const XFER_PAGE_RANGE_SIZE = 8;
/** VM_PKT_DATA_USING_XFER_PAGES (VMBus's `VM_PKT.DATA_USING_XFER_PAGES`). */
export const VM_PKT_DATA_USING_XFER_PAGES: typeof VM_PKT.DATA_USING_XFER_PAGES = VM_PKT.DATA_USING_XFER_PAGES;
/** NETVSC_RECEIVE_BUFFER_ID: the transfer page set id the guest gave with SEND_RECV_BUF. */
export const XFER_PAGESET_ID = 0xcafe;
/** NVSP_RSC_MAX = NETVSC_MAX_XFER_PAGE_RANGES: the most ranges (RSC fragments) a host should send. */
export const NETVSC_MAX_XFER_PAGE_RANGES = 562;

/** NETVSC_XFER_HEADER_SIZE(rng_cnt). */
export function xferHeaderSize(rangeCount: number): number {
  return XFER_PAGE_HEADER_SIZE + rangeCount * XFER_PAGE_RANGE_SIZE;
}

/** Packet-level rejections: netvsc_receive logs and returns 0, and sends no completion at all. */
export type XferPacketRejectReason =
  | "xfer-descriptor-invalid"
  | "nvsp-header-too-short"
  | "nvsp-not-rndis-pkt"
  | "xfer-header-too-short"
  | "xfer-pageset-id-invalid"
  | "xfer-range-count-invalid";

/** Range-level rejections: the range is skipped, RSC state reset, and the packet completed with FAIL. */
export type XferRangeRejectReason = "xfer-range-outside-buffer" | "xfer-range-exceeds-section";

export type XferRange =
  | { readonly index: number; readonly ok: true; readonly offset: number; readonly length: number }
  | {
      readonly index: number;
      readonly ok: false;
      readonly offset: number;
      readonly length: number;
      readonly reason: XferRangeRejectReason;
    };

export interface XferPagePacket {
  /** trans_id, echoed in the completion. bigint: a u64 chosen by the host. */
  readonly transactionId: bigint;
  readonly flags: number;
  readonly pagesetId: number;
  readonly senderOwnsSet: number;
  readonly ranges: readonly XferRange[];
  /** NVSP_STAT_FAIL if any range was rejected here; rndis_filter_receive may still fail a good one. */
  readonly status: number;
}

export interface ReceiveBufferSizes {
  /** net_device->recv_buf_size: the guest's own allocation, not a host value. */
  readonly recvBufSize: number;
  /** net_device->recv_section_size, from the host's SEND_RECV_BUF_COMPLETE (validated). */
  readonly recvSectionSize: number;
}

/** What a range check found: 0 for a good range, else the reason (XFER_RANGE_REASONS[code − 1]). */
const XFER_RANGE_REASONS: readonly XferRangeRejectReason[] = [
  "xfer-range-outside-buffer",
  "xfer-range-exceeds-section",
];

/**
 * The result of {@link scanXferPagePacket}, refilled by every scan: the packet's fields and its ranges
 * in typed arrays (no object per range). Valid until the next scan into it.
 */
export class XferPageScan {
  /** trans_id: a number below 2^53, else the bigint (made only then). */
  transactionId: number | bigint = 0;
  flags = 0;
  pagesetId = 0;
  senderOwnsSet = 0;
  /** NVSP_STAT_FAIL if any range was rejected. */
  status = 0;
  /** range_cnt: ranges 0 .. count − 1 of the arrays below are this packet's. */
  count = 0;
  offsets: Uint32Array = new Uint32Array(4);
  lengths: Uint32Array = new Uint32Array(4);
  /** 0 for a good range, else 1 + the index of its reason in rangeReason's list. */
  problems: Uint8Array = new Uint8Array(4);

  /** The reason range `i` was rejected, or null when it is good. */
  rangeReason(i: number): XferRangeRejectReason | null {
    const p = this.problems[i]!;
    return p === 0 ? null : XFER_RANGE_REASONS[p - 1]!;
  }

  /** Room for `n` ranges (the arrays grow; their old contents are not kept). */
  reserve(n: number): void {
    if (n <= this.offsets.length) return;
    const size = Math.max(n, 2 * this.offsets.length);
    this.offsets = new Uint32Array(size);
    this.lengths = new Uint32Array(size);
    this.problems = new Uint8Array(size);
  }
}

/**
 * netvsc_receive's checks of a transfer-page packet, from a private copy of the whole VMBus packet
 * (descriptor first, as hv_pkt_iter_first hands it out), into `out`: null when the packet is accepted
 * (its ranges then say which are good), else the packet-level reason. Never throws. Allocates nothing
 * unless the host's trans_id is 2^53 or more or the packet has more ranges than `out` had room for.
 *
 * The copy's offset8/len8 must describe it (hv_pkt_iter_first rewrites them to match the copy); a
 * descriptor that does not is rejected as "xfer-descriptor-invalid", which is the VMBus layer's check
 * and has no netvsc counterpart.
 */
export function scanXferPagePacket(
  pkt: Uint8Array,
  recvBufSize: number,
  recvSectionSize: number,
  headerMinSize: number,
  out: XferPageScan,
): XferPacketRejectReason | null {
  if (pkt.length < VMPACKET_DESCRIPTOR_SIZE) return "xfer-descriptor-invalid";
  const dataOffset = readU16(pkt, 2) * 8;
  const pktLen = readU16(pkt, 4) * 8;
  if (dataOffset > pktLen || pktLen > pkt.length) return "xfer-descriptor-invalid";
  if (pktLen - dataOffset < NVSP_HEADER_SIZE) return "nvsp-header-too-short";
  if (readU32(pkt, dataOffset) !== NVSP_MSG_TYPE.SEND_RNDIS_PKT) return "nvsp-not-rndis-pkt";
  if (dataOffset < headerMinSize) return "xfer-header-too-short";
  const pagesetId = readU16(pkt, 16);
  if (pagesetId !== XFER_PAGESET_ID) return "xfer-pageset-id-invalid";
  const count = readU32(pkt, 20);
  if (xferHeaderSize(count) > dataOffset) return "xfer-range-count-invalid";
  out.reserve(count);
  const { offsets, lengths, problems } = out;
  let status: number = NVSP_STATUS.SUCCESS;
  for (let i = 0; i < count; i++) {
    const at = XFER_PAGE_HEADER_SIZE + i * XFER_PAGE_RANGE_SIZE;
    const length = readU32(pkt, at);
    const offset = readU32(pkt, at + 4);
    offsets[i] = offset;
    lengths[i] = length;
    // Written as the kernel writes it so the subtraction cannot wrap: offset first, then the rest.
    if (offset > recvBufSize || length > recvBufSize - offset) {
      problems[i] = 1;
      status = NVSP_STATUS.FAIL;
    } else if (length > recvSectionSize) {
      problems[i] = 2;
      status = NVSP_STATUS.FAIL;
    } else {
      problems[i] = 0;
    }
  }
  const small = readU64NumberAt(pkt, 8);
  out.transactionId = small >= 0 ? small : readU64(pkt, 8);
  out.flags = readU16(pkt, 6);
  out.pagesetId = pagesetId;
  out.senderOwnsSet = pkt[18] ?? 0;
  out.count = count;
  out.status = status;
  return null;
}

/**
 * Validate a transfer-page packet the way netvsc_receive does (see {@link scanXferPagePacket}, which
 * makes the checks), as a result with one object per range and the kernel's log line on a rejection.
 * Never throws; never reports a good range outside [0, recvBufSize) or longer than the section size.
 */
export function validateXferPagePacket(
  pkt: Uint8Array,
  sizes: ReceiveBufferSizes,
  headerMinSize: number = XFER_PAGE_HEADER_MIN_SIZE,
): NetvscResult<XferPagePacket, XferPacketRejectReason> {
  const scan = new XferPageScan();
  const problem = scanXferPagePacket(pkt, sizes.recvBufSize, sizes.recvSectionSize, headerMinSize, scan);
  if (problem !== null) return reject("EINVAL", problem, xferRejectMessage(pkt, problem));
  const ranges: XferRange[] = [];
  for (let i = 0; i < scan.count; i++) {
    const offset = scan.offsets[i]!;
    const length = scan.lengths[i]!;
    const reason = scan.rangeReason(i);
    ranges.push(
      reason === null
        ? { index: i, ok: true, offset, length }
        : { index: i, ok: false, offset, length, reason },
    );
  }
  const tid = scan.transactionId;
  return ok({
    transactionId: typeof tid === "bigint" ? tid : BigInt(tid),
    flags: scan.flags,
    pagesetId: scan.pagesetId,
    senderOwnsSet: scan.senderOwnsSet,
    ranges,
    status: scan.status,
  });
}

/** The kernel's log line for a packet-level rejection, from the packet's fields (built only then). */
function xferRejectMessage(pkt: Uint8Array, problem: XferPacketRejectReason): string {
  if (problem === "xfer-descriptor-invalid") {
    if (pkt.length < VMPACKET_DESCRIPTOR_SIZE) return `packet of ${pkt.length} bytes has no descriptor`;
    return `offset ${readU16(pkt, 2) * 8} len ${readU16(pkt, 4) * 8} copy ${pkt.length}`;
  }
  const dataOffset = readU16(pkt, 2) * 8;
  switch (problem) {
    case "nvsp-header-too-short":
      return `invalid nvsp header, length too small: ${readU16(pkt, 4) * 8 - dataOffset}`;
    case "nvsp-not-rndis-pkt":
      return `Unknown nvsp packet type received ${readU32(pkt, dataOffset)}`;
    case "xfer-header-too-short":
      return `Invalid xfer page pkt, offset too small: ${dataOffset}`;
    case "xfer-pageset-id-invalid":
      return `Invalid xfer page set id - expecting cafe got ${readU16(pkt, 16)}`;
    case "xfer-range-count-invalid":
      return `Range count is not valid: ${readU32(pkt, 20)}`;
  }
}

/** The NVSP part a transfer-page packet carries by default: SEND_RNDIS_PKT on the data channel. */
let defaultNvsp: Uint8Array | undefined;

function defaultRndisPkt(): Uint8Array {
  defaultNvsp ??= encodeNvspMessage({
    kind: "send-rndis-pkt",
    channelType: 0,
    sendBufSectionIndex: 0xffff_ffff,
    sendBufSectionSize: 0,
  });
  return defaultNvsp;
}

/** What a transfer-page packet carries: {@link encodeXferPagePacket}'s and {@link writeXferPagePacket}'s input. */
export interface XferPageInput {
  /** trans_id, echoed in the completion: a u64 (a number below 2^53 makes no BigInt). */
  readonly transactionId: bigint | number;
  readonly ranges: readonly { readonly offset: number; readonly length: number }[];
  /** How many of `ranges` (from the first) are the packet's; all of them by default. */
  readonly rangeCount?: number;
  readonly pagesetId?: number;
  readonly flags?: number;
  /** The NVSP message after the ranges; a 40-byte SEND_RNDIS_PKT on the data channel by default. */
  readonly nvsp?: Uint8Array;
}

/**
 * The length of a transfer-page packet with `rangeCount` ranges and an NVSP part of `nvspLength` bytes:
 * the buffer {@link writeXferPagePacket} writes. Throws a RangeError when len8 cannot describe it.
 */
export function xferPagePacketSize(rangeCount: number, nvspLength: number): number {
  const len8 = Math.ceil((xferHeaderSize(rangeCount) + nvspLength) / 8);
  if (len8 > 0xffff) throw new RangeError(`transfer-page packet of ${len8 * 8} bytes is too long`);
  return len8 * 8;
}

/**
 * Build a transfer-page packet as a host would (for the simulated netvsp and tests): descriptor, xfer
 * header, ranges, then an NVSP SEND_RNDIS_PKT (40 bytes unless `nvsp` is given), padded to 8 bytes.
 */
export function encodeXferPagePacket(
  input: XferPageInput & {
    /** Write into this buffer (when it is large enough) instead of a new one; the result is a view of it. */
    readonly into?: Uint8Array;
  },
): Uint8Array {
  const nvsp = input.nvsp ?? defaultRndisPkt();
  const size = xferPagePacketSize(input.rangeCount ?? input.ranges.length, nvsp.length);
  const into = input.into;
  let out: Uint8Array;
  if (into !== undefined && into.length >= size) out = into.length === size ? into : into.subarray(0, size);
  else out = new Uint8Array(size);
  writeXfer(out, input, nvsp);
  return out;
}

/**
 * encodeXferPagePacket's bytes written into `out`, whose length must be the packet's
 * ({@link xferPagePacketSize}), with the same checks: for a host that reuses one buffer and one input
 * object, it allocates nothing. Throws a RangeError for a value its field cannot hold or a buffer of
 * the wrong length.
 */
export function writeXferPagePacket(out: Uint8Array, input: XferPageInput): void {
  const nvsp = input.nvsp ?? defaultRndisPkt();
  const size = xferPagePacketSize(input.rangeCount ?? input.ranges.length, nvsp.length);
  if (out.length !== size)
    throw new RangeError(`transfer-page packet of ${size} bytes, buffer of ${out.length}`);
  writeXfer(out, input, nvsp);
}

/** The checked fields into `out` (the packet's exact length): ranges after the header VMBus writes. */
function writeXfer(out: Uint8Array, input: XferPageInput, nvsp: Uint8Array): void {
  const pagesetId = checkU16("pagesetId", input.pagesetId ?? XFER_PAGESET_ID);
  const ranges = input.ranges;
  const count = input.rangeCount ?? ranges.length;
  if (!Number.isInteger(count) || count < 0 || count > ranges.length)
    throw new RangeError(`rangeCount ${count} of ${ranges.length} ranges`);
  for (let i = 0; i < count; i++) {
    const r = ranges[i]!;
    checkU32("length", r.length);
    checkU32("offset", r.offset);
  }
  const tid = input.transactionId;
  if (typeof tid === "bigint") checkU64("transactionId", tid);
  else if (!Number.isSafeInteger(tid) || tid < 0)
    throw new RangeError(`transactionId is not a u64 below 2^53: ${tid}`);
  const flags = checkU16("flags", input.flags ?? VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED);
  writeTransferPagePacket(out, pagesetId, false, count, tid, flags, nvsp);
  for (let i = 0; i < count; i++) {
    const r = ranges[i]!;
    writeTransferPageRange(out, i, r.length, r.offset);
  }
}
