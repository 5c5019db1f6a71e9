/**
 * Writing packets into a ring: mirrors hv_ringbuffer_write (drivers/hv/ring_buffer.c) and the send
 * helpers above it (vmbus_sendpacket_getid, vmbus_sendpacket_mpb_desc). The guest uses it on its
 * outbound ring with a RequestTable; the host endpoint uses the same code on the inbound ring.
 */
import { err, invariant, type Result } from "../errors.js";
import { type KernelContext, VMBUS_FINDING } from "../profile.js";
import type { RequestTable } from "../request-table.js";
import { align8, writeU16, writeU64BigInt, writeU64NumberAt } from "../wire/bytes.js";
import {
  MAX_PACKET_LEN,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMBUS_RQST_ERROR,
  VMPACKET_DESCRIPTOR_SIZE,
} from "../wire/packet.js";
import { RING_HEADER, VMBUS_PKT_TRAILER, writeTrailer } from "../wire/ring-header.js";
import { bytesToWrite, checkRingIndex, type RingIndexProblem, type RingMem } from "./ring-mem.js";

export interface RingWriteOk {
  /** The trans_id that went into the ring: the allocated request id, or the caller's requestId. */
  readonly transId: bigint;
  /** hv_signal_on_write: interrupt_mask was 0 and the ring went from empty to non-empty. */
  readonly signal: boolean;
}

/**
 * A trans_id as the send path carries it: a number when it is below 2^53 (every id a request table
 * hands out, and the ids hosts use in practice), a bigint for any other u64. Both are written as the
 * same 8 little-endian bytes.
 */
export type TransIdValue = number | bigint;

/** Writes a trans_id's 8 little-endian bytes at `offset`, without a BigInt for a number id. */
export function writeTransId(bytes: Uint8Array, offset: number, id: TransIdValue): void {
  if (typeof id === "number") writeU64NumberAt(bytes, offset, id);
  else writeU64BigInt(bytes, offset, id);
}

/** The ring's one write result, refilled by every write: its transId is made a bigint only when read. */
class RingWriteResult implements RingWriteOk {
  id: TransIdValue = 0;
  signal = false;
  get transId(): bigint {
    const id = this.id;
    return typeof id === "bigint" ? id : BigInt(id);
  }
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
  /**
   * Shared indices that were unusable (see checkRingIndex): writes refused when hardened; seen and
   * used as the kernel uses them otherwise.
   */
  corrupt: Record<RingIndexProblem, number>;
  /** Kernel-exact mode: bytes the kernel would have copied outside the ring's double mapping (not done). */
  outOfBoundsBytes: number;
  /** Kernel-exact mode: writes in which write_index changed between the kernel's fetches of it. */
  doubleFetches: number;
}

export interface OutgoingRingOptions<T> {
  /** The channel's vmbus_requestor; without it trans_id is the caller's requestId (VMBUS_NO_RQSTOR path). */
  readonly requestTable?: RequestTable<T>;
  /**
   * The guest's kernel profile and findings. Hardened (and when absent): a bad shared index refuses the
   * write. Otherwise the kernel's hv_ringbuffer_write runs on whatever the host wrote, and what it would
   * copy outside the ring, or a write_index that changed between its fetches, is reported as a finding.
   */
  readonly kernel?: KernelContext;
  /** Names the ring in findings ("outbound ring of channel 3"). */
  readonly name?: string;
}

export interface SendOptions<T> {
  readonly type: number;
  readonly flags: number;
  /** Caller's request id, used as trans_id when no id is allocated. */
  readonly requestId?: TransIdValue;
  /** Context stored in the request table when an id is allocated. */
  readonly ctx?: T;
}

/** VMBUS_RQST_ERROR's bytes: the trans_id placeholder of a descriptor before the write fills it in. */
const RQST_ERROR_BYTES = new Uint8Array(8);
writeU64BigInt(RQST_ERROR_BYTES, 0, VMBUS_RQST_ERROR);

/** The zero padding to 8 bytes, one view per length 0..7. */
const ZERO_PAD = new Uint8Array(8);
const ZERO_PADS: readonly Uint8Array[] = Array.from({ length: 8 }, (_, n) => ZERO_PAD.subarray(0, n));

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
    outOfBoundsBytes: 0,
    doubleFetches: 0,
  };
  readonly kernel: KernelContext | undefined;
  readonly name: string;
  private outFullFlag = false;
  /** Kernel-exact write, per call: bytes that fell outside the mapping and the first such offset. */
  private oobBytes = 0;
  private oobFirst = 0;
  private readonly scratchDesc = new Uint8Array(VMPACKET_DESCRIPTOR_SIZE);
  private readonly scratchKv: Uint8Array[] = [this.scratchDesc, ZERO_PAD, ZERO_PAD];
  private readonly scratchGpaKv: Uint8Array[] = [ZERO_PAD, ZERO_PAD, ZERO_PAD];
  /** A packet gathered for its one copy into the ring, and the view of its current length. */
  private packetScratch = new Uint8Array(256);
  private packetView = this.packetScratch.subarray(0, 0);
  private packetViewOf = this.packetScratch;
  private readonly scratchU64 = new Uint8Array(8);
  /** The one result object: valid until the next write on this ring (callers read it at once). */
  private readonly result = new RingWriteResult();
  private readonly okResult: { readonly ok: true; readonly value: RingWriteOk } = {
    ok: true,
    value: this.result,
  };

  constructor(mem: RingMem, options: OutgoingRingOptions<T> = {}) {
    this.mem = mem;
    this.requestTable = options.requestTable;
    this.kernel = options.kernel;
    this.name = options.name ?? "outbound ring";
  }

  /** Whether this writer runs the kernel's unchecked index arithmetic (a profile that is not hardened). */
  get kernelExact(): boolean {
    return this.kernel !== undefined && !this.kernel.profile.hardened;
  }

  /**
   * hv_ringbuffer_write: `kv` are the pieces of one packet, the first starting with its 16-byte
   * descriptor. The total (plus the 8-byte trailer) must be strictly less than the free space, so
   * the ring never becomes exactly full (read == write would then mean empty). The request id is
   * allocated only for COMPLETION_REQUESTED packets, after the copy as in the kernel (the hardened
   * copy takes it just before its single ring access, with the same result).
   *
   * One path for both modes. Hardened (and without a profile): a bad shared index refuses the write,
   * and the write_index read for the space check is the one used throughout. Kernel-exact: the indices
   * are used unchecked, the copy starts at a second fetch of write_index (hv_get_next_write_location)
   * and the trailer carries a third (hv_get_ring_bufferindices); each copy lands at ring + offset
   * through the double mapping, which covers data offsets [0, 2·dataSize): the model writes what falls
   * inside it (at its alias) and reports what falls outside as an out-of-bounds write, without touching
   * memory it does not own, and a write_index that moved between the fetches as a double fetch.
   *
   * The result (its value) is one object per ring, refilled by the next write: read it before writing
   * again.
   */
  write(
    kv: readonly Uint8Array[],
    requestId: TransIdValue = VMBUS_RQST_ERROR,
    ...ctx: [] | [T]
  ): Result<RingWriteOk> {
    return this.writeKv(kv, requestId, ctx.length === 1, ctx[0]);
  }

  /** write() with the request context as two plain arguments (no rest array on the hot path). */
  private writeKv(
    kv: readonly Uint8Array[],
    requestId: TransIdValue,
    hasCtx: boolean,
    ctxValue: T | undefined,
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
    const exact = this.kernelExact;
    const firstWrite = mem.readHeaderU32(RING_HEADER.WRITE_INDEX);
    const readIndex = mem.readHeaderU32(RING_HEADER.READ_INDEX);
    const problem = checkRingIndex(dsize, firstWrite) ?? checkRingIndex(dsize, readIndex);
    if (problem !== undefined) {
      this.counters.corrupt[problem]++;
      if (!exact) {
        return err(
          "EIO",
          "corrupt-ring",
          `shared ring index ${problem} (write ${firstWrite}, read ${readIndex})`,
        );
      }
    }

    const avail = bytesToWrite(dsize, firstWrite, readIndex);
    if (avail <= total) {
      this.counters.outFullTotal++;
      if (!this.outFullFlag) {
        this.counters.outFullFirst++;
        this.outFullFlag = true;
      }
      return err("EAGAIN", "ring-full", `${total} bytes to write, ${avail} available`);
    }
    this.outFullFlag = false;
    this.oobBytes = 0;

    const oldWrite = exact ? mem.readHeaderU32(RING_HEADER.WRITE_INDEX) : firstWrite;
    const flags = first[6]! | (first[7]! << 8);
    const allocates =
      flags === VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED && this.requestTable !== undefined;
    let next = oldWrite;
    let transId: TransIdValue = requestId;
    // A context-less write stores undefined, as the kernel stores the caller's (absent) rqst_addr.
    const ctx = (hasCtx ? ctxValue : undefined) as T;
    if (exact) {
      for (const piece of kv) next = this.copyKernel(next, piece);
      if (allocates) {
        const id = this.requestTable!.allocate(ctx);
        if (id === undefined) return this.requestTableFull();
        transId = id;
      }
      // WRITE_ONCE(desc->trans_id) into the ring copy, 8 bytes into the packet just written.
      writeTransId(this.scratchU64, 0, transId);
      this.copyKernel((oldWrite + 8) >>> 0, this.scratchU64);
    } else {
      // The id the kernel allocates after its copy is taken first here, so that the packet, its
      // trans_id and its trailer go into the ring as one access; nothing is visible to the reader before
      // write_index moves, and a full table still leaves the copied bytes (placeholder trans_id) beyond
      // write_index, as the kernel's order does.
      const id = allocates ? this.requestTable!.allocate(ctx) : undefined;
      if (allocates && id === undefined) {
        this.copyPacket(oldWrite, kv, total, undefined);
        return this.requestTableFull();
      }
      if (id !== undefined) transId = id;
      next = this.copyPacket(oldWrite, kv, total, transId);
    }

    if (exact) {
      const trailerWrite = mem.readHeaderU32(RING_HEADER.WRITE_INDEX);
      writeTrailer(this.scratchU64, trailerWrite);
      next = this.copyKernel(next, this.scratchU64);
      if (oldWrite !== firstWrite || trailerWrite !== firstWrite) {
        this.counters.doubleFetches++;
        this.kernel!.report({
          id: VMBUS_FINDING.ringWriteDoubleFetch,
          invariant: "I3",
          what: `write_index read as ${firstWrite} for the space check, ${oldWrite} for the copy and ${trailerWrite} for the trailer`,
          where: `hv_ringbuffer_write, ${this.name}`,
        });
      }
      this.reportOutOfBounds();
    }

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
    const result = this.result;
    result.id = transId;
    result.signal = signal;
    return this.okResult;
  }

  /**
   * The hardened copy: the pieces, the trans_id (when given) and the trailer (which carries oldWrite,
   * this mode's only fetch of write_index) gathered into one scratch and written with one ring access.
   * Nothing is visible to the reader before write_index moves, so it reads the same bytes as after the
   * kernel's piece-by-piece copies. Returns the offset after it.
   */
  private copyPacket(
    oldWrite: number,
    kv: readonly Uint8Array[],
    total: number,
    transId: TransIdValue | undefined,
  ): number {
    let buf = this.packetScratch;
    if (buf.length < total) {
      buf = new Uint8Array(Math.max(total, 2 * buf.length));
      this.packetScratch = buf;
    }
    let at = 0;
    for (let p = 0; p < kv.length; p++) {
      const piece = kv[p]!;
      const n = piece.length;
      // A byte loop beats TypedArray.prototype.set for the small pieces (descriptors, NVSP messages).
      if (n <= 64) for (let i = 0; i < n; i++) buf[at + i] = piece[i]!;
      else buf.set(piece, at);
      at += n;
    }
    if (transId !== undefined) writeTransId(buf, 8, transId);
    writeTrailer(buf, oldWrite, at);
    // (compared by the scratch it views: a typed array's .buffer is a getter that costs more than this)
    if (this.packetView.length !== total || this.packetViewOf !== buf) {
      this.packetView = buf.subarray(0, total);
      this.packetViewOf = buf;
    }
    this.mem.write(oldWrite, this.packetView);
    const next = oldWrite + total;
    return next >= this.mem.dataSize ? next - this.mem.dataSize : next;
  }

  /** Nothing was published: the copied bytes sit beyond write_index and are overwritten later. */
  private requestTableFull(): Result<RingWriteOk> {
    this.counters.requestTableFull++;
    if (this.kernelExact) this.reportOutOfBounds();
    return err("EAGAIN", "request-table-full", "no free request id");
  }

  /** hv_copyto_ringbuffer: memcpy at ring + offset, then offset += len, less dataSize once (u32). */
  private copyKernel(offset: number, src: Uint8Array): number {
    const dsize = this.mem.dataSize;
    const mapped = 2 * dsize;
    let done = 0;
    while (done < src.length && offset + done < mapped) {
      const at = offset + done;
      const n = Math.min(src.length - done, mapped - at, dsize);
      this.mem.write(at % dsize, src.subarray(done, done + n));
      done += n;
    }
    if (done < src.length) {
      if (this.oobBytes === 0) this.oobFirst = offset + done;
      this.oobBytes += src.length - done;
    }
    let next = (offset + src.length) >>> 0;
    if (next >= dsize) next -= dsize;
    return next;
  }

  private reportOutOfBounds(): void {
    if (this.oobBytes === 0) return;
    this.counters.outOfBoundsBytes += this.oobBytes;
    this.kernel!.report({
      id: VMBUS_FINDING.ringWriteOutOfBounds,
      invariant: "ring-index-bounds",
      what: `out-of-bounds write of ${this.oobBytes} bytes at data offset ${this.oobFirst} (0x${this.oobFirst.toString(16)}); the ring's mapping ends at ${2 * this.mem.dataSize}`,
      where: `hv_ringbuffer_write, ${this.name}`,
    });
    this.oobBytes = 0;
  }

  /**
   * vmbus_sendpacket: descriptor (offset8 = 2, trans_id placeholder VMBUS_RQST_ERROR) + payload +
   * zero padding to 8 bytes.
   */
  sendPacket(payload: Uint8Array, opts: SendOptions<T>): Result<RingWriteOk> {
    const hasCtx = "ctx" in opts;
    return this.sendInband(
      payload,
      opts.type,
      opts.flags,
      opts.requestId ?? VMBUS_RQST_ERROR,
      hasCtx,
      opts.ctx,
    );
  }

  /** sendPacket with its options as plain arguments: the per-packet path builds no options object. */
  sendInband(
    payload: Uint8Array,
    type: number,
    flags: number,
    requestId: TransIdValue,
    hasCtx: boolean,
    ctx: T | undefined,
  ): Result<RingWriteOk> {
    const packetLen = VMPACKET_DESCRIPTOR_SIZE + payload.length;
    const aligned = align8(packetLen);
    invariant(aligned <= MAX_PACKET_LEN, "packet does not fit len8");
    // struct vmpacket_descriptor (writePacketDescriptor's layout), written field by field.
    const desc = this.scratchDesc;
    writeU16(desc, 0, type);
    writeU16(desc, 2, VMPACKET_DESCRIPTOR_SIZE >> 3);
    writeU16(desc, 4, aligned >> 3);
    writeU16(desc, 6, flags);
    desc.set(RQST_ERROR_BYTES, 8);
    // The pieces go into the ring before write returns: one array serves every packet.
    const kv = this.scratchKv;
    kv[0] = desc;
    kv[1] = payload;
    kv[2] = ZERO_PADS[aligned - packetLen]!;
    const r = this.writeKv(kv, requestId, hasCtx, ctx);
    kv[1] = ZERO_PADS[0]!;
    return r;
  }

  /**
   * vmbus_sendpacket_mpb_desc / vmbus_sendpacket_pagebuffer: a prepared GPA-direct descriptor
   * (encodeMpbDescriptor / encodePageBufferDescriptor, its len8 already counting `data`), then the
   * data and the padding.
   */
  sendWithDescriptor(
    desc: Uint8Array,
    data: Uint8Array,
    requestId: TransIdValue,
    ...ctx: [] | [T]
  ): Result<RingWriteOk> {
    const packetLen = desc.length + data.length;
    const aligned = align8(packetLen);
    // One pieces array serves every packet: the pieces are in the ring before write returns.
    const kv = this.scratchGpaKv;
    kv[0] = desc;
    kv[1] = data;
    kv[2] = ZERO_PADS[aligned - packetLen]!;
    const r = this.writeKv(kv, requestId, ctx.length === 1, ctx[0]);
    kv[0] = ZERO_PADS[0]!;
    kv[1] = ZERO_PADS[0]!;
    return r;
  }

  /** set_channel_pending_send_size: ask the reader to signal once `size` bytes are free (0 clears). */
  setPendingSendSize(size: number): void {
    this.mem.writeHeaderU32(RING_HEADER.PENDING_SEND_SZ, size);
  }
}
