// Multi-queue netvsc: struct netvsc_channel (one per VMBus channel of the NIC, chan_table[] of struct
// netvsc_device) and the channel counts of rndis_filter_device_add, netvsc_devinfo_get and
// netif_get_num_default_rss_queues.
//
// What a channel owns and what the NIC shares, as the kernel splits them: each channel has its VMBus
// channel (rings, ring GPADL, request table), its NAPI context, its receive completion ring (mrc), its
// multi-send batch (msd), its private receive copy (recv_buf), its queue_sends and its transmit queue;
// the send and receive buffers, their section bitmap, the RNDIS device and the counters are the NIC's.
// A channel's data path runs on a view of the device whose per-channel fields shadow the device's and
// whose other fields read through to it (the primary's view is the device itself).

import type { DefaultChannels } from "@ivm/kernel";
import { VRSS_CHANNEL_MAX } from "@ivm/netvsc-protocol";
import type { VmbusChannel } from "@ivm/vmbus";
import type { DriverEnv, NetvscDev } from "./nvdev.js";
import type { RecvCompRing } from "./recv-comp-ring.js";

/** What each channel did: `ethtool -S`'s per-queue tx_queue_N / rx_queue_N counters, reduced. */
export interface NetvscChannelCounters {
  /** Frames handed to this queue's ndo_start_xmit and accepted. */
  txFrames: number;
  /** Frames this queue answered NETDEV_TX_BUSY for. */
  txBusy: number;
  txDropped: number;
  /** Frames this channel's NAPI delivered to the stack. */
  rxFrames: number;
  /** Send completions this channel's NAPI processed (packets of the batches they completed). */
  txCompleted: number;
  /** Channel callbacks (interrupts) that ran this channel's NAPI poll. */
  polls: number;
}

/** struct netvsc_channel. */
export interface NetvscChannel {
  /** chan_table index: the offer's sub_channel_index (0 for the primary). */
  readonly index: number;
  readonly channel: VmbusChannel;
  /** The device as this channel's data path sees it (the device itself for channel 0). */
  readonly dev: NetvscDev;
  readonly counters: NetvscChannelCounters;
}

export function newChannelCounters(): NetvscChannelCounters {
  return { txFrames: 0, txBusy: 0, txDropped: 0, rxFrames: 0, txCompleted: 0, polls: 0 };
}

/**
 * A sub-channel's view of the device: its own channel, transmit queue, completion ring, batch,
 * queue_sends and private receive copy (chan_table[index].recv_buf); everything else (buffers,
 * sections, RNDIS state, destroy, the counters) is read from the device itself.
 */
export function subChannelView(
  nv: NetvscDev,
  channel: VmbusChannel,
  index: number,
  mrc: RecvCompRing,
): NetvscDev {
  const env: DriverEnv = { ...nv.env, channel, txq: { stopped: false } };
  const priv = nv.rxPrivate[index];
  return Object.create(nv, {
    env: { value: env, enumerable: true },
    mrc: { value: mrc, writable: true, enumerable: true },
    msd: { value: { pkt: null, count: 0 }, enumerable: true },
    queueSends: { value: 0, writable: true, enumerable: true },
    rxPrivate: { value: priv === undefined ? [] : [priv], enumerable: true },
    rxScratch: { value: new Uint8Array(nv.recvSectionSize), writable: true, enumerable: true },
  }) as NetvscDev;
}

/**
 * netif_get_num_default_rss_queues (net/core/dev.c, 6.0+): half the physical cores, at least one. The
 * model's vCPUs have no SMT siblings, so the cores are the CPUs.
 */
export function netifGetNumDefaultRssQueues(cpus: number): number {
  return Math.max(1, Math.floor(cpus / 2));
}

/** netvsc_devinfo_get's num_chn without a device: the profile's rule (see DefaultChannels). */
export function defaultNumChannels(rule: DefaultChannels, cpus: number): number {
  return rule === "vrss-8" ? 8 : Math.max(16, netifGetNumDefaultRssQueues(cpus));
}

/**
 * rndis_filter_device_add: with fewer than two receive queues on the host there is one channel;
 * otherwise max_chn = min(VRSS_CHANNEL_MAX, min(online CPUs, num_recv_que)).
 */
export function maxChannels(cpus: number, hostRecvQueues: number): number {
  if (hostRecvQueues < 2) return 1;
  return Math.min(VRSS_CHANNEL_MAX, Math.min(cpus, hostRecvQueues));
}
