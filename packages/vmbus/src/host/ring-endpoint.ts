/**
 * The host's end of a channel's pair of rings, over the same RingMem contract (later: the host view
 * of the GPADL pages). It reads the guest's outbound ring strictly, as OpenVMM's vmbus_ring does: a
 * descriptor that does not fit is a corrupt ring, reported and not consumed. It writes the inbound
 * ring with the same code and the same "never exactly full" rule the guest uses.
 */
import type { Result } from "../errors.js";
import { OutgoingRing, type RingWriteOk } from "../ring/outgoing.js";
import { bytesToRead, bytesToWrite, checkRingIndex, type RingMem } from "../ring/ring-mem.js";
import { readU16, readU32, readU64BigInt, readU64NumberAt, writeU16 } from "../wire/bytes.js";
import {
  encodeTransferPagePacket,
  type PacketDescriptor,
  PacketDescriptorReader,
  readPacketDescriptor,
  type TransferPageRange,
  VM_PKT,
  VMPACKET_DESCRIPTOR_SIZE,
} from "../wire/packet.js";
import { RING_FEAT_PENDING_SEND_SZ, RING_HEADER, VMBUS_PKT_TRAILER } from "../wire/ring-header.js";

export type HostRingProblem =
  | "out-of-range"
  | "misaligned"
  /** Fewer bytes published than a descriptor plus trailer. */
  | "short"
  | "bad-length"
  | "bad-offset"
  /** The descriptor's length (plus trailer) runs past the published write index. */
  | "overrun";

export interface HostPacket {
  readonly desc: PacketDescriptor;
  /** A host-owned copy of the whole packet (len8·8 bytes). */
  readonly bytes: Uint8Array;
  readonly data: Uint8Array;
  /** Ring offset the packet started at. */
  readonly offset: number;
  /**
   * desc.transId as a number, or −1 when the guest wrote a value of 2^53 or more (then read
   * desc.transId): a per-packet path matches its own ids with it and makes no BigInt.
   */
  readonly transIdNumber: number;
}

export type HostReadResult =
  | { readonly kind: "packet"; readonly packet: HostPacket }
  | { readonly kind: "empty" }
  | { readonly kind: "corrupt"; readonly problem: HostRingProblem };

export interface HostRingEndpointCounters {
  packetsRead: number;
  bytesRead: number;
  corrupt: Record<HostRingProblem, number>;
  /** Packets whose trailer was not (u64)start << 32. Counted, not fatal (nobody checks it). */
  trailerMismatch: number;
  /** Signals owed to the guest after freeing outbound space it was waiting for. */
  signalsToGuest: number;
}

export interface HostRingEndpointOptions {
  /** The guest → host ring (the guest's outbound). */
  readonly fromGuest: RingMem;
  /** The host → guest ring (the guest's inbound). */
  readonly toGuest: RingMem;
}

const EMPTY: HostReadResult = { kind: "empty" };

/** Bytes readPacketTransient fetches in its first access (a small packet and its trailer fit). */
const PREFETCH = 256;

/** What is wrong with a descriptor's len8·8 and offset8·8 given the bytes published, if anything. */
function packetProblem(len: number, off: number, avail: number): HostRingProblem | undefined {
  if (len < VMPACKET_DESCRIPTOR_SIZE) return "bad-length";
  if (off < VMPACKET_DESCRIPTOR_SIZE || off > len) return "bad-offset";
  if (len + VMBUS_PKT_TRAILER > avail) return "overrun";
  return undefined;
}

export class HostRingEndpoint {
  readonly fromGuest: RingMem;
  readonly toGuest: RingMem;
  readonly writer: OutgoingRing;
  readonly counters: HostRingEndpointCounters = {
    packetsRead: 0,
    bytesRead: 0,
    corrupt: { "out-of-range": 0, misaligned: 0, short: 0, "bad-length": 0, "bad-offset": 0, overrun: 0 },
    trailerMismatch: 0,
    signalsToGuest: 0,
  };
  private readPos: number;
  private readonly trailer = new Uint8Array(VMBUS_PKT_TRAILER);
  private readonly head = new Uint8Array(VMPACKET_DESCRIPTOR_SIZE);
  /** readPacketTransient's copy of the packet (grown as needed) and the views of its last length. */
  private scratch = new Uint8Array(2 * PREFETCH);
  private prefetch = this.scratch.subarray(0, 0);
  /** The views of the scratch's first n bytes (n ≤ PREFETCH) made so far, by n: a view per length, once. */
  private prefetchViews: (Uint8Array<ArrayBuffer> | undefined)[] = [];
  private scratchBytes = this.scratch.subarray(0, 0);
  private scratchData = this.scratchBytes;
  /** The scratch scratchBytes views and where scratchData starts in it (typed-array getters cost more). */
  private scratchBytesOf = this.scratch;
  private scratchDataAt = 0;
  /** The packet readPacketTransient hands out, refilled (its descriptor read from the copy in place). */
  private readonly transient: {
    readonly desc: PacketDescriptorReader;
    bytes: Uint8Array;
    data: Uint8Array;
    offset: number;
    transIdNumber: number;
  } = {
    desc: new PacketDescriptorReader(),
    bytes: this.scratchBytes,
    data: this.scratchBytes,
    offset: 0,
    transIdNumber: 0,
  };
  private readonly transientResult: HostReadResult = { kind: "packet", packet: this.transient };
  /** The one-piece packet list send() hands the writer (it copies the piece before returning). */
  private readonly sendKv: Uint8Array[] = [this.head];

  constructor(options: HostRingEndpointOptions) {
    this.fromGuest = options.fromGuest;
    this.toGuest = options.toGuest;
    this.writer = new OutgoingRing(options.toGuest);
    const r = this.fromGuest.readHeaderU32(RING_HEADER.READ_INDEX);
    this.readPos = checkRingIndex(this.fromGuest.dataSize, r) === undefined ? r : 0;
  }

  /** Reads the next guest packet into a host-owned copy and advances the host's private read position. */
  readPacket(): HostReadResult {
    const len = this.checkNext();
    if (len <= 0) return len === 0 ? EMPTY : this.lastCorrupt;
    const bytes = new Uint8Array(len);
    const offset = this.copyNext(bytes);
    return {
      kind: "packet",
      packet: {
        desc: readPacketDescriptor(bytes),
        bytes,
        data: bytes.subarray(this.nextOff, len),
        offset,
        transIdNumber: readU64NumberAt(bytes, 8),
      },
    };
  }

  /**
   * readPacket without a new buffer per packet: the same checks, into a buffer this endpoint reuses.
   * The result, the packet and its bytes are valid until the next read of this endpoint: for a reader
   * that handles each packet before it reads the next (netvsp does). The host copies what the guest
   * published once: descriptor, packet and trailer of a packet up to PREFETCH bytes come in one access
   * (a longer one in two), so the descriptor it checks is the one in its copy.
   */
  readPacketTransient(): HostReadResult {
    const avail = this.available();
    if (avail <= 0) return avail === 0 ? EMPTY : this.lastCorrupt;
    const mem = this.fromGuest;
    const dsize = mem.dataSize;
    const first = Math.min(avail, PREFETCH);
    if (this.prefetch.length !== first) {
      let view = this.prefetchViews[first];
      if (view === undefined) {
        view = this.scratch.subarray(0, first);
        this.prefetchViews[first] = view;
      }
      this.prefetch = view;
    }
    mem.read(this.readPos, this.prefetch);
    const scratch = this.scratch;
    const len = readU16(scratch, 4) << 3;
    const off = readU16(scratch, 2) << 3;
    const problem = packetProblem(len, off, avail);
    if (problem !== undefined) return this.corrupt(problem);
    const total = len + VMBUS_PKT_TRAILER;
    if (total > first) {
      if (scratch.length < total) {
        const grown = new Uint8Array(Math.max(total, 2 * scratch.length));
        grown.set(this.prefetch);
        this.scratch = grown;
        this.prefetch = grown.subarray(0, first);
        this.prefetchViews = [];
        this.prefetchViews[first] = this.prefetch;
      }
      let rest = this.readPos + first;
      if (rest >= dsize) rest -= dsize;
      mem.read(rest, this.scratch.subarray(first, total));
    }
    const buf = this.scratch;
    const p = this.transient;
    // Views made again only when the packet's shape changes (a steady stream reuses them).
    if (this.scratchBytes.length !== len || this.scratchBytesOf !== buf) {
      this.scratchBytes = buf.subarray(0, len);
      this.scratchBytesOf = buf;
      this.scratchData = this.scratchBytes.subarray(off, len);
      this.scratchDataAt = off;
    } else if (this.scratchDataAt !== off) {
      this.scratchData = this.scratchBytes.subarray(off, len);
      this.scratchDataAt = off;
    }
    if (readU32(buf, len) !== 0 || readU32(buf, len + 4) !== this.readPos) this.counters.trailerMismatch++;
    p.offset = this.readPos;
    this.readPos += total;
    if (this.readPos >= dsize) this.readPos -= dsize;
    this.counters.packetsRead++;
    this.counters.bytesRead += total;
    p.transIdNumber = p.desc.read(this.scratchBytes).transIdNumber;
    p.bytes = this.scratchBytes;
    p.data = this.scratchData;
    return this.transientResult;
  }

  /** The validated offset of the packet checkNext accepted (its data starts there). */
  private nextOff = 0;
  private lastCorrupt: HostReadResult = EMPTY;

  /**
   * The strict checks of the next packet: its length (> 0), 0 when the ring is empty, or -1 with
   * lastCorrupt set (counted). Nothing is consumed.
   */
  private checkNext(): number {
    const avail = this.available();
    if (avail <= 0) return avail;
    this.fromGuest.read(this.readPos, this.head);
    const len = readU16(this.head, 4) << 3;
    const off = readU16(this.head, 2) << 3;
    const problem = packetProblem(len, off, avail);
    if (problem !== undefined) return this.corruptNext(problem);
    this.nextOff = off;
    return len;
  }

  /**
   * The bytes the guest has published past our read position, checked: 0 when the ring is empty, or -1
   * with lastCorrupt set (counted) for a write_index outside the ring or less than a packet's minimum.
   */
  private available(): number {
    const mem = this.fromGuest;
    const dsize = mem.dataSize;
    const writeIndex = mem.readHeaderU32(RING_HEADER.WRITE_INDEX);
    const indexProblem = checkRingIndex(dsize, writeIndex);
    if (indexProblem !== undefined) return this.corruptNext(indexProblem);
    const avail = bytesToRead(dsize, writeIndex, this.readPos);
    if (avail === 0) return 0;
    if (avail < VMPACKET_DESCRIPTOR_SIZE + VMBUS_PKT_TRAILER) return this.corruptNext("short");
    return avail;
  }

  private corruptNext(problem: HostRingProblem): number {
    this.lastCorrupt = this.corrupt(problem);
    return -1;
  }

  /** Copies the packet checkNext accepted into `bytes` (its length), consumes it; returns its offset. */
  private copyNext(bytes: Uint8Array): number {
    const mem = this.fromGuest;
    const dsize = mem.dataSize;
    const len = bytes.length;
    mem.read(this.readPos, bytes);
    // The copy's length fields are the ones validated above, whatever the ring holds now.
    writeU16(bytes, 2, this.nextOff >>> 3);
    writeU16(bytes, 4, len >>> 3);
    let trailerAt = this.readPos + len;
    if (trailerAt >= dsize) trailerAt -= dsize;
    mem.read(trailerAt, this.trailer);
    if (readU32(this.trailer, 0) !== 0 || readU32(this.trailer, 4) !== this.readPos)
      this.counters.trailerMismatch++;

    const offset = this.readPos;
    this.readPos = trailerAt + VMBUS_PKT_TRAILER;
    if (this.readPos >= dsize) this.readPos -= dsize;
    this.counters.packetsRead++;
    this.counters.bytesRead += len + VMBUS_PKT_TRAILER;
    return offset;
  }

  private corrupt(problem: HostRingProblem): HostReadResult {
    this.counters.corrupt[problem]++;
    return { kind: "corrupt", problem };
  }

  /**
   * Publishes the host's read position (the host side of hv_pkt_iter_close). Returns whether the
   * guest, blocked with pending_send_sz set on its outbound ring, must now be signalled.
   */
  commitRead(): { readonly signal: boolean } {
    const mem = this.fromGuest;
    const dsize = mem.dataSize;
    const start = mem.readHeaderU32(RING_HEADER.READ_INDEX);
    const before = bytesToWrite(dsize, mem.readHeaderU32(RING_HEADER.WRITE_INDEX), start);
    mem.writeHeaderU32(RING_HEADER.READ_INDEX, this.readPos);
    if ((mem.readHeaderU32(RING_HEADER.FEATURE_BITS) & RING_FEAT_PENDING_SEND_SZ) === 0)
      return { signal: false };
    const pending = mem.readHeaderU32(RING_HEADER.PENDING_SEND_SZ);
    if (pending === 0) return { signal: false };
    const after = bytesToWrite(dsize, mem.readHeaderU32(RING_HEADER.WRITE_INDEX), this.readPos);
    // Signal only on the transition from "not enough room" to "enough room".
    const signal = before <= pending && after > pending;
    if (signal) this.counters.signalsToGuest++;
    return { signal };
  }

  /** Writes a prepared packet (descriptor first, length a multiple of 8) into the guest's inbound ring. */
  send(packet: Uint8Array): Result<RingWriteOk> {
    // The packet's own trans_id, a number when it is below 2^53 (no BigInt per packet).
    const small = readU64NumberAt(packet, 8);
    const transId = small >= 0 ? small : readU64BigInt(packet, 8);
    const kv = this.sendKv;
    kv[0] = packet;
    const r = this.writer.write(kv, transId);
    kv[0] = this.head;
    return r;
  }

  /** A VM_PKT_DATA_INBAND packet. */
  sendInband(payload: Uint8Array, transId: bigint, flags = 0): Result<RingWriteOk> {
    return this.writer.sendPacket(payload, { type: VM_PKT.DATA_INBAND, flags, requestId: transId });
  }

  /**
   * A VM_PKT_COMP completion for the guest request `transId`: the bytes of
   * send(encodeCompletionPacket(transId, payload)), written by vmbus_sendpacket's path
   * (OutgoingRing.sendInband: descriptor, payload and padding as pieces) with no packet built per call.
   */
  sendCompletion(transId: bigint, payload: Uint8Array): Result<RingWriteOk> {
    return this.writer.sendInband(payload, VM_PKT.COMP, 0, transId, false, undefined);
  }

  /** A VM_PKT_DATA_USING_XFER_PAGES packet describing ranges of a transfer page set (receive buffer). */
  sendTransferPages(p: {
    readonly pagesetId: number;
    readonly ranges: readonly TransferPageRange[];
    readonly transId: bigint;
    readonly completionRequested?: boolean;
  }): Result<RingWriteOk> {
    return this.send(
      encodeTransferPagePacket({
        pagesetId: p.pagesetId,
        senderOwns: false,
        ranges: p.ranges,
        transId: p.transId,
        flags: p.completionRequested === false ? 0 : 1,
      }),
    );
  }
}
