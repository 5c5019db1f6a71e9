// vRSS sub-channels: rndis_set_subchannel and netvsc_sc_open (rndis_filter.c), with the fallback of
// netvsc_subchan_work / netvsc_attach ("if unavailable, just proceed with one queue").
//
// The driver asks the host for num_chn - 1 sub-channels (NVSP 5 SUBCHANNEL, operation ALLOCATE) on the
// primary and waits for the completion; the host offers that many sub-channels, and VMBus hands each
// to netvsc_sc_open, which opens it with the primary's ring size, packet size and request table size.
// A grant above the request is refused with EINVAL ("hv_netvsc: Validate number of allocated
// sub-channels", Andrea Parri, Nov 2020: lore 20201118153310.112404-1-parri.andrea@gmail.com), a
// failed status is EIO; either way the NIC keeps its primary only.

import { NETVSC_HASH_KEY, type NetvscResult, NVSP_STATUS, ok } from "@ivm/netvsc-protocol";
import type { VmbusChannel } from "@ivm/vmbus";
import { nvspRequest } from "./control.js";
import { napiPoll } from "./napi.js";
import type { NetvscDev } from "./nvdev.js";
import { type NetvscChannel, newChannelCounters, subChannelView } from "./queues.js";
import { reject } from "./reasons.js";
import { RecvCompRing } from "./recv-comp-ring.js";
import { rndisFilterSetRssParam } from "./rndis-filter.js";
import { defaultTxTable } from "./select-queue.js";

/** NVSP_SUBCHANNEL_ALLOCATE (enum nvsp_subchannel_operation: NONE 0, ALLOCATE 1). */
export const NVSP_SUBCHANNEL_ALLOCATE = 1;

/** What a channel open needs that the device add chose (netvsc_ring_bytes, NETVSC_MAX_PKT_SIZE, …). */
export interface ChannelOpenParams {
  readonly ringBytes: number;
  readonly maxPktSize: number;
  readonly requestTableSize: number;
}

/** The channel callback: this channel's NAPI poll, with its per-queue counters. */
export function channelCallback(q: NetvscChannel, budget: number): () => void {
  return () => {
    const stats = q.dev.env.stats;
    const rx = stats.rxPackets;
    const tx = stats.txPackets;
    q.counters.polls++;
    napiPoll(q.dev, budget);
    q.counters.rxFrames += stats.rxPackets - rx;
    q.counters.txCompleted += stats.txPackets - tx;
  };
}

/**
 * netvsc_sc_open (the primary's sc_creation_callback): an index outside [1, num_chn) is ignored; the
 * channel gets its state and is opened like the primary; open_chn counts it whether or not the open
 * worked (the kernel counts it either way, so the waiter is woken).
 */
export function netvscScOpen(
  nv: NetvscDev,
  sc: VmbusChannel,
  params: ChannelOpenParams,
  budget: number,
): void {
  const index = sc.offer.subChannelIndex;
  const stats = nv.env.stats;
  if (index < 1 || index >= nv.numChn || nv.chanTable[index] !== undefined) {
    stats.errors.count("subchannel-index-ignored");
    return;
  }
  const mrc = nv.subMrc[index - 1];
  if (mrc === undefined) {
    stats.errors.count("subchannel-index-ignored");
    return;
  }
  const dev = subChannelView(nv, sc, index, mrc);
  const q: NetvscChannel = { index, channel: sc, dev, counters: newChannelCounters() };
  nv.chanTable[index] = q;
  const r = sc.open({
    sendRingSize: params.ringBytes,
    recvRingSize: params.ringBytes,
    onChannelCallback: channelCallback(q, budget),
    maxPktSize: params.maxPktSize,
    requestTableSize: params.requestTableSize,
  });
  if (!r.ok) stats.errors.count("subchannel-open-failed");
  nv.openChn++;
}

/**
 * The part of rndis_filter_device_add after max_chn is known: netvsc_alloc_recv_comp_ring for channels
 * 1..num_chn-1 and the creation callback. Returns false (one channel) when a ring cannot be allocated.
 */
export function prepareSubChannels(nv: NetvscDev, params: ChannelOpenParams, budget: number): boolean {
  const { env } = nv;
  for (let i = 1; i < nv.numChn; i++) {
    const mrc = RecvCompRing.alloc(env.memory, nv.recvSectionCnt);
    if (mrc === null) {
      for (const m of nv.subMrc) m.free(env.memory);
      nv.subMrc.length = 0;
      env.stats.errors.count("recv-comp-ring-alloc-failed");
      return false;
    }
    nv.subMrc.push(mrc);
  }
  nv.openChn = 1;
  env.channel.scCreationCallback = (sc) => netvscScOpen(nv, sc, params, budget);
  return true;
}

/**
 * rndis_set_subchannel: the request, its completion (status, then the granted count against the
 * request), num_chn = 1 + granted, the wait for every granted sub-channel to be opened, the send
 * table, then the RSS parameters (rndis_filter_set_rss_param with netvsc_hash_key; a failure is counted
 * and ignored, the channels stay). The kernel waits for the opens without a timeout; the model's bounded wait reports a host
 * that never offers them as ETIMEDOUT.
 */
export function rndisSetSubchannel(nv: NetvscDev): NetvscResult<void> {
  const { env } = nv;
  const asked = nv.numChn - 1;
  const reply = nvspRequest(
    env,
    { kind: "subchannel-request", operation: NVSP_SUBCHANNEL_ALLOCATE, numSubchannels: asked },
    "nvsp-subchannel",
  );
  if (!reply.ok) return reply;
  const m = reply.value;
  if (m.kind !== "subchannel-complete" || m.status !== NVSP_STATUS.SUCCESS)
    return reject("EIO", "subchannel-request-failed", "sub channel request failed");
  if (m.numSubchannels > asked)
    return reject(
      "EINVAL",
      "subchannel-count-invalid",
      `invalid number of allocated sub channel: ${m.numSubchannels} > ${asked}`,
    );
  nv.numChn = 1 + m.numSubchannels;
  const w = env.scheduler.runUntil(() => nv.openChn >= nv.numChn, "netvsc-subchannels-open");
  if (!w.ok)
    return reject("ETIMEDOUT", "subchannel-open-timed-out", `${nv.openChn} of ${nv.numChn} channels opened`);
  nv.txTable = defaultTxTable(nv.numChn);
  const rss = rndisFilterSetRssParam(nv, NETVSC_HASH_KEY);
  if (!rss.ok) env.stats.errors.count("rss-param-set-failed");
  return ok(undefined);
}

/** The fallback of netvsc_subchan_work and netvsc_attach: one queue; channels already open stay so. */
export function fallBackToPrimary(nv: NetvscDev): void {
  nv.maxChn = 1;
  nv.numChn = 1;
  nv.txTable = defaultTxTable(1);
}
