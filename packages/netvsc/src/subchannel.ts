// vRSS sub-channels: rndis_set_subchannel and netvsc_sc_open (rndis_filter.c), with the fallback of
// netvsc_subchan_work / netvsc_attach ("if unavailable, just proceed with one queue").
//
// The driver asks the host for num_chn - 1 sub-channels (NVSP 5 SUBCHANNEL, operation ALLOCATE) on the
// primary and waits for the completion; the host offers that many sub-channels, and VMBus hands each
// to netvsc_sc_open, which opens it with the primary's ring size, packet size and request table size.
// A grant above the request is refused with EINVAL (206ad34d52a2, "hv_netvsc: Validate number of
// allocated sub-channels", 5.11: lore 20201118153310.112404-1-parri.andrea@gmail.com), a failed status
// is EIO; either way the NIC keeps its primary only.
//
// The completion and the offers race. The completion is handled by the primary's NAPI poll, the offers
// by VMBus's sub-channel workqueue (vmbus_process_offer queues vmbus_add_channel_work, which calls the
// sc_creation_callback), and nothing orders the two. netvsc_sc_open reads num_chn when its offer is
// handled: before the completion that is still the count asked for, after it 1 + the grant. Since
// 732e49850c5e ("netvsc: fix race on sub channel creation", 2017) every offer that passes the index
// check bumps open_chn, and rndis_set_subchannel sleeps until open_chn equals num_chn, with no timeout.
// So a host that grants fewer than it offers is fine when the completion is handled first (the offers
// at or above the grant are skipped), but when an offer above the grant is handled first open_chn has
// already passed the new num_chn and can never equal it: the wait never ends (under the RTNL lock).
// The skip, the count, the wait and the grant check read the same in a 5.15 stable tree and in 6.x trees
// before and after the change that enables NAPI before vmbus_open, so every profile (5.17 .. 6.18) has
// them and no profile behaviour selects them.

import { NETVSC_HASH_KEY, type NetvscResult, NVSP_STATUS, ok } from "@ivm/netvsc-protocol";
import type { VmbusChannel } from "@ivm/vmbus";
import { nvspRequest } from "./control.js";
import { NETVSC_FINDING } from "./init-buf.js";
import { napiPoll } from "./napi.js";
import type { NetvscDev } from "./nvdev.js";
import { type NetvscChannel, newChannelCounters, subChannelView } from "./queues.js";
import { type NetvscErrorReason, reject } from "./reasons.js";
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
 * netvsc_sc_open (the primary's sc_creation_callback): an index outside [1, num_chn) — num_chn as it is
 * when the offer is handled — is ignored: not opened, not counted. Otherwise the channel gets its state
 * and is opened like the primary, and open_chn counts it whether or not the open worked (the kernel
 * counts it either way, so the waiter is woken).
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
 * request), num_chn = 1 + granted, the wait until open_chn == num_chn, the send table, then the RSS
 * parameters (rndis_filter_set_rss_param with netvsc_hash_key; a failure is counted and ignored, the
 * channels stay). The kernel waits for the opens without a timeout; the model's bounded wait reports a
 * host that never offers them as ETIMEDOUT. Offers above the grant handled before the completion leave
 * open_chn past num_chn: the kernel's wait never ends there, which is reported as the finding
 * NETVSC_FINDING.subchannelOpenPastGrant, and the model's wait ends as every wait the kernel would
 * sleep in forever does (ETIMEDOUT, `subchannel-open-timed-out`).
 */
export function rndisSetSubchannel(nv: NetvscDev): NetvscResult<void, NetvscErrorReason> {
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
  // open_chn only grows, so once it is past num_chn the kernel's equality can never hold again.
  const overcounted = nv.openChn > nv.numChn;
  if (overcounted)
    env.kernel.report({
      id: NETVSC_FINDING.subchannelOpenPastGrant,
      invariant: "termination",
      what: `netvsc_sc_open counted ${nv.openChn} channels before the completion granted ${m.numSubchannels} sub-channel(s) (num_chn ${nv.numChn}): the wait for open_chn == num_chn never ends, with the RTNL lock held`,
      where: "rndis_set_subchannel (wait_event on subchan_open)",
    });
  const w = env.scheduler.runUntil(() => nv.openChn === nv.numChn, "netvsc-subchannels-open");
  if (!w.ok)
    return reject(
      "ETIMEDOUT",
      "subchannel-open-timed-out",
      overcounted
        ? `${nv.openChn} channels opened, ${nv.numChn} granted: open_chn never equals num_chn`
        : `${nv.openChn} of ${nv.numChn} channels opened`,
    );
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
