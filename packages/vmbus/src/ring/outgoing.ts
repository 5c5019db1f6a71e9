/**
 * Writing packets into a ring: mirrors hv_ringbuffer_write (drivers/hv/ring_buffer.c) and the send
 * helpers above it (vmbus_sendpacket_getid, vmbus_sendpacket_mpb_desc). The guest uses it on its
 * outbound ring with a RequestTable; the host endpoint uses the same code on the inbound ring.
 */
import { err, invariant, ok, type Result } from "../errors.js";
import type { RequestTable } from "../request-table.js";
import { align8 } from "../wire/bytes.js";
import {
  MAX_PACKET_LEN,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMBUS_RQST_ERROR,
  VMPACKET_DESCRIPTOR_SIZE,
  writePacketDescriptor,
} from "../wire/packet.js";
import { RING_HEADER, VMBUS_PKT_TRAILER, writeTrailer } from "../wire/ring-header.js";
import { bytesToWrite, checkRingIndex, type RingIndexProblem, type RingMem } from "./ring-mem.js";

export interface RingWriteOk {
  /** The trans_id that went into the ring: the allocated request id, or the caller's requestId. */
  readonly transId: bigint;
  /** hv_signal_on_write: interrupt_mask was 0 and the ring went from empty to non-empty. */
  readonly signal: boolean;
}

export interface OutgoingRingCounters {
  packets: number;
  bytes: number;
  /** channel->out_full_total / out_full_first: writes refused because the ring was full. */
  outFullTotal: number;
  outFullFirst: number;
  /** Writes refused because the request table was full (also -EAGAIN in the kernel). */
  requestTableFull: number;
  /** channel->intr_out_empty: signals raised. */
  signals: number;
  /** Writes refused because a shared index was unusable (the kernel does not check; see checkRingIndex). */
  corrupt: Record<RingIndexProblem, number>;
}

export interface OutgoingRingOptions<T> {
  /** The channel's vmbus_requestor; without it trans_id is the caller's requestId (VMBUS_NO_RQSTOR path). */
  readonly requestTable?: RequestTable<T>;
}

export interface SendOptions<T> {
  readonly type: number;
  readonly flags: number;
  /** Caller's request id, used as trans_id when no id is allocated. */
  readonly requestId?: bigint;
  /** Context stored in the request table when an id is allocated. */
  readonly ctx?: T;
}

const ZERO_PAD = new Uint8Array(8);

export class OutgoingRing<T = unknown> {
  readonly mem: RingMem;
  readonly requestTable: RequestTable<T> | undefined;
  /** channel->rescind: once set, every write fails with ENODEV. */
  rescinded = false;
  readonly counters: OutgoingRingCounters = {
    packets: 0,
    bytes: 0,
    outFullTotal: 0,
    outFullFirst: 0,
    requestTableFull: 0,
    signals: 0,
    corrupt: { "out-of-range": 0, misaligned: 0 },
  };
  private outFullFlag = false;
  private readonly scratchDesc = new Uint8Array(VMPACKET_DESCRIPTOR_SIZE);
  private readonly scratchU64 = new Uint8Array(8);
  private readonly scratchU64View = new DataView(this.scratchU64.buffer);

  constructor(mem: RingMem, options: OutgoingRingOptions<T> = {}) {
    this.mem = mem;
    this.requestTable = options.requestTable;
  }

  /**
   * hv_ringbuffer_write: `kv` are the pieces of one packet, the first starting with its 16-byte
   * descriptor. The total (plus the 8-byte trailer) must be strictly less than the free space, so
   * the ring never becomes exactly full (read == write would then mean empty). The request id is
   * allocated after the copy, and only for COMPLETION_REQUESTED packets, as in the kernel.
   */
  write(
    kv: readonly Uint8Array[],
    requestId: bigint = VMBUS_RQST_ERROR,
    ...ctx: [] | [T]
  ): Result<RingWriteOk> {
    if (this.rescinded) return err("ENODEV", "rescinded", "channel was rescinded");
    const mem = this.mem;
    const dsize = mem.dataSize;
    let total = VMBUS_PKT_TRAILER;
    for (const piece of kv) total += piece.length;
    const first = kv[0];
    invariant(
      first !== undefined && first.length >= VMPACKET_DESCRIPTOR_SIZE,
      "a packet starts with its descriptor",
    );
    if (total % 8 !== 0) invariant(false, `packet plus trailer is ${total} bytes, not a multiple of 8`);

    // Both indices live in the shared header page; a hostile host can rewrite either.
    const writeIndex = mem.readHeaderU32(RING_HEADER.WRITE_INDEX);
    const readIndex = mem.readHeaderU32(RING_HEADER.READ_INDEX);
    const problem = checkRingIndex(dsize, writeIndex) ?? checkRingIndex(dsize, readIndex);
    if (problem !== undefined) {
      this.counters.corrupt[problem]++;
      return err(
        "EIO",
        "corrupt-ring",
        `shared ring index ${problem} (write ${writeIndex}, read ${readIndex})`,
      );
    }

    const avail = bytesToWrite(dsize, writeIndex, readIndex);
    if (avail <= total) {
      this.counters.outFullTotal++;
      if (!this.outFullFlag) {
        this.counters.outFullFirst++;
        this.outFullFlag = true;
      }
      return err("EAGAIN", "ring-full", `${total} bytes to write, ${avail} available`);
    }
    this.outFullFlag = false;

    const oldWrite = writeIndex;
    let next = writeIndex;
    for (const piece of kv) {
      if (piece.length === 0) continue;
      mem.write(next, piece);
      next += piece.length;
      if (next >= dsize) next -= dsize;
    }

    let transId = requestId;
    const flags = first[6]! | (first[7]! << 8);
    if (flags === VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED && this.requestTable !== undefined) {
      const id = this.requestTable.allocate(ctx[0] as T);
      if (id === undefined) {
        // Nothing was published: the copied bytes sit beyond write_index and are overwritten later.
        this.counters.requestTableFull++;
        return err("EAGAIN", "request-table-full", "no free request id");
      }
      transId = BigInt(id);
    }
    // WRITE_ONCE(desc->trans_id) into the ring copy, 8 bytes into the packet just written.
    this.scratchU64View.setBigUint64(0, transId, true);
    mem.write((oldWrite + 8) % dsize, this.scratchU64);

    writeTrailer(this.scratchU64, oldWrite);
    mem.write(next, this.scratchU64);
    next += VMBUS_PKT_TRAILER;
    if (next >= dsize) next -= dsize;

    // virt_mb(), then publish.
    mem.writeHeaderU32(RING_HEADER.WRITE_INDEX, next);
    this.counters.packets++;
    this.counters.bytes += total;

    // hv_signal_on_write: re-read the host's fields after publishing.
    let signal = false;
    if (mem.readHeaderU32(RING_HEADER.INTERRUPT_MASK) === 0) {
      signal = oldWrite === mem.readHeaderU32(RING_HEADER.READ_INDEX);
    }
    if (signal) this.counters.signals++;
    return ok({ transId, signal });
  }

  /**
   * vmbus_sendpacket: descriptor (offset8 = 2, trans_id placeholder VMBUS_RQST_ERROR) + payload +
   * zero padding to 8 bytes.
   */
  sendPacket(payload: Uint8Array, opts: SendOptions<T>): Result<RingWriteOk> {
    const packetLen = VMPACKET_DESCRIPTOR_SIZE + payload.length;
    const aligned = align8(packetLen);
    invariant(aligned <= MAX_PACKET_LEN, "packet does not fit len8");
    writePacketDescriptor(this.scratchDesc, 0, {
      type: opts.type,
      offset8: VMPACKET_DESCRIPTOR_SIZE >> 3,
      len8: aligned >> 3,
      flags: opts.flags,
      transId: VMBUS_RQST_ERROR,
    });
    return this.writeWithCtx(
      [this.scratchDesc, payload, ZERO_PAD.subarray(0, aligned - packetLen)],
      opts.requestId ?? VMBUS_RQST_ERROR,
      opts,
    );
  }

  /**
   * vmbus_sendpacket_mpb_desc / vmbus_sendpacket_pagebuffer: a prepared GPA-direct descriptor
   * (encodeMpbDescriptor / encodePageBufferDescriptor, its len8 already counting `data`), then the
   * data and the padding.
   */
  sendWithDescriptor(
    desc: Uint8Array,
    data: Uint8Array,
    requestId: bigint,
    ...ctx: [] | [T]
  ): Result<RingWriteOk> {
    const packetLen = desc.length + data.length;
    const aligned = align8(packetLen);
    const kv = [desc, data, ZERO_PAD.subarray(0, aligned - packetLen)];
    return ctx.length === 1 ? this.write(kv, requestId, ctx[0]) : this.write(kv, requestId);
  }

  /** set_channel_pending_send_size: ask the reader to signal once `size` bytes are free (0 clears). */
  setPendingSendSize(size: number): void {
    this.mem.writeHeaderU32(RING_HEADER.PENDING_SEND_SZ, size);
  }

  private writeWithCtx(
    kv: readonly Uint8Array[],
    requestId: bigint,
    opts: SendOptions<T>,
  ): Result<RingWriteOk> {
    return "ctx" in opts ? this.write(kv, requestId, opts.ctx as T) : this.write(kv, requestId);
  }
}
