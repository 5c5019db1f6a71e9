// The simulated host network device (netvsp): the untrusted host's end of a netvsc channel. Honest by
// default, modelled on OpenVMM's vm/devices/net/netvsp (Worker::initialize, parse_packet,
// handle_rndis_control_message, process_control_messages, RxBuffers) and on what Hyper-V answers a
// Linux guest; adversarial through the knobs of ./adversary.ts.
//
// It is driven, not running: open(ports) when the channel opens, poll() until it reports no progress
// whenever the guest signalled or traffic was queued, close() when the channel closes. Every byte it
// takes from the guest comes through the ports as a host-private copy, and nothing the guest wrote is
// trusted: bad input is a typed rejection, counted in `counters.rejections`, and the device stays usable.

import {
  checkRndisPacket,
  decodeNvspMessage,
  encodeNvspMessage,
  encodeSendIndirectionTable,
  labFrameSeq,
  labFrameSeqAt,
  NETVSC_INVALID_INDEX,
  NETVSC_RECV_SECTION_SIZE,
  NETVSC_SEND_SECTION_SIZE,
  NETVSP_HOST_MAC,
  NVSP_CHANNEL_TYPE,
  NVSP_INVALID_PROTOCOL_VERSION,
  NVSP_MESSAGE_SIZE,
  NVSP_MESSAGE_SIZE_V1,
  NVSP_PROTOCOL_VERSION,
  NVSP_STATUS,
  NVSP_VERSION_LIST,
  type NvspMessage,
  RejectionCounter,
  RNDIS_HEADER_SIZE,
  RNDIS_MSG_TYPE,
  readNvspRecvCompletion,
  rndisPacketField,
  writeNvspRecvCompletion,
  writeNvspRndisPacket,
  writeXferPagePacket,
  xferPagePacketSize,
} from "@ivm/netvsc-protocol";
import {
  encodeCompletionPacket,
  encodeInbandPacket,
  type GpaDirectRange,
  GpaDirectReader,
  type Result,
  type RingWriteOk,
  type TransIdValue,
  VM_PKT,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  XFER_PAGE_HEADER_SIZE,
} from "@ivm/vmbus";
import type { HostPacket } from "@ivm/vmbus/host";
import type { NetvspAdversary, NetvspOutgoingKind } from "./adversary.js";
import { RecvSections } from "./host-buffer.js";
import type { HostGpadlView, HostGuestMemory, NetvspPorts } from "./ports.js";
import { RndisDevice, type RndisDeviceState } from "./rndis-device.js";
import { type RssSource, RssTable } from "./rss.js";
import { RX_RNDIS_OVERHEAD, RxGenerator } from "./rx-generator.js";
import { newRxTransaction, type RxTransaction, RxTransactionTable } from "./rx-transactions.js";
import { gatherTxBytes, type TxGatherScratch, walkRndisMessages } from "./tx-verifier.js";

export interface NetvspOptions {
  /** The guest is an isolated (SNP/TDX) VM: NVSP versions below 6.1 are refused. Default false. */
  readonly isolated?: boolean;
  /** The host's NVSP version range (inclusive). Default v1 .. v6.1. */
  readonly minVersion?: number;
  readonly maxVersion?: number;
  /** sub_alloc_size offered in SEND_RECV_BUF_COMPLETE. Default 1728 (NETVSC_RECV_SECTION_SIZE). */
  readonly recvSectionSize?: number;
  /** section_size offered in SEND_SEND_BUF_COMPLETE. Default 6144, as OpenVMM and Hyper-V. */
  readonly sendSectionSize?: number;
  /** Receive sections kept for RNDIS control responses. Default 16. */
  readonly controlSections?: number;
  /** RNDIS INIT_CMPLT max_packets_per_message (default 8) and packet_alignment_factor (default 3). */
  readonly rndisMaxPacketsPerMessage?: number;
  readonly rndisPacketAlignmentFactor?: number;
  readonly mac?: Uint8Array;
  /** Reported by OID_GEN_LINK_SPEED. Default 10 Gbit/s. */
  readonly linkSpeedBps?: number;
  /** Seed of the receive-path lab frames. Default 1. */
  readonly rxSeed?: number;
  /** Frames (one section each) per transfer-page packet. Default 1. */
  readonly rxFramesPerPacket?: number;
  /**
   * Verdict on every frame the guest sends; default: a valid lab frame (verifyLabFrame). The frame is
   * a view of the host's gather buffer, valid during the call: copy it to keep it.
   */
  readonly verifyTxFrame?: (frame: Uint8Array) => boolean;
  /** Cap on the bytes one SEND_RNDIS_PKT may describe. Default 256 KiB. */
  readonly maxTxMessageBytes?: number;
  /** Guest packets read per poll. Default 64. */
  readonly readBudget?: number;
  readonly adversary?: NetvspAdversary;
  /**
   * Receive queues the host offers (num_recv_que of the RSS capabilities; Hyper-V offers one per vCPU).
   * At most this many channels: the primary and rssQueues - 1 sub-channels. Default 1.
   */
  readonly rssQueues?: number;
  /**
   * Which the guest handles first when this host answers NVSP 5 SUBCHANNEL: "offers-first" (default)
   * offers the sub-channels and completes the request in the same poll, so the guest handles the
   * offers before the completion; "completion-first" completes the request and offers the sub-channels
   * once the guest has had its turn (a poll later, when the host went idle). With an honest grant both
   * end the same; with `adversary.subchannelGrant` below the offers they decide what netvsc does.
   */
  readonly subchannelOrder?: SubchannelOrder;
}

/** The order of the SUBCHANNEL completion and the sub-channel offers (NetvspOptions.subchannelOrder). */
export type SubchannelOrder = "offers-first" | "completion-first";

/** What one queue (VMBus channel) carried. */
export interface NetvspQueueCounters {
  txPackets: number;
  txFramesVerified: number;
  rxPacketsSent: number;
  rxFramesSent: number;
  rxFramesCompleted: number;
}

/** Where the NVSP handshake is (OpenVMM's WorkerState: Init(None), Init(Some), Ready). */
export type NetvspPhase = "closed" | "version" | "init" | "ready";

export interface NetvspCounters {
  /** Control messages received, by NVSP kind ("init", "send-recv-buf", ...) or RNDIS kind ("rndis-query"). */
  readonly control: Record<string, number>;
  txPackets: number;
  txPacketsFailed: number;
  txFrames: number;
  txBytes: number;
  txFramesVerified: number;
  txBadFrames: number;
  rxPacketsSent: number;
  rxFramesSent: number;
  rxBytesSent: number;
  rxFramesCompleted: number;
  rxBytesCompleted: number;
  /** Guest completions that reported NVSP_STAT_FAIL (a range it refused). */
  rxCompletionsFailed: number;
  controlResponsesSent: number;
  /** Writes that found the guest's inbound ring full and will be retried. */
  ringFullRetries: number;
  /** Outgoing packets an adversarial interceptor dropped or replaced. */
  intercepted: number;
  /** Typed rejections by stable reason. */
  readonly rejections: RejectionCounter;
  /** NVSP 5 SUBCHANNEL requests answered, and the sub-channels granted in all. */
  subchannelRequests: number;
  subchannelsGranted: number;
  /** Per queue (index 0 the primary), for as long as the queue has been open since the last reset. */
  readonly queues: NetvspQueueCounters[];
}

interface MappedBuffer {
  readonly gpadl: number;
  readonly id: number;
  readonly view: HostGpadlView;
}

/** One outstanding transfer-page packet; recycled through a free list once completed. */
interface PendingOut {
  readonly queue: number;
  readonly kind: NetvspOutgoingKind;
  readonly transId: TransIdValue;
  readonly bytes: Uint8Array;
}

type EmitResult = "sent" | "full" | "dropped" | "failed";

const MTU_DEFAULT = 1514;
const MTU_MAX = 9216;
/** OpenVMM's CONTROL_MESSAGE_MAX_QUEUED_BYTES. */
const CONTROL_QUEUE_MAX_BYTES = 100 * 1024;
/** OpenVMM answers INIT with maximum_mdl_chain_length 34. */
const MAX_MDL_CHAIN_LENGTH = 34;
const V = NVSP_PROTOCOL_VERSION;

function newCounters(): NetvspCounters {
  return {
    control: {},
    txPackets: 0,
    txPacketsFailed: 0,
    txFrames: 0,
    txBytes: 0,
    txFramesVerified: 0,
    txBadFrames: 0,
    rxPacketsSent: 0,
    rxFramesSent: 0,
    rxBytesSent: 0,
    rxFramesCompleted: 0,
    rxBytesCompleted: 0,
    rxCompletionsFailed: 0,
    controlResponsesSent: 0,
    ringFullRetries: 0,
    intercepted: 0,
    rejections: new RejectionCounter(),
    subchannelRequests: 0,
    subchannelsGranted: 0,
    queues: [newQueueCounters()],
  };
}

function newQueueCounters(): NetvspQueueCounters {
  return { txPackets: 0, txFramesVerified: 0, rxPacketsSent: 0, rxFramesSent: 0, rxFramesCompleted: 0 };
}

function defaultVerify(frame: Uint8Array): boolean {
  return labFrameSeq(frame) >= 0;
}

export class Netvsp {
  readonly isolated: boolean;
  readonly minVersion: number;
  readonly maxVersion: number;
  readonly recvSectionSize: number;
  readonly sendSectionSize: number;
  readonly controlSections: number;
  readonly rxFramesPerPacket: number;
  readonly rssQueues: number;
  readonly subchannelOrder: SubchannelOrder;
  readonly counters: NetvspCounters = newCounters();
  /** Adversarial knobs; undefined is an honest host. May be changed between polls. */
  adversary: NetvspAdversary | undefined;

  readonly #verify: (frame: Uint8Array) => boolean;
  /** The gather buffer every SEND_RNDIS_PKT is copied into, reused (no buffer per message). */
  readonly #gather: TxGatherScratch = { buffer: new Uint8Array(0) };
  /** gatherTxBytes' sources, one object refreshed per SEND_RNDIS_PKT. */
  readonly #txSources: {
    sendBuffer: HostGpadlView | undefined;
    sendSectionSize: number;
    guestMemory: HostGuestMemory | undefined;
    maxBytes: number;
    scratch: TxGatherScratch;
  };
  /** Whether frames are checked as lab frames (no verifyTxFrame given): no view of each frame is made. */
  readonly #labFrames: boolean;
  readonly #maxTxBytes: number;
  readonly #readBudget: number;
  readonly #rndis: RndisDevice;
  readonly #rx: RxGenerator;

  #ports: NetvspPorts | undefined;
  /** Sub-channel queues by index (1..), while open; index 0 is #ports. */
  readonly #queuePorts: (NetvspPorts | undefined)[] = [];
  /** The queue whose packets are being handled (replies go out on it). */
  #q = 0;
  readonly #rss = new RssTable();
  #phase: NetvspPhase = "closed";
  #version = 0;
  /** Bytes every NVSP message is padded to: v1's 28 until 6.1 is negotiated, then 40 (OpenVMM). */
  #packetSize: number = NVSP_MESSAGE_SIZE_V1;
  #ndisVersion: { readonly major: number; readonly minor: number } | null = null;
  #ndisConfig = false;
  #recv: (MappedBuffer & { readonly sections: RecvSections }) | null = null;
  #send: MappedBuffer | null = null;
  /**
   * Transaction ids of transfer-page packets are the host's own: a counter, never reused, kept as a
   * number (it cannot reach 2^53) and written to the wire as a u64.
   */
  #nextTid = 1;
  readonly #outstanding: RxTransactionTable = new RxTransactionTable();
  /** Completed transaction records, reused by the next transfer-page packets. */
  readonly #freeTransactions: RxTransaction[] = [];
  /**
   * The range records of the transfer-page packet being built (its first rangeCount are the packet's):
   * a packet's ranges without an array per packet.
   */
  readonly #rxRangePool: { offset: number; length: number }[] = [];
  /** writeXferPagePacket's input, reused (its fields set per packet). */
  readonly #xferInput: {
    transactionId: number;
    ranges: readonly { readonly offset: number; readonly length: number }[];
    rangeCount: number;
    pagesetId: number;
    nvsp: Uint8Array;
  } = { transactionId: 0, ranges: this.#rxRangePool, rangeCount: 0, pagesetId: 0, nvsp: new Uint8Array(0) };
  /** Completions that met a full ring, in order; nothing more is read until they are out. */
  readonly #pending: PendingOut[] = [];
  /** RNDIS control responses waiting for a control section and ring room. */
  readonly #controlQueue: Uint8Array[] = [];
  #controlQueueBytes = 0;
  #rewriteQueue: number[] = [];
  /** The last poll found nothing to do: whatever runs before the next poll is the guest's turn. */
  #idle = false;
  /** Sub-channels granted by a "completion-first" completion and not offered yet. */
  #offersDue = 0;

  constructor(options: NetvspOptions = {}) {
    this.isolated = options.isolated ?? false;
    this.minVersion = options.minVersion ?? V.V1;
    this.maxVersion = options.maxVersion ?? V.V61;
    this.recvSectionSize = options.recvSectionSize ?? NETVSC_RECV_SECTION_SIZE;
    this.sendSectionSize = options.sendSectionSize ?? NETVSC_SEND_SECTION_SIZE;
    this.controlSections = options.controlSections ?? 16;
    this.rxFramesPerPacket = options.rxFramesPerPacket ?? 1;
    this.rssQueues = options.rssQueues ?? 1;
    this.subchannelOrder = options.subchannelOrder ?? "offers-first";
    if (this.subchannelOrder !== "offers-first" && this.subchannelOrder !== "completion-first") {
      throw new RangeError(`sub-channel order ${String(this.subchannelOrder)}`);
    }
    if (!Number.isInteger(this.rssQueues) || this.rssQueues < 1 || this.rssQueues > 64) {
      throw new RangeError(`rss queues ${this.rssQueues}`);
    }
    if (!Number.isInteger(this.recvSectionSize) || this.recvSectionSize < RX_RNDIS_OVERHEAD + 64) {
      throw new RangeError(`receive section size ${this.recvSectionSize}`);
    }
    if (!Number.isInteger(this.sendSectionSize) || this.sendSectionSize < 1) {
      throw new RangeError(`send section size ${this.sendSectionSize}`);
    }
    if (!Number.isInteger(this.rxFramesPerPacket) || this.rxFramesPerPacket < 1) {
      throw new RangeError(`rx frames per packet ${this.rxFramesPerPacket}`);
    }
    this.#verify = options.verifyTxFrame ?? defaultVerify;
    this.#labFrames = options.verifyTxFrame === undefined;
    this.#maxTxBytes = options.maxTxMessageBytes ?? 256 * 1024;
    this.#txSources = {
      sendBuffer: undefined,
      sendSectionSize: this.sendSectionSize,
      guestMemory: undefined,
      maxBytes: this.#maxTxBytes,
      scratch: this.#gather,
    };
    this.#readBudget = options.readBudget ?? 64;
    this.adversary = options.adversary;
    this.#rndis = new RndisDevice({
      mac: options.mac ?? NETVSP_HOST_MAC,
      linkSpeedBps: options.linkSpeedBps ?? 10_000_000_000,
      maxPacketsPerMessage: options.rndisMaxPacketsPerMessage ?? 8,
      packetAlignmentFactor: options.rndisPacketAlignmentFactor ?? 3,
      maxTransferSize: 0xefff_ffff,
      rssQueues: this.rssQueues,
    });
    this.#rndis.onRssParam = (p) => this.#rss.apply(p);
    this.#rx = new RxGenerator(options.rxSeed ?? 1, this.recvSectionSize);
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /** The channel opened (the VMBus server's onOpen): start the NVSP handshake from scratch. */
  open(ports: NetvspPorts): void {
    if (this.#ports !== undefined) throw new Error("netvsp: open() on an open channel");
    this.#reset();
    this.#ports = ports;
    this.#phase = "version";
  }

  /**
   * A sub-channel opened (OPENCHANNEL on the sub-channel this host offered): its ring carries data
   * packets and receive completions from now on.
   */
  openQueue(index: number, ports: NetvspPorts): void {
    if (!Number.isInteger(index) || index < 1) throw new RangeError(`netvsp: queue ${index}`);
    if (this.#queuePorts[index] !== undefined) throw new Error(`netvsp: queue ${index} already open`);
    this.#queuePorts[index] = ports;
    this.counters.queues[index] = newQueueCounters();
    this.#rss.spread(this.#openQueueCount());
  }

  /** A sub-channel closed (or was rescinded): frames in flight on it are completed by nobody. */
  closeQueue(index: number): void {
    if (this.#queuePorts[index] === undefined) return;
    this.#queuePorts[index] = undefined;
    for (const p of this.#pending) if (p.queue === index) this.#count("queue-closed-with-pending");
    for (let i = this.#pending.length - 1; i >= 0; i--)
      if (this.#pending[i]!.queue === index) this.#pending.splice(i, 1);
    this.#rss.spread(this.#openQueueCount());
  }

  /** Queues open now, the primary included (the indirection table spreads over 0..n-1). */
  #openQueueCount(): number {
    let n = 1;
    while (this.#queuePorts[n] !== undefined) n++;
    return n;
  }

  /** The channel closed: forget buffers, transactions and queues (frames queued for RX are kept). */
  close(): void {
    this.#reset();
    this.#ports = undefined;
    this.#phase = "closed";
  }

  #reset(): void {
    this.#version = 0;
    this.#packetSize = NVSP_MESSAGE_SIZE_V1;
    this.#ndisVersion = null;
    this.#ndisConfig = false;
    this.#recv = null;
    this.#send = null;
    this.#outstanding.clear();
    this.#pending.length = 0;
    this.#controlQueue.length = 0;
    this.#controlQueueBytes = 0;
    this.#rewriteQueue = [];
    this.#idle = false;
    this.#offersDue = 0;
    this.#rndis.reset();
    this.#queuePorts.length = 0;
    this.#q = 0;
    this.#rss.spread(1);
  }

  // ---- inspection ----------------------------------------------------------------------------

  get phase(): NetvspPhase {
    return this.#phase;
  }

  /** The negotiated NVSP version, or 0 before INIT succeeded. */
  get version(): number {
    return this.#version;
  }

  get ndisVersion(): { readonly major: number; readonly minor: number } | null {
    return this.#ndisVersion;
  }

  get rndisState(): RndisDeviceState {
    return this.#rndis.state;
  }

  get packetFilter(): number {
    return this.#rndis.packetFilter;
  }

  /**
   * The receive indirection table in use: `source` "default" (ethtool_rxfh_indir_default over the open
   * queues), "guest" (the guest's OID_GEN_RECEIVE_SCALE_PARAMETERS) or "disabled" (all on the primary);
   * `accepted` counts guest tables taken since the host was made.
   */
  get rss(): {
    readonly source: RssSource;
    readonly table: readonly number[];
    readonly queues: number;
    readonly accepted: number;
  } {
    const r = this.#rss;
    return {
      source: r.source,
      table: Array.from(r.table.subarray(0, r.size)),
      queues: r.queues,
      accepted: r.accepted,
    };
  }

  /** The receive buffer as the host tracks it, or null before SEND_RECV_BUF. */
  get recvBuffer(): {
    readonly size: number;
    readonly sectionSize: number;
    readonly sectionCount: number;
    readonly sectionsInUse: number;
  } | null {
    const r = this.#recv;
    if (r === null) return null;
    return {
      size: r.view.size,
      sectionSize: this.recvSectionSize,
      sectionCount: r.sections.count,
      sectionsInUse: r.sections.inUse,
    };
  }

  get sendBufferMapped(): boolean {
    return this.#send !== null;
  }

  /** Transfer-page packets the guest has not completed yet. */
  get outstandingRx(): number {
    return this.#outstanding.size;
  }

  /** Queues open (the primary and the open sub-channels). */
  get openQueues(): number {
    return this.#ports === undefined ? 0 : this.#openQueueCount();
  }

  /** The sequence number the next frame passed to queueRx will carry. */
  get rxNextSeq(): number {
    return this.#rx.nextSeq + this.#rx.pending;
  }

  /** Frames queued for the receive path and not yet in the ring. */
  get rxPending(): number {
    return this.#rx.pending;
  }

  /** Receive-path frames can flow: buffer mapped, RNDIS initialized, a packet filter set. */
  get rxReady(): boolean {
    return this.#recv !== null && this.#rndis.state === "operational" && this.#rndis.packetFilter !== 0;
  }

  // ---- traffic -------------------------------------------------------------------------------

  /** Queue frames of these sizes (26 .. section size - 44) for the receive path, sent by poll(). */
  queueRx(sizes: readonly number[]): void {
    this.#rx.enqueue(sizes);
  }

  /**
   * Do whatever work is possible now: flush completions that met a full ring, read and handle guest
   * packets (up to the read budget), send queued control responses and receive-path frames. Returns
   * whether anything happened; call again until it returns false.
   */
  poll(): boolean {
    const ports = this.#ports;
    if (ports === undefined) return false;
    let progress = false;
    // Rewrites wait for the guest's turn (the host went idle since the frames went out).
    if (this.#idle && this.#rewriteQueue.length > 0) this.#applyRewrites();
    // So do "completion-first" offers: the guest has handled the completion before it sees them.
    if (this.#idle && this.#offersDue > 0 && this.#offerDue(ports)) progress = true;
    if (this.#flushPending()) progress = true;
    if (this.#pending.length === 0 && this.#readRing(ports)) progress = true;
    if (this.#pending.length === 0 && this.#pollQueues()) progress = true;
    if (this.#flushControl()) progress = true;
    if (this.#flushRx()) progress = true;
    this.#idle = !progress;
    return progress;
  }

  /**
   * Reads and handles guest packets of one ring (up to the read budget), then publishes the read index.
   * Stops early when a completion could not be written, until the guest drains its inbound ring.
   */
  #readRing(ports: NetvspPorts): boolean {
    let read = 0;
    while (read < this.#readBudget) {
      const r = ports.ring.readPacket();
      if (r.kind === "empty") break;
      if (r.kind === "corrupt") {
        this.#count(`ring-corrupt-${r.problem}`);
        break;
      }
      read++;
      this.#handlePacket(r.packet);
      if (this.#pending.length > 0) break;
    }
    if (read === 0) return false;
    if (ports.ring.commitRead().signal) ports.signalGuest?.();
    return true;
  }

  /** The sub-channels' rings: data packets and receive completions, each answered on its own queue. */
  #pollQueues(): boolean {
    let progress = false;
    for (let q = 1; q < this.#queuePorts.length && this.#pending.length === 0; q++) {
      const ports = this.#queuePorts[q];
      if (ports === undefined) continue;
      this.#q = q;
      try {
        if (this.#readRing(ports)) progress = true;
      } finally {
        this.#q = 0;
      }
    }
    return progress;
  }

  // ---- adversarial actions -------------------------------------------------------------------

  /** Send a SEND_RNDIS_PKT_COMPLETE for a transaction id the guest may never have used. */
  forgeTxCompletion(transId: bigint, status: number = NVSP_STATUS.SUCCESS): boolean {
    const payload = this.#nvsp({ kind: "send-rndis-pkt-complete", status });
    return this.#emit("forged-completion", transId, encodeCompletionPacket(transId, payload)) === "sent";
  }

  /**
   * Send NVSP 5 SEND_INDIRECTION_TABLE on the primary channel (inband, no completion asked): the queue
   * each of the guest's VRSS_SEND_TAB_SIZE flow-hash buckets transmits on, as Hyper-V sends it once
   * the sub-channels are up. `options` may make the header claim another count or offset, or put the
   * entries elsewhere (encodeSendIndirectionTable). False when the ring is full or the channel closed.
   */
  sendIndirectionTable(
    entries: ArrayLike<number>,
    options: { readonly count?: number; readonly offset?: number; readonly at?: number } = {},
  ): boolean {
    const msg = encodeSendIndirectionTable(entries, options);
    return (
      this.#emit("send-indirection-table", 0n, encodeInbandPacket(VM_PKT.DATA_INBAND, 0, 0n, msg)) === "sent"
    );
  }

  /** Write straight into the receive buffer through the host's view (any time, any offset). */
  rewriteRecvBuffer(offset: number, bytes: Uint8Array): boolean {
    const r = this.#recv;
    if (r === null || !Number.isSafeInteger(offset) || offset < 0 || offset + bytes.length > r.view.size) {
      return false;
    }
    try {
      r.view.write(offset, bytes);
      return true;
    } catch {
      this.#count("recv-buffer-access-refused");
      return false;
    }
  }

  // ---- guest packets -------------------------------------------------------------------------

  /** The parse of the guest's GPA-direct packets (page buffers), refilled packet by packet. */
  readonly #gpaDirect = new GpaDirectReader();

  #handlePacket(pkt: HostPacket): void {
    switch (pkt.desc.type) {
      case VM_PKT.COMP:
        this.#handleRxCompletion(pkt);
        return;
      case VM_PKT.DATA_INBAND:
        this.#handleNvsp(pkt, pkt.data, []);
        return;
      case VM_PKT.DATA_USING_GPA_DIRECT: {
        const g = this.#gpaDirect.read(pkt.bytes);
        if (!g.ok) {
          this.#count(`gpa-direct-${g.error.reason}`);
          return;
        }
        this.#handleNvsp(pkt, g.value.data, g.value.ranges);
        return;
      }
      default:
        this.#count("vmbus-packet-type-unsupported");
    }
  }

  #handleNvsp(pkt: HostPacket, data: Uint8Array, ranges: readonly GpaDirectRange[]): void {
    const decoded = decodeNvspMessage(data, "guest-to-host");
    if (!decoded.ok) {
      this.#count(decoded.error.reason);
      return;
    }
    const msg = decoded.value;
    const tid = pkt.desc.transId;
    const wantsCompletion = (pkt.desc.flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED) !== 0;
    if (msg.kind !== "send-rndis-pkt") this.#countControl(msg.kind);
    if (this.#q !== 0 && msg.kind !== "send-rndis-pkt") {
      // A sub-channel carries data only (OpenVMM's sub-channel queues run no control state machine).
      this.#count("nvsp-control-on-subchannel");
      return;
    }
    if (msg.kind === "init") {
      this.#handleInit(msg.minProtocolVersion, msg.maxProtocolVersion, tid, wantsCompletion);
      return;
    }
    if (this.#phase === "version") {
      this.#count("nvsp-before-init");
      return;
    }
    switch (msg.kind) {
      case "send-ndis-version":
        if (this.#ndisVersion !== null) this.#count("ndis-version-repeated");
        this.#ndisVersion = { major: msg.ndisMajor, minor: msg.ndisMinor };
        this.#updatePhase();
        if (wantsCompletion) this.#complete("empty-completion", tid, new Uint8Array(0));
        return;
      case "send-ndis-config": {
        if (this.#version < V.V2) {
          this.#count("nvsp-type-not-in-version");
          return;
        }
        if (this.#ndisConfig) this.#count("ndis-config-repeated");
        // As OpenVMM (and vmswitch): an MTU outside [1514, 9216] falls back to the default.
        this.#rndis.mtu = msg.mtu >= MTU_DEFAULT && msg.mtu <= MTU_MAX ? msg.mtu : MTU_DEFAULT;
        this.#ndisConfig = true;
        this.#updatePhase();
        if (wantsCompletion) this.#complete("empty-completion", tid, new Uint8Array(0));
        return;
      }
      case "send-recv-buf":
        this.#handleSendRecvBuf(msg.gpadlHandle, msg.id, tid, wantsCompletion);
        return;
      case "send-send-buf":
        this.#handleSendSendBuf(msg.gpadlHandle, msg.id, tid, wantsCompletion);
        return;
      case "revoke-recv-buf":
        this.#handleRevokeRecv(msg.id, tid, wantsCompletion);
        return;
      case "revoke-send-buf":
        this.#handleRevokeSend(msg.id, tid, wantsCompletion);
        return;
      case "send-rndis-pkt":
        this.#handleRndisPacket(
          msg.sendBufSectionIndex,
          msg.sendBufSectionSize,
          ranges,
          tid,
          wantsCompletion,
        );
        return;
      case "subchannel-request":
        this.#handleSubchannelRequest(msg.operation, msg.numSubchannels, tid, wantsCompletion);
        return;
      default:
        // VF association, data-path switch, chimney...: not offered by this host.
        this.#count("nvsp-type-unsupported");
    }
  }

  /**
   * NVSP INIT: the highest version inside both the guest's [min, max] and the host's range (only
   * versions the protocol defines), and >= 6.1 for an isolated guest. Linux offers min = max and walks
   * its list downwards on refusal. OpenVMM puts INVALID_PROTOCOL_VERSION in negotiated_protocol_ver
   * (the field is deprecated and Linux never reads it); the model reports the version it chose, and
   * refuses with status NONE as OpenVMM does.
   */
  #handleInit(guestMin: number, guestMax: number, tid: bigint, wantsCompletion: boolean): void {
    let chosen = 0;
    if (this.#phase === "version") {
      for (const v of NVSP_VERSION_LIST) {
        if (v < guestMin || v > guestMax || v < this.minVersion || v > this.maxVersion) continue;
        if (this.isolated && v < V.V61) continue;
        chosen = v;
      }
      if (chosen === 0)
        this.#count(this.isolated && guestMax < V.V61 ? "nvsp-version-isolated" : "nvsp-version-unsupported");
    } else {
      this.#count("nvsp-init-repeated");
    }
    const reply = this.#nvsp({
      kind: "init-complete",
      negotiatedProtocolVersion: chosen === 0 ? NVSP_INVALID_PROTOCOL_VERSION : chosen,
      maxMdlChainLength: MAX_MDL_CHAIN_LENGTH,
      status: chosen === 0 ? NVSP_STATUS.NONE : NVSP_STATUS.SUCCESS,
    });
    if (wantsCompletion) this.#complete("init-complete", tid, reply);
    if (chosen !== 0) {
      this.#version = chosen;
      this.#phase = "init";
      // From here on messages are padded to the v6.1 size (OpenVMM's PACKET_SIZE_V61).
      if (chosen >= V.V61) this.#packetSize = NVSP_MESSAGE_SIZE;
    }
  }

  /**
   * NVSP 5 SUBCHANNEL, ALLOCATE: grant min(asked, rssQueues - 1) and offer that many sub-channels
   * through the VMBus server (ports.offerSubChannels), then complete with the number offered; with
   * "completion-first" the completion goes out now and the offers once the guest has had its turn.
   * Needs NVSP 5 and the receive buffer (OpenVMM answers only once the primary is ready). An adversary
   * may claim any count in the completion.
   */
  #handleSubchannelRequest(operation: number, asked: number, tid: bigint, wantsCompletion: boolean): void {
    this.counters.subchannelRequests++;
    let status: number = NVSP_STATUS.SUCCESS;
    let granted = 0;
    if (operation !== 1) {
      this.#count("subchannel-operation-unknown");
      status = NVSP_STATUS.FAIL;
    } else if (this.#version < V.V5 || this.#phase !== "ready") {
      this.#count("subchannel-request-too-early");
      status = NVSP_STATUS.FAIL;
    } else {
      const want = Math.min(asked, this.rssQueues - 1);
      const offer = this.#ports?.offerSubChannels;
      if (want > 0 && offer !== undefined && this.subchannelOrder === "completion-first") {
        granted = want;
        this.#offersDue += want;
      } else granted = want > 0 && offer !== undefined ? offer(want) : 0;
      this.counters.subchannelsGranted += granted;
    }
    const claimed = this.adversary?.subchannelGrant ?? granted;
    if (wantsCompletion)
      this.#complete(
        "subchannel-complete",
        tid,
        this.#nvsp({ kind: "subchannel-complete", status, numSubchannels: claimed }),
      );
  }

  /** The offers a "completion-first" completion promised, made now. */
  #offerDue(ports: NetvspPorts): boolean {
    const n = this.#offersDue;
    this.#offersDue = 0;
    return (ports.offerSubChannels?.(n) ?? 0) > 0;
  }

  #handleSendRecvBuf(gpadl: number, id: number, tid: bigint, wantsCompletion: boolean): void {
    const fail = (reason: string): void => {
      this.#count(reason);
      if (wantsCompletion) {
        const zero = { offset: 0, subAllocSize: 0, numSubAllocs: 0, endOffset: 0 };
        const reply = this.#nvsp({
          kind: "send-recv-buf-complete",
          status: NVSP_STATUS.FAIL,
          numSections: 0,
          section: zero,
        });
        this.#complete("send-recv-buf-complete", tid, reply);
      }
    };
    if (this.#recv !== null) {
      fail("recv-buffer-already-mapped");
      return;
    }
    const view = this.#lookup(gpadl);
    if (view === undefined) {
      fail("gpadl-unknown");
      return;
    }
    const size = this.recvSectionSize;
    const count = Math.floor(view.size / size);
    if (count <= this.controlSections) {
      fail("recv-buffer-too-small");
      return;
    }
    this.#recv = { gpadl, id, view, sections: new RecvSections(count, this.controlSections) };
    this.#updatePhase();
    if (!wantsCompletion) return;
    let section = { offset: 0, subAllocSize: size, numSubAllocs: count, endOffset: size * count };
    let numSections = 1;
    const tamper = this.adversary?.recvBufComplete;
    if (tamper !== undefined) {
      if (tamper === "section-size-67") {
        const n = Math.floor(view.size / 67);
        section = { offset: 0, subAllocSize: 67, numSubAllocs: n, endOffset: 67 * n };
      } else if (tamper === "count-overflow") {
        const n = Math.ceil(2 ** 32 / size);
        section = { ...section, numSubAllocs: n, endOffset: (size * n) >>> 0 };
      } else if (tamper === "offset-nonzero") {
        section = { ...section, offset: size, endOffset: size * (count + 1) };
      } else {
        numSections = 2;
      }
    }
    const reply = this.#nvsp({
      kind: "send-recv-buf-complete",
      status: NVSP_STATUS.SUCCESS,
      numSections,
      section,
    });
    this.#complete("send-recv-buf-complete", tid, reply);
  }

  #handleSendSendBuf(gpadl: number, id: number, tid: bigint, wantsCompletion: boolean): void {
    let reason: string | null = null;
    if (this.#send !== null) reason = "send-buffer-already-mapped";
    else {
      const view = this.#lookup(gpadl);
      if (view === undefined) reason = "gpadl-unknown";
      else this.#send = { gpadl, id, view };
    }
    if (reason !== null) this.#count(reason);
    if (wantsCompletion) {
      const ok = reason === null;
      const reply = this.#nvsp({
        kind: "send-send-buf-complete",
        status: ok ? NVSP_STATUS.SUCCESS : NVSP_STATUS.FAIL,
        sectionSize: ok ? this.sendSectionSize : 0,
      });
      this.#complete("send-send-buf-complete", tid, reply);
    }
  }

  #handleRevokeRecv(id: number, tid: bigint, wantsCompletion: boolean): void {
    const r = this.#recv;
    if (r === null) this.#count("revoke-without-buffer");
    else {
      if (r.id !== id) this.#count("revoke-id-mismatch");
      // The sections are gone with the buffer: outstanding transfer pages can no longer complete.
      if (this.#outstanding.size > 0) this.#count("revoke-with-rx-outstanding");
      this.#outstanding.clear();
      this.#controlQueue.length = 0;
      this.#controlQueueBytes = 0;
      this.#recv = null;
    }
    if (wantsCompletion) this.#complete("empty-completion", tid, new Uint8Array(0));
  }

  #handleRevokeSend(id: number, tid: bigint, wantsCompletion: boolean): void {
    const s = this.#send;
    if (s === null) this.#count("revoke-without-buffer");
    else {
      if (s.id !== id) this.#count("revoke-id-mismatch");
      this.#send = null;
    }
    if (wantsCompletion) this.#complete("empty-completion", tid, new Uint8Array(0));
  }

  #updatePhase(): void {
    if (this.#phase !== "init") return;
    // OpenVMM's is_ready_to_initialize, with the send buffer optional (it is for RNDIS traffic too).
    const configOk = this.#ndisConfig || this.#version < V.V2;
    if (configOk && this.#ndisVersion !== null && this.#recv !== null) this.#phase = "ready";
  }

  readonly #nvspScratch = new Uint8Array(NVSP_MESSAGE_SIZE);
  /** Transfer-page packets of up to 32 ranges are built here (larger ones get their own buffer). */
  readonly #xferScratch = new Uint8Array(XFER_PAGE_HEADER_SIZE + 8 * 32 + NVSP_MESSAGE_SIZE);
  /** Views of #xferScratch by len8, made once per packet length. */
  readonly #xferViews: (Uint8Array | undefined)[] = [];
  /** Only its first 8 bytes (type, status) are ever written: the rest stays the struct's zero padding. */
  readonly #completionScratch = new Uint8Array(NVSP_MESSAGE_SIZE);
  /** The views of a batch's messages, kept between walks of the gather buffer. */
  readonly #msgViews: Uint8Array[] = [];
  /** Whether every message of the SEND_RNDIS_PKT being walked was good. */
  #walkGood = true;
  /** The walk's visitor, made once: a data frame or a control request. */
  readonly #visitRndis = (type: number, msg: Uint8Array): boolean => {
    const ok = type === RNDIS_MSG_TYPE.PACKET ? this.#txFrame(msg) : this.#control(msg);
    if (!ok) this.#walkGood = false;
    return ok;
  };

  /** SEND_RNDIS_PKT: data frames (verified and counted) and RNDIS control requests (answered). */
  #handleRndisPacket(
    sectionIndex: number,
    sectionSize: number,
    ranges: readonly GpaDirectRange[],
    tid: bigint,
    wantsCompletion: boolean,
  ): void {
    this.counters.txPackets++;
    let good = this.#phase === "ready";
    if (!good) this.#count("rndis-before-ready");
    else {
      const src = this.#txSources;
      src.sendBuffer = this.#send?.view;
      src.guestMemory = this.#ports?.guestMemory;
      const gathered = gatherTxBytes(sectionIndex, sectionSize, ranges, src);
      if (!gathered.ok) {
        this.#count(gathered.error.reason);
        good = false;
      } else {
        this.#walkGood = true;
        const walked = walkRndisMessages(gathered.value, this.#visitRndis, this.#msgViews);
        if (!this.#walkGood) good = false;
        if (!walked.ok) {
          this.#count(walked.error.reason);
          good = false;
        }
      }
    }
    if (!good) this.counters.txPacketsFailed++;
    const qc = this.counters.queues[this.#q];
    if (qc !== undefined) qc.txPackets++;
    if (wantsCompletion) {
      // The same bytes as #nvsp({ kind: "send-rndis-pkt-complete", status }), written into a zeroed
      // scratch; #complete copies them into the completion packet at once.
      const status = good ? NVSP_STATUS.SUCCESS : NVSP_STATUS.FAIL;
      const reply = writeNvspRecvCompletion(this.#completionScratch, status).subarray(0, this.#packetSize);
      this.#complete("send-rndis-pkt-complete", tid, reply);
      if (this.adversary?.duplicateTxCompletions === true)
        this.#complete("send-rndis-pkt-complete", tid, reply);
    }
  }

  /**
   * One RNDIS PACKET: the checks of handle_rndis_packet_message, then the frame verdict. The message is
   * checked as decodeRndisMessage checks it and only the fields the host looks at are read.
   */
  #txFrame(msg: Uint8Array): boolean {
    const bad = checkRndisPacket(msg);
    if (bad !== null) {
      this.#count(bad);
      return false;
    }
    if (
      rndisPacketField(msg, "numOobDataElements") !== 0 ||
      rndisPacketField(msg, "oobDataLen") !== 0 ||
      rndisPacketField(msg, "oobDataOffset") !== 0 ||
      rndisPacketField(msg, "vcHandle") !== 0
    ) {
      this.#count("rndis-unsupported-behavior");
      return false;
    }
    const dataLen = rndisPacketField(msg, "dataLen");
    if (dataLen === 0) {
      this.#count("rndis-packet-empty");
      return false;
    }
    this.counters.txFrames++;
    this.counters.txBytes += dataLen;
    const start = RNDIS_HEADER_SIZE + rndisPacketField(msg, "dataOffset");
    const good = this.#labFrames
      ? labFrameSeqAt(msg, start, dataLen) >= 0
      : this.#verify(msg.subarray(start, start + dataLen));
    if (good) {
      this.counters.txFramesVerified++;
      const qc = this.counters.queues[this.#q];
      if (qc !== undefined) qc.txFramesVerified++;
      return true;
    }
    this.counters.txBadFrames++;
    this.#count("tx-frame-bad");
    // A frame that fails verification is still a well-formed packet: the NVSP status stays SUCCESS.
    return true;
  }

  /** One RNDIS control request: answered now, the response queued for a control section. */
  #control(msg: Uint8Array): boolean {
    const out = this.#rndis.handle(msg);
    if (!out.ok) {
      this.#count(out.error.reason);
      return false;
    }
    this.#countControl(out.value.kind);
    if (out.value.note !== null) this.#count(out.value.note);
    const response = out.value.response;
    if (response === null) return true;
    if (response.length > this.recvSectionSize) {
      this.#count("control-response-too-large");
      return false;
    }
    if (this.#controlQueueBytes + response.length > CONTROL_QUEUE_MAX_BYTES) {
      this.#count("too-many-control-messages");
      return false;
    }
    this.#controlQueue.push(response);
    this.#controlQueueBytes += response.length;
    return true;
  }

  /** The guest's RNDIS_PKT_COMPLETE for a transfer-page packet: release its sections. */
  #handleRxCompletion(pkt: HostPacket): void {
    // Read in place: −1 for whatever decodeNvspMessage would not decode as SEND_RNDIS_PKT_COMPLETE.
    const status = readNvspRecvCompletion(pkt.data);
    if (status < 0) {
      this.#count("rx-completion-malformed");
      return;
    }
    // Every id the host gave out is below 2^53; anything larger (−1 here) is unknown without a lookup.
    const tid = pkt.transIdNumber;
    const t = tid < 0 ? undefined : this.#outstanding.get(tid);
    if (t === undefined) {
      this.#count(tid > 0 && tid < this.#nextTid ? "rx-completion-duplicate" : "rx-completion-unknown");
      return;
    }
    this.#outstanding.delete(tid);
    // The guest completes a receive on the channel it came in on (netvsc_send_recv_completion on nvchan).
    if (t.queue !== this.#q) this.#count("rx-completion-wrong-queue");
    const qc = this.counters.queues[t.queue];
    if (qc !== undefined) qc.rxFramesCompleted += t.frames;
    const sections = this.#recv!.sections;
    for (let i = 0; i < t.count; i++) {
      const problem = sections.free(t.sections[i]!);
      if (problem !== null) throw new Error(`netvsp: own section bookkeeping broken: ${problem}`);
    }
    this.counters.rxFramesCompleted += t.frames;
    this.counters.rxBytesCompleted += t.bytes;
    if (status !== NVSP_STATUS.SUCCESS) this.counters.rxCompletionsFailed++;
    this.#freeTransactions.push(t);
  }

  /** A transaction record for a transfer-page packet (a completed one reused), its sections empty. */
  #transaction(queue: number): RxTransaction {
    const t = this.#freeTransactions.pop() ?? newRxTransaction();
    t.queue = queue;
    t.count = 0;
    t.frames = 0;
    t.bytes = 0;
    return t;
  }

  /** The reused range record `k` of the packet being built. */
  #rxRange(k: number, offset: number, length: number): { offset: number; length: number } {
    let r = this.#rxRangePool[k];
    if (r === undefined) {
      r = { offset: 0, length: 0 };
      this.#rxRangePool[k] = r;
    }
    r.offset = offset;
    r.length = length;
    return r;
  }

  // ---- host to guest -------------------------------------------------------------------------

  #flushControl(): boolean {
    const recv = this.#recv;
    if (recv === null) return false;
    let progress = false;
    while (this.#controlQueue.length > 0) {
      const response = this.#controlQueue[0]!;
      const section = recv.sections.allocateControl();
      if (section < 0) break; // every control section is with the guest: wait for its completions
      const offset = section * this.recvSectionSize;
      if (!this.#writeRecv(recv.view, offset, response)) {
        recv.sections.release(section);
        this.#controlQueue.shift();
        this.#controlQueueBytes -= response.length;
        continue;
      }
      const tid = this.#nextTid;
      this.#rxRange(0, offset, response.length);
      const pkt = this.#xferPacket(tid, NVSP_CHANNEL_TYPE.CONTROL, recv.id, this.#rxRangePool, 1);
      const r = this.#emit("rx-control", tid, pkt);
      if (r === "full") {
        recv.sections.release(section);
        break;
      }
      this.#nextTid++;
      this.#controlQueue.shift();
      this.#controlQueueBytes -= response.length;
      if (r === "failed") {
        recv.sections.release(section);
        continue;
      }
      const t = this.#transaction(0);
      t.sections[0] = section;
      t.count = 1;
      t.tid = tid;
      this.#outstanding.set(t);
      this.counters.controlResponsesSent++;
      progress = true;
    }
    return progress;
  }

  #flushRx(): boolean {
    const recv = this.#recv;
    if (recv === null || this.#rx.pending === 0 || !this.rxReady) return false;
    let progress = false;
    const sectionSize = this.recvSectionSize;
    while (this.#rx.pending > 0) {
      const want = Math.min(this.rxFramesPerPacket, this.#rx.pending);
      // The sections go straight into the transaction record the packet will be tracked by.
      const t = this.#transaction(0);
      const sections = t.sections;
      let n = 0;
      let bytes = 0;
      let queue = 0;
      for (let k = 0; k < want; k++) {
        const s = recv.sections.allocateData();
        if (s < 0) break;
        const msg = this.#rx.build(k);
        // RSS: the packet goes out on its first frame's queue (a closed queue falls back to the primary).
        if (k === 0 && this.#rss.queues > 1) {
          const q = this.#rss.queueOf(msg.subarray(RX_RNDIS_OVERHEAD));
          queue = this.#queuePorts[q] === undefined ? 0 : q;
        }
        if (!this.#writeRecv(recv.view, s * sectionSize, msg)) {
          recv.sections.release(s);
          break;
        }
        sections[n] = s;
        this.#rxRange(n, s * sectionSize, msg.length);
        n++;
        bytes += this.#rx.sizeAt(k);
      }
      t.count = n;
      if (n === 0) {
        this.#freeTransactions.push(t);
        break; // no free data section: the guest still holds them all
      }
      const tid = this.#nextTid;
      let ranges: readonly { offset: number; length: number }[] = this.#rxRangePool;
      const tamper = this.adversary?.xferRange;
      if (tamper !== undefined) {
        const r0 = ranges[0]!;
        const tampered = ranges.slice(0, n);
        tampered[0] =
          tamper === "offset-past-buffer"
            ? { offset: recv.view.size + 8, length: r0.length }
            : { offset: r0.offset, length: sectionSize + 1 };
        ranges = tampered;
      }
      this.#q = queue;
      const r = this.#emit("rx-data", tid, this.#xferPacket(tid, NVSP_CHANNEL_TYPE.DATA, recv.id, ranges, n));
      this.#q = 0;
      if (r === "full" || r === "failed") {
        for (let i = 0; i < n; i++) recv.sections.release(sections[i]!);
        this.#freeTransactions.push(t);
        break;
      }
      this.#nextTid++;
      this.#rx.commit(n);
      t.queue = queue;
      t.frames = n;
      t.bytes = bytes;
      t.tid = tid;
      this.#outstanding.set(t);
      const qc = this.counters.queues[queue];
      if (qc !== undefined) {
        qc.rxPacketsSent++;
        qc.rxFramesSent += n;
      }
      this.counters.rxPacketsSent++;
      this.counters.rxFramesSent += n;
      this.counters.rxBytesSent += bytes;
      if (this.adversary?.rxRewrite !== undefined) this.#rewriteQueue.push(tid);
      progress = true;
    }
    return progress;
  }

  #applyRewrites(): void {
    const rw = this.adversary?.rxRewrite;
    const recv = this.#recv;
    const tids = this.#rewriteQueue;
    this.#rewriteQueue = [];
    if (rw === undefined || recv === null) return;
    for (const tid of tids) {
      const t = this.#outstanding.get(tid);
      if (t === undefined) continue;
      this.rewriteRecvBuffer(t.sections[0]! * this.recvSectionSize + rw.offset, rw.bytes);
    }
  }

  /**
   * The transfer-page packet of ranges[0 .. count), trans_id `tid`, in a reused buffer (the ring copies
   * it at once), unless an interceptor is installed: what it is handed may be kept, so it gets its own.
   */
  #xferPacket(
    tid: number,
    channelType: number,
    pagesetId: number,
    ranges: readonly { offset: number; length: number }[],
    count: number,
  ): Uint8Array {
    // The NVSP part is copied into the packet at once: one scratch serves every packet.
    writeNvspRndisPacket(this.#nvspScratch, channelType, NETVSC_INVALID_INDEX, 0);
    const input = this.#xferInput;
    if (input.nvsp.length !== this.#packetSize) input.nvsp = this.#nvspScratch.subarray(0, this.#packetSize);
    input.transactionId = tid;
    input.ranges = ranges;
    input.rangeCount = count;
    input.pagesetId = pagesetId;
    const size = xferPagePacketSize(count, input.nvsp.length);
    let out: Uint8Array;
    if (this.adversary?.interceptor !== undefined || size > this.#xferScratch.length)
      out = new Uint8Array(size);
    else {
      // One view of the scratch per packet length (a steady stream reuses it).
      const views = this.#xferViews;
      let view = views[size >> 3];
      if (view === undefined) {
        view = this.#xferScratch.subarray(0, size);
        views[size >> 3] = view;
      }
      out = view;
    }
    writeXferPagePacket(out, input);
    input.ranges = this.#rxRangePool;
    return out;
  }

  #writeRecv(view: HostGpadlView, offset: number, bytes: Uint8Array): boolean {
    try {
      view.write(offset, bytes);
      return true;
    } catch {
      this.#count("recv-buffer-access-refused");
      return false;
    }
  }

  /** A completion, queued behind earlier ones that met a full ring. */
  #complete(kind: NetvspOutgoingKind, tid: bigint, payload: Uint8Array): void {
    const queue = this.#q;
    // With nothing queued and nobody to hand the packet to, the ring writes it straight from the
    // payload (no packet built); only a completion that meets a full ring is encoded, to wait.
    if (this.#pending.length === 0 && this.adversary?.interceptor === undefined) {
      const ports = queue === 0 ? this.#ports : this.#queuePorts[queue];
      if (ports?.ring.sendCompletion !== undefined) {
        if (this.#sent(ports, ports.ring.sendCompletion(tid, payload)) === "full")
          this.#pending.push({ queue, kind, transId: tid, bytes: encodeCompletionPacket(tid, payload) });
        return;
      }
    }
    const bytes = encodeCompletionPacket(tid, payload);
    if (this.#pending.length > 0) {
      this.#pending.push({ queue, kind, transId: tid, bytes });
      return;
    }
    if (this.#emit(kind, tid, bytes) === "full") this.#pending.push({ queue, kind, transId: tid, bytes });
  }

  #flushPending(): boolean {
    let progress = false;
    while (this.#pending.length > 0) {
      const p = this.#pending[0]!;
      this.#q = p.queue;
      const r = this.#emit(p.kind, p.transId, p.bytes);
      this.#q = 0;
      if (r === "full") break;
      this.#pending.shift();
      progress = true;
    }
    return progress;
  }

  /** Every outgoing packet goes through here: the interceptor, the ring, the full-ring accounting. */
  #emit(kind: NetvspOutgoingKind, transId: TransIdValue, bytes: Uint8Array): EmitResult {
    const ports = this.#q === 0 ? this.#ports : this.#queuePorts[this.#q];
    if (ports === undefined) return "failed";
    let out = bytes;
    const intercept = this.adversary?.interceptor;
    if (intercept !== undefined) {
      // The interceptor sees the u64 as a bigint (made only for it).
      const wireTid = typeof transId === "bigint" ? transId : BigInt(transId);
      const replaced = intercept({ kind, transId: wireTid, bytes });
      if (replaced === null) {
        this.counters.intercepted++;
        return "dropped";
      }
      if (replaced !== undefined) {
        this.counters.intercepted++;
        out = new Uint8Array(Math.max(16, Math.ceil(replaced.length / 8) * 8));
        out.set(replaced);
      }
    }
    return this.#sent(ports, ports.ring.send(out));
  }

  /** The accounting of one ring write: the guest signalled, a full ring counted, a failure counted. */
  #sent(ports: NetvspPorts, r: Result<RingWriteOk>): EmitResult {
    if (r.ok) {
      if (r.value.signal) ports.signalGuest?.();
      return "sent";
    }
    if (r.error.code === "EAGAIN") {
      this.counters.ringFullRetries++;
      return "full";
    }
    this.#count(`ring-write-${r.error.reason}`);
    return "failed";
  }

  /** An NVSP message padded to the negotiated packet size. */
  #nvsp(msg: NvspMessage): Uint8Array {
    return encodeNvspMessage(msg).subarray(0, this.#packetSize);
  }

  #lookup(gpadl: number): HostGpadlView | undefined {
    try {
      return this.#ports?.gpadl(gpadl);
    } catch {
      return undefined;
    }
  }

  #count(reason: string): void {
    this.counters.rejections.count(reason);
  }

  #countControl(kind: string): void {
    const c = this.counters.control;
    c[kind] = (c[kind] ?? 0) + 1;
  }
}
