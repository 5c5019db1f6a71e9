// The driver's state, shared by its modules: struct net_device_context (what outlives an attach: the
// channel, the queue, the counters) and struct netvsc_device (one attach: buffers, sections, the
// completion ring, the pending batch). Internal: not exported from the package index.

import type { GuestMemory } from "@ivm/memory";
import type { NvspMessage, RndisMessage } from "@ivm/netvsc-protocol";
import type { SharedBuffer, SharedBufferStrategy } from "@ivm/shared-buffer";
import type { DmaDevice } from "@ivm/swiotlb";
import type { Gpadl, HvPageBuffer, KernelContext, Scheduler, VmbusChannel } from "@ivm/vmbus";
import type { NetvscChannel } from "./queues.js";
import type { RecvCompRing } from "./recv-comp-ring.js";
import type { RxPacketInfo } from "./rndis-ppi.js";
import type { SendSectionMap } from "./send-buffer.js";
import type { NetvscStats } from "./stats.js";

/** What the platform hands the driver at probe: the hv_device's channel, its DMA device, the strategy. */
export interface NetvscServices {
  readonly channel: VmbusChannel;
  readonly scheduler: Scheduler;
  readonly memory: GuestMemory;
  readonly strategy: SharedBufferStrategy;
  readonly dma: DmaDevice;
  /** hv_is_isolation_supported(): NVSP >= 6.1 required, page buffers bounced through swiotlb. */
  readonly isolated: boolean;
  /**
   * The booted kernel profile (its `netvsc` behaviours) and where findings go. Default: the channel's
   * connection's (`channel.kernel`), so one boot has one profile.
   */
  readonly kernel?: KernelContext;
}

/** struct net_device_context, reduced: what the driver was given at probe and what survives a detach. */
export interface DriverEnv extends NetvscServices {
  /** netvsc_ring_bytes: bytes of each ring, header page included. */
  readonly ringBytes: number;
  readonly kernel: KernelContext;
  readonly stats: NetvscStats;
  readonly onReceive: ((frame: Uint8Array, info: RxPacketInfo) => void) | undefined;
  /** The primary channel's transmit queue (netdev_get_tx_queue(ndev, 0)); sub-channels have their own. */
  readonly txq: { stopped: boolean };
  /** num_online_cpus(): caps max_chn (rndis_filter_device_add). */
  readonly cpus: number;
}

/** struct netvsc_device_info: the sizes one attach uses (netvsc_devinfo_get). */
export interface DeviceInfo {
  readonly rxSections: number;
  readonly txSections: number;
  readonly recvSectionSize: number;
  readonly sendSectionSize: number;
  /** dev_info->num_chn: the channels asked for (the profile's default, or `ethtool -L`). */
  readonly numChn: number;
}

/** One of the two shared buffers, from strategy.allocate to free or leak. */
export interface NetvscBuffer {
  readonly buf: SharedBuffer;
  /** recv_buf / send_buf: where the guest touches the shared bytes; null until mapped. */
  va: number | null;
  /** The GPADL, established or the failed attempt (its `decrypted` flag decides free vs leak). */
  gpadl: Gpadl | undefined;
}

/** The skb of one frame: headroom for the RNDIS message (skb->head), then the frame (skb->data). */
export interface Skb {
  /** Direct-map address of the kmalloc'd buffer. */
  readonly va: number;
  /** Frame bytes at va + SKB_RNDIS_HEADROOM. */
  readonly len: number;
}

/** struct rndis_request, reduced: the request message in guest memory and its response. */
export interface RndisRequest {
  readonly requestId: number;
  /** kzalloc'd; the request message is written at its start. */
  readonly va: number;
  readonly msgLen: number;
  /** False for HALT, which gets no response. */
  readonly expectsResponse: boolean;
  response: RndisMessage | undefined;
  /** The control packet while its page buffers are DMA-mapped. */
  pkt: TxPacket | undefined;
}

/** packet->dma_range: the kcalloc'd array (16 B per entry) and the mappings it records. */
export interface DmaRange {
  readonly arrayVa: number;
  readonly dma: Float64Array;
  readonly len: Uint32Array;
}

/** struct hv_netvsc_packet (skb->cb) with its skb; skb null for an RNDIS control message. */
export interface TxPacket {
  skb: Skb | null;
  rndisReq: RndisRequest | null;
  sendBufIndex: number;
  /** Bytes of RNDIS message(s) this packet carries (grows when packets are batched behind it). */
  totalDataBuflen: number;
  /** rmsg_size / rmsg_pgcnt: the RNDIS header and how many page-buffer entries it takes. */
  rmsgSize: number;
  rmsgPgcnt: number;
  /** The page-buffer entries still to be sent (header first, then the frame, one per page touched). */
  pb: HvPageBuffer[];
  pageBufCnt: number;
  cpPartial: boolean;
  totalPackets: number;
  totalBytes: number;
  dmaRange: DmaRange | null;
}

/** What the request table holds for each id (the kernel's requestor address). */
export type RequestCtx =
  | { readonly kind: "init"; reply: NvspMessage | undefined }
  | { readonly kind: "tx"; readonly pkt: TxPacket };

/** struct rndis_device, reduced. */
export interface RndisState {
  state: "uninitialized" | "initializing" | "initialized" | "data-initialized";
  nextRequestId: number;
  readonly requests: Map<number, RndisRequest>;
  mac: Uint8Array | null;
  mtu: number;
  linkSpeed100bps: number;
  /** rdev->rss_key: the key the host last accepted, null until then. */
  rssKey: Uint8Array | null;
}

/** struct netvsc_device: everything one attach owns. */
export interface NetvscDev {
  readonly env: DriverEnv;
  readonly info: DeviceInfo;
  nvspVersion: number;
  /** Teardown started: completions only wake the drain waiter. */
  destroy: boolean;
  txDisable: boolean;
  recv: NetvscBuffer | undefined;
  recvBufSize: number;
  recvSectionSize: number;
  /** Non-zero once SEND_RECV_BUF_COMPLETE was read: a revoke is owed. */
  recvSectionCnt: number;
  /** chan_table[i].recv_buf: the private receive copies, one per possible channel. */
  readonly rxPrivate: number[];
  /** Parse scratch: the private copy's bytes as the CPU reads them (same contents as rxPrivate[0]). */
  rxScratch: Uint8Array;
  mrc: RecvCompRing | undefined;
  send: NetvscBuffer | undefined;
  sendBufSize: number;
  sendSectionSize: number;
  /** Non-zero once SEND_SEND_BUF_COMPLETE was accepted: a revoke is owed. */
  sendSectionCnt: number;
  sectionMap: SendSectionMap | undefined;
  /** The kcalloc'd bitmap (the SendSectionMap holds the bits; this is the measured allocation). */
  sectionMapVa: number | null;
  maxPkt: number;
  pktAlign: number;
  /** chan_table[0].msd: the packet whose section is still filling (xmit_more). */
  readonly msd: { pkt: TxPacket | null; count: number };
  queueSends: number;
  /** Packets sent and not yet completed (the requestor's contexts), released at remove if the host never answers. */
  readonly inflight: Set<TxPacket>;
  readonly rndis: RndisState;
  /** max_chn: min(VRSS_CHANNEL_MAX, CPUs, the host's num_recv_que); 1 until the RSS query. */
  maxChn: number;
  /** num_chn: channels in use (the primary and its opened sub-channels). */
  numChn: number;
  /** open_chn: channels netvsc_sc_open has handled, the primary included. */
  openChn: number;
  /** chan_table[1..]: the sub-channels (index 0 is the device itself, never stored here). */
  readonly chanTable: (NetvscChannel | undefined)[];
  /** chan_table[i].mrc for i >= 1, allocated before the sub-channel request. */
  readonly subMrc: RecvCompRing[];
  /** ndev_ctx->tx_table (VRSS_SEND_TAB_SIZE entries). */
  /**
   * ndc->rx_table: the receive indirection table the guest sends the host (ITAB_NUM queue indices),
   * ethtool_rxfh_indir_default over num_chn as rndis_filter_device_add fills it.
   */
  rxTable: Uint32Array;
  txTable: Uint16Array;
}
