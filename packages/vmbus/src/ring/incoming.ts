/**
 * The guest's reader of its inbound ring: mirrors hv_pkt_iter_first / __hv_pkt_iter_next /
 * hv_pkt_iter_close and hv_ringbuffer_read (drivers/hv/ring_buffer.c, after adae1e931acd "Copy
 * packets sent by Hyper-V out of the ring buffer"). The write index is read once per packet,
 * len8/offset8 once, both are clamped, and the packet is copied into a private buffer before anything
 * parses it (invariant I3). The host may rewrite the ring between any two reads.
 */
import { PrefixViews } from "@ivm/memory";
import { err, invariant, ok, type Result } from "../errors.js";
import { type KernelContext, VMBUS_FINDING } from "../profile.js";
import { readU16, readU64BigInt, readU64NumberAt } from "../wire/bytes.js";
import { type PacketDescriptor, VMPACKET_DESCRIPTOR_SIZE } from "../wire/packet.js";
import {
  RING_FEAT_PENDING_SEND_SZ,
  RING_HEADER,
  VMBUS_DEFAULT_MAX_PKT_SIZE,
  VMBUS_PKT_TRAILER,
} from "../wire/ring-header.js";
import {
  bytesToRead,
  bytesToWrite,
  checkRingIndex,
  type RingIndexProblem,
  type RingMem,
} from "./ring-mem.js";

/** Why hv_pkt_iter_first rewrote a host-supplied length or offset. */
export type ClampReason = "len-too-short" | "len-too-long" | "offset-too-short" | "offset-past-len";

/**
 * What to do with a write_index that is ≥ dataSize or not 8-aligned.
 * - "reject" (default): report the ring as corrupt, read nothing (OpenVMM's policy).
 * - "linux": do what the kernel does, which is not to check: the u32 arithmetic runs on the bad value
 *   and the length clamp bounds the copy. The model additionally caps the copy at dataSize and keeps
 *   the private index inside the ring (counted), where the kernel would run off its mapping.
 */
export type IndexPolicy = "reject" | "linux";

export interface IncomingPacket {
  /** Descriptor parsed from the private copy, with the sanitised len8/offset8. */
  readonly desc: PacketDescriptor;
  /**
   * The private copy (pkt_len bytes). The packet (this object, its desc and its views) is valid until the
   * next first()/next(): the ring refills one packet object; copy what you keep.
   */
  readonly bytes: Uint8Array;
  /** bytes[offset8·8 .. len), the payload after the descriptor area. */
  readonly data: Uint8Array;
  /**
   * desc.transId as a number, or −1 when the host wrote a value of 2^53 or more (then use desc.transId).
   * Reading it makes no BigInt: the per-packet paths match request ids with it.
   */
  readonly transIdNumber: number;
}

export type IncomingResult =
  | { readonly kind: "packet"; readonly packet: IncomingPacket }
  | { readonly kind: "empty" }
  | { readonly kind: "corrupt"; readonly problem: RingIndexProblem; readonly writeIndex: number };

export interface IncomingRingCounters {
  packets: number;
  bytesCopied: number;
  clamps: Record<ClampReason, number>;
  corrupt: Record<RingIndexProblem, number>;
  /** "linux" policy only: times the private index had to be reduced past the kernel's single wrap. */
  indexReduced: number;
  /** channel->intr_in_full: signals raised by close(). */
  signals: number;
  /** drain() calls stopped by their packet budget. */
  budgetExhausted: number;
}

export interface IncomingRingOptions {
  /** channel->max_pkt_size, the private pkt_buffer size; VMBUS_DEFAULT_MAX_PKT_SIZE by default. */
  readonly pktBufferSize?: number;
  /**
   * Default: "reject" when the profile is hardened (or none is given), "linux" — the kernel's
   * unchecked arithmetic, with what it reads past the published data reported as a finding — otherwise.
   */
  readonly indexPolicy?: IndexPolicy;
  /** The guest's kernel profile and findings. */
  readonly kernel?: KernelContext;
  /** Names the ring in findings ("inbound ring of channel 3"). */
  readonly name?: string;
}

export type RecvResult =
  | { readonly kind: "ok"; readonly length: number; readonly transId: bigint }
  | { readonly kind: "empty" }
  | { readonly kind: "corrupt"; readonly problem: RingIndexProblem }
  | { readonly kind: "too-small"; readonly length: number; readonly transId: bigint };

const EMPTY: IncomingResult = { kind: "empty" };

export class IncomingRing {
  readonly mem: RingMem;
  readonly pktBufferSize: number;
  readonly indexPolicy: IndexPolicy;
  readonly kernel: KernelContext | undefined;
  readonly name: string;
  readonly counters: IncomingRingCounters = {
    packets: 0,
    bytesCopied: 0,
    clamps: { "len-too-short": 0, "len-too-long": 0, "offset-too-short": 0, "offset-past-len": 0 },
    corrupt: { "out-of-range": 0, misaligned: 0 },
    indexReduced: 0,
    signals: 0,
    budgetExhausted: 0,
  };
  /** rbi->priv_read_index: guest-private, advanced by next(), published by close(). */
  private privRead = 0;
  /** rbi->pkt_buffer: guest-private memory the packet is copied into. */
  private readonly pktBuffer: Uint8Array;
  private readonly pktView: DataView;
  /** pkt_buffer's first 16 bytes: where the descriptor is peeked. */
  private readonly pktHead: Uint8Array;
  private currentLen8 = -1;
  /** Views of pkt_buffer by packet length (see bytesView, dataView). */
  private readonly pktViews: PrefixViews;
  private readonly dataByLen: (Uint8Array | undefined)[] = [];
  private readonly dataOffsetByLen: number[] = [];
  /** The packet first() hands out, refilled for each packet (its desc, bytes and data views). */
  private readonly current: {
    desc: { type: number; offset8: number; len8: number; flags: number; readonly transId: bigint };
    bytes: Uint8Array;
    data: Uint8Array;
    transIdNumber: number;
  };
  private readonly currentResult: { readonly kind: "packet"; readonly packet: IncomingPacket };

  constructor(mem: RingMem, options: IncomingRingOptions = {}) {
    const size = options.pktBufferSize ?? VMBUS_DEFAULT_MAX_PKT_SIZE;
    invariant(
      Number.isInteger(size) && size >= VMPACKET_DESCRIPTOR_SIZE && size % 8 === 0,
      "bad pkt_buffer size",
    );
    // A descriptor plus its trailer must fit, or even the 16-byte peek could leave the data area.
    invariant(mem.dataSize >= VMPACKET_DESCRIPTOR_SIZE + VMBUS_PKT_TRAILER, "ring data area too small");
    this.mem = mem;
    this.pktBufferSize = size;
    this.kernel = options.kernel;
    this.name = options.name ?? "inbound ring";
    const kernelExact = this.kernel !== undefined && !this.kernel.profile.hardened;
    this.indexPolicy = options.indexPolicy ?? (kernelExact ? "linux" : "reject");
    this.pktBuffer = new Uint8Array(size);
    this.pktViews = new PrefixViews(this.pktBuffer);
    this.pktView = new DataView(this.pktBuffer.buffer);
    this.pktHead = this.pktBuffer.subarray(0, VMPACKET_DESCRIPTOR_SIZE);
    const pktBuffer = this.pktBuffer;
    this.current = {
      desc: {
        type: 0,
        offset8: 0,
        len8: 0,
        flags: 0,
        // The u64 trans_id of the private copy, made a bigint only when asked for (the copy is not
        // written after first(), and the packet is valid only until the next one replaces it).
        get transId(): bigint {
          return readU64BigInt(pktBuffer, 8);
        },
      },
      bytes: pktBuffer.subarray(0, 0),
      data: pktBuffer.subarray(0, 0),
      transIdNumber: 0,
    };
    this.currentResult = { kind: "packet", packet: this.current };
    // hv_ringbuffer_init starts from index 0; resync with the published read index if reused.
    const published = mem.readHeaderU32(RING_HEADER.READ_INDEX);
    this.privRead = checkRingIndex(mem.dataSize, published) === undefined ? published : 0;
  }

  /** The private read index (for tests and the channel layer). */
  get privateReadIndex(): number {
    return this.privRead;
  }

  /** hv_pkt_iter_first: the packet at the private read index, copied out and sanitised. */
  first(): IncomingResult {
    const mem = this.mem;
    const dsize = mem.dataSize;
    // virt_load_acquire(&write_index): one snapshot per packet.
    const writeIndex = mem.readHeaderU32(RING_HEADER.WRITE_INDEX);
    const problem = checkRingIndex(dsize, writeIndex);
    if (problem !== undefined) {
      this.counters.corrupt[problem]++;
      if (this.indexPolicy === "reject") {
        this.currentLen8 = -1;
        return { kind: "corrupt", problem, writeIndex };
      }
    }
    const avail = bytesToRead(dsize, writeIndex, this.privRead);
    if (avail < VMPACKET_DESCRIPTOR_SIZE) {
      this.currentLen8 = -1;
      return EMPTY;
    }
    // Only reachable above dsize under the "linux" policy; the copy must stay inside the ring.
    const cap = Math.min(this.pktBufferSize, avail, dsize);
    if (problem === "out-of-range") this.reportPastPublished(writeIndex, avail, cap);

    // READ_ONCE of len8 and offset8 from shared memory: exactly one read of each.
    mem.read(this.privRead, this.pktHead);
    let pktLen = this.pktView.getUint16(4, true) << 3;
    let pktOffset = this.pktView.getUint16(2, true) << 3;
    if (pktLen < VMPACKET_DESCRIPTOR_SIZE) {
      this.counters.clamps["len-too-short"]++;
      pktLen = cap;
    } else if (pktLen > cap) {
      this.counters.clamps["len-too-long"]++;
      pktLen = cap;
    }
    if (pktOffset < VMPACKET_DESCRIPTOR_SIZE) {
      this.counters.clamps["offset-too-short"]++;
      pktOffset = VMPACKET_DESCRIPTOR_SIZE;
    } else if (pktOffset > pktLen) {
      this.counters.clamps["offset-past-len"]++;
      pktOffset = VMPACKET_DESCRIPTOR_SIZE;
    }

    // memcpy into pkt_buffer (this re-reads the descriptor bytes, as the kernel's memcpy does; only
    // the sanitised len8/offset8 below are trusted), then write the sanitised values into the copy.
    const bytes = this.bytesView(pktLen);
    mem.read(this.privRead, bytes);
    this.counters.bytesCopied += pktLen;
    this.pktView.setUint16(4, pktLen >>> 3, true);
    this.pktView.setUint16(2, pktOffset >>> 3, true);
    this.currentLen8 = pktLen >>> 3;
    this.counters.packets++;

    // One packet object per ring, refilled: the packet is valid until the next first()/next().
    const cur = this.current;
    const desc = cur.desc;
    desc.type = readU16(bytes, 0);
    desc.offset8 = pktOffset >>> 3;
    desc.len8 = pktLen >>> 3;
    desc.flags = readU16(bytes, 6);
    cur.transIdNumber = readU64NumberAt(bytes, 8);
    // Payload length follows len8 (VMPACKET_DATA_LENGTH), which truncates an unaligned clamp.
    const dataEnd = (pktLen >>> 3) << 3;
    cur.bytes = bytes;
    cur.data = this.dataView(pktLen, pktOffset, dataEnd);
    return this.currentResult;
  }

  /** pkt_buffer[0, len): one view per length, kept (a ring carries packets of a few lengths). */
  private bytesView(len: number): Uint8Array {
    return this.pktViews.of(len);
  }

  /** pkt_buffer[offset, end) for a packet of `len` bytes: kept per length while its offset stays. */
  private dataView(len: number, offset: number, end: number): Uint8Array {
    const v = this.dataByLen[len];
    // For one length, `end` follows from len; the view is reused while the offset is the same.
    if (v !== undefined && this.dataOffsetByLen[len] === offset) return v;
    const made = this.pktBuffer.subarray(offset, end);
    this.dataByLen[len] = made;
    this.dataOffsetByLen[len] = offset;
    return made;
  }

  /**
   * hv_pkt_iter_avail took a write_index the host set beyond the data area: the kernel believes `avail`
   * bytes are there and copies up to `cap` of them from the private read index, bytes the host never
   * published as a packet (stale ring contents). Reported when a profile runs the kernel's arithmetic.
   */
  private reportPastPublished(writeIndex: number, avail: number, cap: number): void {
    this.kernel?.report({
      id: VMBUS_FINDING.ringReadPastPublished,
      invariant: "ring-index-bounds",
      what: `write_index ${writeIndex} is past the ${this.mem.dataSize}-byte data area: ${avail} bytes taken as available, up to ${cap} read at offset ${this.privRead} beyond what was published`,
      where: `hv_pkt_iter_first, ${this.name}`,
    });
  }

  /** __hv_pkt_iter_next: step past the current packet (len8·8 + trailer) and return the next one. */
  next(): IncomingResult {
    this.advance();
    return this.first();
  }

  private advance(): void {
    invariant(this.currentLen8 >= 0, "next() without a current packet");
    const dsize = this.mem.dataSize;
    this.privRead += (this.currentLen8 << 3) + VMBUS_PKT_TRAILER;
    if (this.privRead >= dsize) this.privRead -= dsize;
    if (this.privRead >= dsize) {
      // Only possible under "linux" with a hostile write_index; the kernel would index past its map.
      this.counters.indexReduced++;
      this.privRead %= dsize;
    }
    this.currentLen8 = -1;
  }

  /**
   * hv_pkt_iter_close: publish read_index, then decide whether the host, blocked on a full ring with
   * pending_send_sz set, must be signalled: only if this batch is what made enough room.
   */
  close(): { readonly signal: boolean } {
    const mem = this.mem;
    const dsize = mem.dataSize;
    const startRead = mem.readHeaderU32(RING_HEADER.READ_INDEX);
    mem.writeHeaderU32(RING_HEADER.READ_INDEX, this.privRead);
    if ((mem.readHeaderU32(RING_HEADER.FEATURE_BITS) & RING_FEAT_PENDING_SEND_SZ) === 0)
      return { signal: false };
    const pending = mem.readHeaderU32(RING_HEADER.PENDING_SEND_SZ);
    if (pending === 0) return { signal: false };
    const currWriteSz = bytesToWrite(dsize, mem.readHeaderU32(RING_HEADER.WRITE_INDEX), this.privRead);
    const bytesRead =
      this.privRead >= startRead ? this.privRead - startRead : (dsize - startRead + this.privRead) >>> 0;
    // u32 arithmetic, as in the kernel: space before this batch already exceeded the need.
    if ((currWriteSz - bytesRead) >>> 0 > pending) return { signal: false };
    if (currWriteSz <= pending) return { signal: false };
    this.counters.signals++;
    return { signal: true };
  }

  /**
   * hv_ringbuffer_read (vmbus_recvpacket / _raw): copy one packet's payload (or, raw, the whole
   * packet) into `dst`. A too-small dst is -ENOBUFS: the packet stays in the ring and the actual
   * length is still reported.
   */
  recvPacket(dst: Uint8Array, raw = false): RecvResult {
    invariant(dst.length > 0, "hv_ringbuffer_read with buflen 0 is -EINVAL");
    const r = this.first();
    if (r.kind === "empty") return r;
    if (r.kind === "corrupt") return { kind: "corrupt", problem: r.problem };
    const { desc, bytes } = r.packet;
    const offset = raw ? 0 : desc.offset8 << 3;
    const length = (desc.len8 << 3) - offset;
    if (length > dst.length) return { kind: "too-small", length, transId: desc.transId };
    dst.set(bytes.subarray(offset, offset + length));
    this.advance();
    this.close();
    return { kind: "ok", length, transId: desc.transId };
  }

  /**
   * Reads available packets, handing each to `fn`, then closes (foreach_vmbus_pkt + close). Stops
   * after `budget` packets: a honest ring holds fewer than dataSize/24 packets, while a hostile
   * len8 equal to the available bytes (no room for the trailer) makes the kernel's index arithmetic
   * revisit the same offset forever; the budget, like a NAPI budget, bounds that.
   */
  drain(
    fn: (packet: IncomingPacket) => void,
    budget: number = Math.ceil(this.mem.dataSize / 24) + 1,
  ): Result<number> {
    let n = 0;
    let r = this.first();
    while (r.kind === "packet") {
      fn(r.packet);
      n++;
      if (n >= budget) {
        this.counters.budgetExhausted++;
        this.advance();
        this.close();
        return ok(n);
      }
      r = this.next();
    }
    this.close();
    if (r.kind === "corrupt") return err("EIO", "corrupt-ring", `inbound write_index ${r.problem}`);
    return ok(n);
  }
}
