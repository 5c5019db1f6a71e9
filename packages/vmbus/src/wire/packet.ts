/**
 * VMBus ring packets (include/linux/hyperv.h, drivers/hv/channel.c): the 16-byte vmpacket_descriptor
 * every packet starts with, and the packet forms the model sends: in-band data, GPA-direct page
 * buffers (vmbus_sendpacket_pagebuffer), multi-page-buffer descriptors (vmbus_sendpacket_mpb_desc),
 * transfer-page packets (the host's receive path) and completions.
 */
import { err, invariant, ok, type Result } from "../errors.js";
import {
  align8,
  readU16,
  readU32,
  readU64BigInt,
  readU64NumberAt,
  writeU16,
  writeU32,
  writeU64BigInt,
  writeU64NumberAt,
} from "./bytes.js";
import { HV_HYP_PAGE_SIZE } from "./gpadl.js";

/** enum vmbus_packet_type. Other values stay representable as plain numbers. */
export const VM_PKT = {
  INVALID: 0x0,
  SYNCH: 0x1,
  ADD_XFER_PAGESET: 0x2,
  RM_XFER_PAGESET: 0x3,
  ESTABLISH_GPADL: 0x4,
  TEARDOWN_GPADL: 0x5,
  DATA_INBAND: 0x6,
  DATA_USING_XFER_PAGES: 0x7,
  DATA_USING_GPADL: 0x8,
  DATA_USING_GPA_DIRECT: 0x9,
  CANCEL_REQUEST: 0xa,
  COMP: 0xb,
  DATA_USING_ADDITIONAL_PKT: 0xc,
  ADDITIONAL_DATA: 0xd,
} as const;
export type VmPacketType = (typeof VM_PKT)[keyof typeof VM_PKT];

export const VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED = 1;

/** sizeof(struct vmpacket_descriptor). */
export const VMPACKET_DESCRIPTOR_SIZE = 16;

/*
 * Transaction ids are u64 on the wire and the host may send any value, including the kernel's
 * sentinels near U64_MAX, so they are bigint here (the one place a u64 really needs it).
 */
/** VMBUS_NO_RQSTOR: the channel has no request table. */
export const VMBUS_NO_RQSTOR: bigint = 0xffff_ffff_ffff_ffffn;
/** VMBUS_RQST_ERROR: table full / id not outstanding; also the placeholder trans_id before the write. */
export const VMBUS_RQST_ERROR: bigint = 0xffff_ffff_ffff_fffen;
/** VMBUS_RQST_ID_NO_RESPONSE (netvsc). */
export const VMBUS_RQST_ID_NO_RESPONSE: bigint = 0xffff_ffff_ffff_fffdn;

/** struct vmpacket_descriptor; offset8/len8 count 8-byte units from the descriptor's start. */
export interface PacketDescriptor {
  readonly type: number;
  readonly offset8: number;
  readonly len8: number;
  readonly flags: number;
  readonly transId: bigint;
}

export function readPacketDescriptor(bytes: Uint8Array, offset = 0): PacketDescriptor {
  invariant(offset + VMPACKET_DESCRIPTOR_SIZE <= bytes.length, "descriptor past the end of the buffer");
  return {
    type: readU16(bytes, offset),
    offset8: readU16(bytes, offset + 2),
    len8: readU16(bytes, offset + 4),
    flags: readU16(bytes, offset + 6),
    transId: readU64BigInt(bytes, offset + 8),
  };
}

/**
 * A PacketDescriptor refilled from each packet a reader copies ({@link PacketDescriptorReader.read}),
 * for a per-packet path that makes no object and no BigInt per packet: valid while the bytes it was
 * read from stay unchanged. transId, a bigint, is read from those bytes only when asked for;
 * transIdNumber is the same u64 as a number, or −1 when it is 2^53 or more.
 */
export class PacketDescriptorReader implements PacketDescriptor {
  type = 0;
  offset8 = 0;
  len8 = 0;
  flags = 0;
  transIdNumber = 0;
  #bytes: Uint8Array = new Uint8Array(VMPACKET_DESCRIPTOR_SIZE);
  #at = 0;

  get transId(): bigint {
    return readU64BigInt(this.#bytes, this.#at + 8);
  }

  /** readPacketDescriptor's fields, into this object (the same checks). */
  read(bytes: Uint8Array, offset = 0): this {
    invariant(offset + VMPACKET_DESCRIPTOR_SIZE <= bytes.length, "descriptor past the end of the buffer");
    this.type = readU16(bytes, offset);
    this.offset8 = readU16(bytes, offset + 2);
    this.len8 = readU16(bytes, offset + 4);
    this.flags = readU16(bytes, offset + 6);
    this.transIdNumber = readU64NumberAt(bytes, offset + 8);
    this.#bytes = bytes;
    this.#at = offset;
    return this;
  }
}

export function writePacketDescriptor(bytes: Uint8Array, offset: number, d: PacketDescriptor): void {
  invariant(
    offset >= 0 && offset + VMPACKET_DESCRIPTOR_SIZE <= bytes.length,
    "descriptor past the end of the buffer",
  );
  writeU16(bytes, offset, d.type);
  writeU16(bytes, offset + 2, d.offset8);
  writeU16(bytes, offset + 4, d.len8);
  writeU16(bytes, offset + 6, d.flags);
  writeU64BigInt(bytes, offset + 8, d.transId);
}

/** Largest packet a u16 len8 can describe. */
export const MAX_PACKET_LEN: number = 0xffff * 8;

/**
 * A simple packet (descriptor + payload + zero padding to 8), as vmbus_sendpacket lays it out:
 * offset8 = 2, len8 = ALIGN(16 + len, 8) / 8.
 */
export function encodeInbandPacket(
  type: number,
  flags: number,
  transId: bigint,
  payload: Uint8Array,
): Uint8Array {
  const len = align8(VMPACKET_DESCRIPTOR_SIZE + payload.length);
  if (len > MAX_PACKET_LEN) invariant(false, `packet of ${len} bytes does not fit len8`);
  const out = new Uint8Array(len);
  writePacketDescriptor(out, 0, {
    type,
    offset8: VMPACKET_DESCRIPTOR_SIZE / 8,
    len8: len / 8,
    flags,
    transId,
  });
  out.set(payload, VMPACKET_DESCRIPTOR_SIZE);
  return out;
}

/** A VM_PKT_COMP completion carrying `payload` for the request `transId` (flags 0). */
export function encodeCompletionPacket(transId: bigint, payload: Uint8Array): Uint8Array {
  return encodeInbandPacket(VM_PKT.COMP, 0, transId, payload);
}

/* ---- GPA direct: page buffers ------------------------------------------------------------- */

/** struct hv_page_buffer: len u32, offset u32, pfn u64 (16 bytes). */
export interface HvPageBuffer {
  readonly len: number;
  readonly offset: number;
  readonly pfn: number;
}

export const MAX_PAGE_BUFFER_COUNT = 32;
export const MAX_MULTIPAGE_BUFFER_COUNT = 32;
/** vmbus_channel_packet_page_buffer / _mpb_array header: descriptor + reserved u32 + rangecount u32. */
export const GPA_DIRECT_HEADER_SIZE = 24;
export const HV_PAGE_BUFFER_SIZE = 16;
/** MAX_PAGE_BUFFER_PACKET = 0x18 + 16·32. */
export const MAX_PAGE_BUFFER_PACKET: number =
  GPA_DIRECT_HEADER_SIZE + HV_PAGE_BUFFER_SIZE * MAX_PAGE_BUFFER_COUNT;

/**
 * The descriptor part of vmbus_sendpacket_pagebuffer (removed upstream in 2025, kept for the older
 * eras): type 9, flags COMPLETION_REQUESTED, dataoffset8 = descsize/8, length8 =
 * ALIGN(descsize + dataLen, 8)/8, one 16-byte entry per page buffer. More than 32 → EINVAL.
 * The caller sends it followed by `dataLen` bytes of data and the padding.
 */
export function encodePageBufferDescriptor(
  pageBuffers: readonly HvPageBuffer[],
  dataLen: number,
  requestId: bigint,
): Result<Uint8Array> {
  if (pageBuffers.length > MAX_PAGE_BUFFER_COUNT) {
    return err("EINVAL", "too-many-page-buffers", `${pageBuffers.length} page buffers, at most 32`);
  }
  const out = new Uint8Array(pageBufferDescriptorSize(pageBuffers.length));
  writePageBufferDescriptor(out, pageBuffers, dataLen, requestId);
  return ok(out);
}

/** The descriptor size of a page-buffer packet with `count` entries: 24 + 16·count. */
export function pageBufferDescriptorSize(count: number): number {
  return GPA_DIRECT_HEADER_SIZE + HV_PAGE_BUFFER_SIZE * count;
}

/**
 * encodePageBufferDescriptor's bytes written into `out` (at least pageBufferDescriptorSize bytes; the
 * caller checked the count): for a sender that reuses one buffer.
 */
export function writePageBufferDescriptor(
  out: Uint8Array,
  pageBuffers: readonly HvPageBuffer[],
  dataLen: number,
  requestId: bigint,
): void {
  const descSize = pageBufferDescriptorSize(pageBuffers.length);
  invariant(out.length >= descSize, "page-buffer descriptor past the end of the buffer");
  writePacketDescriptor(out, 0, {
    type: VM_PKT.DATA_USING_GPA_DIRECT,
    offset8: descSize >> 3,
    len8: align8(descSize + dataLen) >> 3,
    flags: VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
    transId: requestId,
  });
  writeU32(out, 16, 0); // reserved
  writeU32(out, 20, pageBuffers.length);
  for (let i = 0; i < pageBuffers.length; i++) {
    const pb = pageBuffers[i]!;
    const at = GPA_DIRECT_HEADER_SIZE + HV_PAGE_BUFFER_SIZE * i;
    writeU32(out, at, pb.len);
    writeU32(out, at + 4, pb.offset);
    writeU64NumberAt(out, at + 8, pb.pfn);
  }
}

/* ---- GPA direct: multi-page-buffer ranges -------------------------------------------------- */

/** struct hv_mpb_array: len, offset (into the first page), then HVPFN_UP(offset + len) PFNs. */
export interface MpbRange {
  readonly len: number;
  readonly offset: number;
  readonly pfns: readonly number[];
}

/** Pages a range of `len` bytes at `offset` into its first page spans. */
export function pagesSpanned(offset: number, len: number): number {
  return Math.ceil((offset + len) / HV_HYP_PAGE_SIZE);
}

/**
 * Coalesces page-buffer fragments into mpb ranges the way the 2025 netvsc rework requires: a fragment
 * that starts exactly where the previous one ended in guest-physical memory extends the same range,
 * so a buffer crossing a page boundary becomes one range with consecutive PFNs (Hyper-V rejects one
 * PFN per range for such a buffer). A discontiguous fragment starts a new range.
 */
export function mpbRangesFromPageBuffers(fragments: readonly HvPageBuffer[]): MpbRange[] {
  const ranges: { len: number; offset: number; pfns: number[] }[] = [];
  let cur: { len: number; offset: number; pfns: number[] } | undefined;
  for (const f of fragments) {
    invariant(f.len > 0 && f.offset >= 0 && f.offset < HV_HYP_PAGE_SIZE, "page buffer fragment out of range");
    if (cur !== undefined) {
      const curEnd = cur.pfns[0]! * HV_HYP_PAGE_SIZE + cur.offset + cur.len;
      if (curEnd === f.pfn * HV_HYP_PAGE_SIZE + f.offset) {
        cur.len += f.len;
        const need = pagesSpanned(cur.offset, cur.len);
        while (cur.pfns.length < need) cur.pfns.push(cur.pfns[0]! + cur.pfns.length);
        continue;
      }
    }
    const pfns: number[] = [];
    for (let i = 0; i < pagesSpanned(f.offset, f.len); i++) pfns.push(f.pfn + i);
    cur = { len: f.len, offset: f.offset, pfns };
    ranges.push(cur);
  }
  return ranges;
}

/**
 * The descriptor of vmbus_sendpacket_mpb_desc: type 9, flags COMPLETION_REQUESTED, reserved 0,
 * rangecount = ranges (set by the caller since 2025), then each range {len, offset, pfn[]}.
 * The trans_id is the VMBUS_RQST_ERROR placeholder; hv_ringbuffer_write fills it in.
 */
export function encodeMpbDescriptor(ranges: readonly MpbRange[], dataLen: number): Uint8Array {
  let descSize = GPA_DIRECT_HEADER_SIZE;
  for (const r of ranges) {
    invariant(r.pfns.length === pagesSpanned(r.offset, r.len), "mpb range PFN count must match offset + len");
    descSize += 8 + 8 * r.pfns.length;
  }
  const out = new Uint8Array(descSize);
  writePacketDescriptor(out, 0, {
    type: VM_PKT.DATA_USING_GPA_DIRECT,
    offset8: descSize >> 3,
    len8: align8(descSize + dataLen) >> 3,
    flags: VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
    transId: VMBUS_RQST_ERROR,
  });
  writeU32(out, 20, ranges.length);
  let at = GPA_DIRECT_HEADER_SIZE;
  for (const r of ranges) {
    writeU32(out, at, r.len);
    writeU32(out, at + 4, r.offset);
    at += 8;
    for (const pfn of r.pfns) {
      writeU64NumberAt(out, at, pfn);
      at += 8;
    }
  }
  return out;
}

export interface GpaDirectRange {
  readonly len: number;
  readonly offset: number;
  readonly pfns: Float64Array;
}

export interface GpaDirectPacket {
  readonly desc: PacketDescriptor;
  readonly ranges: readonly GpaDirectRange[];
  /** The in-band data after the descriptor area (offset8·8 .. len8·8). */
  readonly data: Uint8Array;
}

/**
 * Host-side parse of a VM_PKT_DATA_USING_GPA_DIRECT packet (page-buffer or mpb form: a page buffer
 * is a range with one PFN). Checks what OpenVMM's test_malformed_gpa_direct_packet covers: header
 * too short, zero range count, ranges past the descriptor area, offsets past a page. The result is the
 * caller's to keep; a per-packet path uses a {@link GpaDirectReader} instead.
 */
export function decodeGpaDirectPacket(pkt: Uint8Array): Result<GpaDirectPacket> {
  const r = new GpaDirectReader().read(pkt);
  if (!r.ok) return r;
  // A fresh reader's ranges are nobody else's; the descriptor is made a plain one (its transId a field).
  return ok({ desc: readPacketDescriptor(pkt), ranges: r.value.ranges, data: r.value.data });
}

/** One range of a GpaDirectReader's packet, refilled by its next read. */
interface GpaDirectRangeSlot {
  len: number;
  offset: number;
  pfns: Float64Array;
}

/**
 * decodeGpaDirectPacket into objects kept between calls, for the host's per-packet parse: the result,
 * its descriptor (a PacketDescriptorReader), its ranges and their PFN arrays are valid until the next
 * read. While the packets keep their shape (range count, PFNs per range) nothing is allocated.
 */
export class GpaDirectReader {
  readonly #desc = new PacketDescriptorReader();
  /** Every range slot made so far; `#ranges` holds the current packet's first rangeCount of them. */
  readonly #slots: GpaDirectRangeSlot[] = [];
  readonly #ranges: GpaDirectRangeSlot[] = [];
  readonly #value: { desc: PacketDescriptor; ranges: readonly GpaDirectRange[]; data: Uint8Array } = {
    desc: this.#desc,
    ranges: this.#ranges,
    data: new Uint8Array(0),
  };
  readonly #ok: Result<GpaDirectPacket> = ok(this.#value);
  /** The packet and the bounds the data view was last made for. */
  #dataOf: Uint8Array | undefined;
  #dataStart = -1;
  #dataEnd = -1;

  read(pkt: Uint8Array): Result<GpaDirectPacket> {
    if (pkt.length < GPA_DIRECT_HEADER_SIZE)
      return err("EPROTO", "short-packet", "GPA direct header truncated");
    const desc = this.#desc.read(pkt);
    const headerEnd = desc.offset8 * 8;
    const end = desc.len8 * 8;
    if (headerEnd < GPA_DIRECT_HEADER_SIZE || headerEnd > end || end > pkt.length) {
      return err("EPROTO", "bad-offsets", `offset8 ${desc.offset8}, len8 ${desc.len8}, ${pkt.length} bytes`);
    }
    const rangeCount = readU32(pkt, 20);
    if (rangeCount === 0) return err("EPROTO", "zero-range-count", "GPA direct packet without ranges");
    const ranges = this.#ranges;
    // emptied by pops: `length = 0` would give up the array's storage, to be grown again per packet
    while (ranges.length > 0) ranges.pop();
    let at = GPA_DIRECT_HEADER_SIZE;
    for (let r = 0; r < rangeCount; r++) {
      if (at + 8 > headerEnd) return err("EPROTO", "ranges-overflow", `range ${r} past the descriptor area`);
      const len = readU32(pkt, at);
      const offset = readU32(pkt, at + 4);
      at += 8;
      if (len === 0 || offset >= HV_HYP_PAGE_SIZE) {
        return err("EPROTO", "bad-range", `range ${r}: offset ${offset}, len ${len}`);
      }
      const n = pagesSpanned(offset, len);
      if (at + 8 * n > headerEnd)
        return err("EPROTO", "ranges-overflow", `range ${r} PFNs past the descriptor area`);
      const slot = this.#slot(r, n);
      const pfns = slot.pfns;
      for (let i = 0; i < n; i++, at += 8) {
        const pfn = readU64NumberAt(pkt, at);
        if (pfn < 0) return err("EPROTO", "u64-out-of-range", `range ${r} PFN ${i} is 2^53 or more`);
        pfns[i] = pfn;
      }
      slot.len = len;
      slot.offset = offset;
      ranges.push(slot);
    }
    if (pkt !== this.#dataOf || headerEnd !== this.#dataStart || end !== this.#dataEnd) {
      this.#value.data = pkt.subarray(headerEnd, end);
      this.#dataOf = pkt;
      this.#dataStart = headerEnd;
      this.#dataEnd = end;
    }
    return this.#ok;
  }

  /** Range slot `r` with a PFN array of exactly `n` entries (made again only when n changes). */
  #slot(r: number, n: number): GpaDirectRangeSlot {
    let slot = this.#slots[r];
    if (slot === undefined) {
      slot = { len: 0, offset: 0, pfns: new Float64Array(n) };
      this.#slots.push(slot);
    } else if (slot.pfns.length !== n) slot.pfns = new Float64Array(n);
    return slot;
  }
}

/* ---- transfer-page packets (host → guest receive path) -------------------------------------- */

/** vmtransfer_page_packet_header: descriptor + pageset_id u16 + sender_owns u8 + rsvd u8 + range_cnt u32. */
export const XFER_PAGE_HEADER_SIZE = 24;

/** struct vmtransfer_page_range. */
export interface TransferPageRange {
  readonly byteCount: number;
  readonly byteOffset: number;
}

export interface TransferPagePacket {
  readonly desc: PacketDescriptor;
  readonly pagesetId: number;
  readonly senderOwns: boolean;
  readonly ranges: readonly TransferPageRange[];
}

/** Bytes of a transfer-page packet with `rangeCount` ranges and a payload of `payloadLength` bytes. */
export function transferPagePacketSize(rangeCount: number, payloadLength: number): number {
  return Math.ceil((XFER_PAGE_HEADER_SIZE + 8 * rangeCount + payloadLength) / 8) * 8;
}

/**
 * A VM_PKT_DATA_USING_XFER_PAGES packet: offset8 = (24 + 8n)/8, then the device's `payload` (netvsc's
 * NVSP message; none by default, so len8 = offset8), padded to 8 bytes. The one encoder of this packet.
 */
export function encodeTransferPagePacket(p: {
  readonly pagesetId: number;
  readonly senderOwns: boolean;
  readonly ranges: readonly TransferPageRange[];
  readonly transId: bigint;
  readonly flags: number;
  readonly payload?: Uint8Array;
  /**
   * Where to write the packet (its first `size` bytes, zeroed first) instead of a new buffer: for a
   * sender that copies it into the ring at once. The result is then a view of it.
   */
  readonly into?: Uint8Array;
}): Uint8Array {
  const size = transferPagePacketSize(p.ranges.length, p.payload?.length ?? 0);
  invariant(size <= MAX_PACKET_LEN, "transfer page packet too large");
  let out: Uint8Array;
  if (p.into !== undefined && p.into.length >= size) {
    out = p.into.length === size ? p.into : p.into.subarray(0, size);
  } else out = new Uint8Array(size);
  writeTransferPagePacket(out, p.pagesetId, p.senderOwns, p.ranges.length, p.transId, p.flags, p.payload);
  for (let i = 0; i < p.ranges.length; i++) {
    const r = p.ranges[i]!;
    writeTransferPageRange(out, i, r.byteCount, r.byteOffset);
  }
  return out;
}

/**
 * encodeTransferPagePacket's bytes written into `out`, whose length is the packet's
 * (transferPagePacketSize): the descriptor, the header and the payload, every other byte zeroed. The
 * caller then writes each of the `rangeCount` ranges with {@link writeTransferPageRange}. For a sender
 * that reuses one buffer: no object per packet, and a number trans_id below 2^53 makes no BigInt.
 */
export function writeTransferPagePacket(
  out: Uint8Array,
  pagesetId: number,
  senderOwns: boolean,
  rangeCount: number,
  transId: number | bigint,
  flags: number,
  payload?: Uint8Array,
): void {
  const header = XFER_PAGE_HEADER_SIZE + 8 * rangeCount;
  const size = out.length;
  invariant(
    size <= MAX_PACKET_LEN && size === transferPagePacketSize(rangeCount, payload?.length ?? 0),
    "transfer page packet buffer of the wrong size",
  );
  out.fill(0);
  if (payload) out.set(payload, header);
  writeU16(out, 0, VM_PKT.DATA_USING_XFER_PAGES);
  writeU16(out, 2, header >> 3);
  writeU16(out, 4, size >> 3);
  writeU16(out, 6, flags);
  if (typeof transId === "number") writeU64NumberAt(out, 8, transId);
  else writeU64BigInt(out, 8, transId);
  writeU16(out, 16, pagesetId);
  out[18] = senderOwns ? 1 : 0;
  writeU32(out, 20, rangeCount);
}

/** Range `i` (byte_count, byte_offset) of a transfer-page packet written by writeTransferPagePacket. */
export function writeTransferPageRange(
  out: Uint8Array,
  i: number,
  byteCount: number,
  byteOffset: number,
): void {
  const at = XFER_PAGE_HEADER_SIZE + 8 * i;
  writeU32(out, at, byteCount);
  writeU32(out, at + 4, byteOffset);
}

/**
 * Parses a transfer-page packet from the guest's private copy. range_cnt must be at least 1 and its
 * ranges must lie inside the packet (OpenVMM's test_malformed_transfer_page_packet cases); whether
 * each range lies inside the receive buffer is the device's check (netvsc), not this layer's.
 */
export function decodeTransferPagePacket(pkt: Uint8Array): Result<TransferPagePacket> {
  if (pkt.length < XFER_PAGE_HEADER_SIZE)
    return err("EPROTO", "short-packet", "transfer page header truncated");
  const desc = readPacketDescriptor(pkt);
  const rangeCount = readU32(pkt, 20);
  if (rangeCount === 0) return err("EPROTO", "zero-range-count", "transfer page packet without ranges");
  const limit = Math.min(pkt.length, desc.len8 * 8);
  if (rangeCount > (limit - XFER_PAGE_HEADER_SIZE) / 8) {
    return err("EPROTO", "ranges-overflow", `${rangeCount} ranges do not fit in ${limit} bytes`);
  }
  const ranges: TransferPageRange[] = [];
  for (let i = 0; i < rangeCount; i++) {
    const at = XFER_PAGE_HEADER_SIZE + 8 * i;
    ranges.push({ byteCount: readU32(pkt, at), byteOffset: readU32(pkt, at + 4) });
  }
  return ok({ desc, pagesetId: readU16(pkt, 16), senderOwns: pkt[18] !== 0, ranges });
}
