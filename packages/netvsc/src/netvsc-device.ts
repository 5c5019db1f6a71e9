// The device: netvsc_probe / netvsc_remove / netvsc_set_ringparam (netvsc_drv.c) over
// netvsc_device_add / netvsc_device_remove (netvsc.c) and rndis_filter_device_add / _remove
// (rndis_filter.c), with netvsc_set_channels (ethtool -L). Multi-queue: the primary channel and the
// vRSS sub-channels of subchannel.ts, one transmit queue each, picked by select-queue.ts.

import {
  ITAB_NUM,
  NAPI_POLL_WEIGHT,
  NETVSC_DEFAULT_RX,
  NETVSC_DEFAULT_TX,
  NETVSC_HASH_KEY,
  NETVSC_INVALID_INDEX,
  NETVSC_MAX_XFER_PAGE_RANGES,
  NETVSC_RECV_SECTION_SIZE,
  NETVSC_SEND_SECTION_SIZE,
  type NetvscResult,
  NVSP_MESSAGE_SIZE,
  NVSP_PROTOCOL_VERSION,
  ok,
  PAGE_SIZE,
  VRSS_CHANNEL_MAX,
  VRSS_SEND_TAB_SIZE,
  xferHeaderSize,
} from "@ivm/netvsc-protocol";
import type { SharedBuffer } from "@ivm/shared-buffer";
import { bytesToRead, RING_HEADER, type RingMem, VMPACKET_DESCRIPTOR_SIZE } from "@ivm/vmbus";
import { connectVsp } from "./connect-vsp.js";
import { fromVmbus } from "./control.js";
import {
  freeNetvscDevice,
  gpadlTeardownAfterClose,
  revokeRecvBuf,
  revokeSendBuf,
  teardownRecvGpadl,
  teardownSendGpadl,
  unmapBuffers,
} from "./init-buf.js";
import { napiPoll } from "./napi.js";
import type { DeviceInfo, DriverEnv, NetvscDev, NetvscServices } from "./nvdev.js";
import {
  defaultNumChannels,
  type NetvscChannel,
  type NetvscChannelCounters,
  newChannelCounters,
} from "./queues.js";
import { reject } from "./reasons.js";
import { sendRecvCompletions } from "./receive.js";
import { getRingParam, type RingParamState, ringParamPlan } from "./ringparam.js";
import {
  rndisFilterClose,
  rndisFilterDeviceAdd,
  rndisFilterHalt,
  rndisFilterOpen,
  rndisFilterSetRssParam,
} from "./rndis-filter.js";
import type { RxPacketInfo } from "./rndis-ppi.js";
import { defaultTxTable, netvscPickTx } from "./select-queue.js";
import { dmaUnmap, netvscXmit, type XmitVerdict } from "./send.js";
import { type NetvscStats, newNetvscStats } from "./stats.js";
import {
  type ChannelOpenParams,
  channelCallback,
  fallBackToPrimary,
  prepareSubChannels,
  rndisSetSubchannel,
} from "./subchannel.js";

/** VMBUS_RING_SIZE(128 * 4 KiB): netvsc's ring_size module parameter plus the header page. */
export const NETVSC_RING_BYTES_DEFAULT: number = PAGE_SIZE + 128 * PAGE_SIZE;
/**
 * NETVSC_MAX_PKT_SIZE: a transfer-page header with NVSP_RSC_MAX ranges, an NVSP message and the
 * VRSS send table (4 × VRSS_SEND_TAB_SIZE) — 24 + 562·8 + 40 + 64 = 4,624 (hyperv_net.h).
 */
export const NETVSC_MAX_PKT_SIZE: number =
  xferHeaderSize(NETVSC_MAX_XFER_PAGE_RANGES) + NVSP_MESSAGE_SIZE + 4 * VRSS_SEND_TAB_SIZE;
/** NETVSC_MIN_OUT_MSG_SIZE: sizeof(struct vmpacket_descriptor) + sizeof(struct nvsp_message) = 56. */
export const NETVSC_MIN_OUT_MSG_SIZE: number = VMPACKET_DESCRIPTOR_SIZE + NVSP_MESSAGE_SIZE;
/** NETVSC_MIN_IN_MSG_SIZE: sizeof(struct vmpacket_descriptor) = 16. */
export const NETVSC_MIN_IN_MSG_SIZE: number = VMPACKET_DESCRIPTOR_SIZE;

/**
 * netvsc_rqstor_size: the request table netvsc asks vmbus_open for, ring/56 + ring/16 — 9,435 + 33,024
 * = 42,459 entries for the default 528,384-byte ring.
 */
export function netvscRqstorSize(ringBytes: number): number {
  return Math.floor(ringBytes / NETVSC_MIN_OUT_MSG_SIZE) + Math.floor(ringBytes / NETVSC_MIN_IN_MSG_SIZE);
}

export interface NetvscDeviceOptions extends NetvscServices {
  /** Default 9709 / 170 (NETVSC_DEFAULT_RX / _TX). */
  readonly rxSections?: number;
  readonly txSections?: number;
  /** Per direction, header page included. Default VMBUS_RING_SIZE(128 × 4 KiB). */
  readonly ringBytes?: number;
  /**
   * A private copy of each delivered frame (the skb), with what the guest took from the message's
   * per-packet info (VLAN, checksum, hash, RSC flags; a reused object, valid during the call).
   */
  readonly onReceive?: (frame: Uint8Array, info: RxPacketInfo) => void;
  /** num_online_cpus(): max_chn never exceeds it. Default 1. */
  readonly cpus?: number;
  /**
   * dev_info->num_chn at probe (what `ethtool -L combined N` would have set); default the profile's
   * rule for `cpus` (defaultNumChannels). The NIC opens min(this, max_chn) channels.
   */
  readonly channels?: number;
}

/** One channel of the NIC as `channels` reports it. */
export interface NetvscChannelInfo {
  readonly index: number;
  readonly relid: number;
  readonly opened: boolean;
  /** The ring GPADL's handle and pages (both rings, header pages included) while open. */
  readonly ringGpadl: number;
  readonly ringPages: number;
  readonly counters: Readonly<NetvscChannelCounters>;
}

function newNetvscDev(env: DriverEnv, info: DeviceInfo): NetvscDev {
  return {
    env,
    info,
    nvspVersion: 0,
    destroy: false,
    txDisable: true,
    recv: undefined,
    recvBufSize: 0,
    recvSectionSize: 0,
    recvSectionCnt: 0,
    rxPrivate: [],
    rxScratch: new Uint8Array(0),
    mrc: undefined,
    send: undefined,
    sendBufSize: 0,
    sendSectionSize: 0,
    sendSectionCnt: 0,
    sectionMap: undefined,
    sectionMapVa: null,
    maxPkt: 8,
    pktAlign: 8,
    msd: { pkt: null, count: 0 },
    queueSends: 0,
    inflight: new Set(),
    maxChn: 1,
    numChn: 1,
    openChn: 1,
    chanTable: [],
    subMrc: [],
    txTable: defaultTxTable(1),
    rxTable: new Uint32Array(ITAB_NUM),
    rndis: {
      state: "uninitialized",
      nextRequestId: 1,
      requests: new Map(),
      mac: null,
      mtu: 1500,
      linkSpeed100bps: 0,
      rssKey: null,
    },
  };
}

function ringEmpty(mem: RingMem | undefined): boolean {
  if (mem === undefined) return true;
  const w = mem.readHeaderU32(RING_HEADER.WRITE_INDEX);
  const r = mem.readHeaderU32(RING_HEADER.READ_INDEX);
  return bytesToRead(mem.dataSize, w, r) === 0;
}

export class NetvscDevice {
  readonly stats: NetvscStats;
  readonly #env: DriverEnv;
  /** net_device_context->nvdev: set once netvsc_device_add succeeded, cleared by detach. */
  #nv: NetvscDev | undefined;
  #stopPoller: (() => void) | undefined;
  #leaked = 0;

  private constructor(env: DriverEnv) {
    this.#env = env;
    this.stats = env.stats;
  }

  /** netvsc_probe: netvsc_device_add + rndis_filter_device_add, then rndis_filter_open (interface up). */
  static add(o: NetvscDeviceOptions): NetvscResult<NetvscDevice> {
    const rx = o.rxSections ?? NETVSC_DEFAULT_RX;
    const tx = o.txSections ?? NETVSC_DEFAULT_TX;
    const ringBytes = o.ringBytes ?? NETVSC_RING_BYTES_DEFAULT;
    for (const [name, v] of [
      ["rxSections", rx],
      ["txSections", tx],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) return reject("EINVAL", "bad-option", `${name} ${v}`);
    }
    if (!Number.isInteger(ringBytes) || ringBytes % PAGE_SIZE !== 0 || ringBytes < 2 * PAGE_SIZE) {
      return reject("EINVAL", "bad-option", `ringBytes ${ringBytes}`);
    }
    const kernel = o.kernel ?? o.channel.kernel;
    const cpus = o.cpus ?? 1;
    if (!Number.isInteger(cpus) || cpus < 1) return reject("EINVAL", "bad-option", `cpus ${cpus}`);
    const numChn = o.channels ?? defaultNumChannels(kernel.profile.netvsc.defaultChannels.value, cpus);
    if (!Number.isInteger(numChn) || numChn < 1 || numChn > VRSS_CHANNEL_MAX)
      return reject("EINVAL", "bad-option", `channels ${numChn} outside 1..${VRSS_CHANNEL_MAX}`);
    const env: DriverEnv = {
      channel: o.channel,
      scheduler: o.scheduler,
      memory: o.memory,
      strategy: o.strategy,
      dma: o.dma,
      isolated: o.isolated,
      ringBytes,
      kernel,
      stats: newNetvscStats(),
      onReceive: o.onReceive,
      txq: { stopped: false },
      cpus,
    };
    const dev = new NetvscDevice(env);
    const r = dev.#attach({
      rxSections: rx,
      txSections: tx,
      recvSectionSize: NETVSC_RECV_SECTION_SIZE,
      sendSectionSize: NETVSC_SEND_SECTION_SIZE,
      numChn,
    });
    if (!r.ok) return r;
    return ok(dev);
  }

  /** ndo_start_xmit. "busy": the queue is stopped or the ring was full; the caller retries the frame. */
  send(frame: Uint8Array, opts?: { readonly xmitMore?: boolean }): XmitVerdict {
    const nv = this.#nv;
    const xmitMore = opts?.xmitMore ?? false;
    if (nv === undefined || nv.numChn < 2) return netvscXmit(nv, this.#env, frame, xmitMore);
    const q = nv.chanTable[netvscPickTx(frame, nv.txTable, nv.numChn)] ?? nv.chanTable[0]!;
    const verdict = netvscXmit(q.dev, q.dev.env, frame, xmitMore);
    if (verdict === "sent") q.counters.txFrames++;
    else if (verdict === "busy") q.counters.txBusy++;
    else q.counters.txDropped++;
    return verdict;
  }

  /** The queue netvsc_select_queue gives `frame` now (0 with one channel or while detached). */
  queueFor(frame: Uint8Array): number {
    const nv = this.#nv;
    return nv === undefined || nv.numChn < 2 ? 0 : netvscPickTx(frame, nv.txTable, nv.numChn);
  }

  /**
   * ethtool -L combined `count` (netvsc_set_channels): 1..max_chn on NVSP 5+, else EINVAL; the same
   * count is a no-op. Detach (every channel closed, sub-channels first), then attach with the new
   * count; if that fails, attach again with the old one.
   */
  setChannels(count: number): NetvscResult<void> {
    const nv = this.#nv;
    if (!Number.isInteger(count) || count < 1)
      return reject("EINVAL", "bad-channel-count", `channels ${count}`);
    if (nv === undefined || nv.destroy) return reject("ENODEV", "no-device", "the device is not attached");
    if (nv.nvspVersion < NVSP_PROTOCOL_VERSION.V5)
      return reject("EINVAL", "bad-channel-count", "multi-queue needs NVSP 5");
    if (count > nv.maxChn)
      return reject("EINVAL", "bad-channel-count", `channels ${count} > max ${nv.maxChn}`);
    if (count === nv.numChn) return ok(undefined);
    const orig: DeviceInfo = {
      rxSections: nv.recvSectionCnt,
      txSections: nv.sendSectionCnt,
      recvSectionSize: nv.recvSectionSize,
      sendSectionSize: nv.sendSectionSize,
      numChn: nv.numChn,
    };
    const d = this.#detach();
    if (!d.ok) return d;
    const a = this.#attach({ ...orig, numChn: count });
    if (a.ok) return a;
    const restored = this.#attach(orig);
    if (!restored.ok) this.stats.errors.count("restoring-channels-failed");
    return a;
  }

  /**
   * ethtool -X (netvsc_set_rxfh): a new receive indirection table of ITAB_NUM entries, each below
   * num_chn (EINVAL otherwise, nothing sent), sent to the host with the current key by
   * rndis_filter_set_rss_param; the host's refusal is EINVAL.
   */
  setRxfh(table: ArrayLike<number>): NetvscResult<void> {
    const nv = this.#nv;
    if (nv === undefined || nv.destroy) return reject("ENODEV", "no-device", "the device is not attached");
    if (table.length !== ITAB_NUM)
      return reject("EINVAL", "bad-rxfh", `${table.length} entries, not ${ITAB_NUM}`);
    for (let i = 0; i < ITAB_NUM; i++) {
      const q = table[i]!;
      if (!Number.isInteger(q) || q < 0 || q >= nv.numChn)
        return reject("EINVAL", "bad-rxfh", `entry ${i} is ${q}, not below ${nv.numChn} channels`);
    }
    for (let i = 0; i < ITAB_NUM; i++) nv.rxTable[i] = table[i]!;
    return rndisFilterSetRssParam(nv, nv.rndis.rssKey ?? NETVSC_HASH_KEY);
  }

  /** ethtool -x: the receive indirection table the guest last built or set, or undefined while detached. */
  get rxfh(): readonly number[] | undefined {
    return this.#nv === undefined ? undefined : Array.from(this.#nv.rxTable);
  }

  /** ethtool -l: channels in use and the maximum (max_chn), or undefined while detached. */
  get channelCount(): { readonly combined: number; readonly max: number } | undefined {
    const nv = this.#nv;
    return nv === undefined ? undefined : { combined: nv.numChn, max: nv.maxChn };
  }

  /** chan_table: every channel the NIC has (opened or not), the primary first. */
  get channels(): readonly NetvscChannelInfo[] {
    const nv = this.#nv;
    if (nv === undefined) return [];
    const out: NetvscChannelInfo[] = [];
    for (const q of nv.chanTable) {
      if (q === undefined) continue;
      const g = q.channel.ringGpadl;
      out.push({
        index: q.index,
        relid: q.channel.relid,
        opened: q.channel.state === "opened",
        ringGpadl: g?.handle ?? 0,
        ringPages: g?.pages ?? 0,
        counters: { ...q.counters },
      });
    }
    return out;
  }

  /** NAPI: inbound packets (completions, receives), then the receive completions. Returns the work done. */
  poll(budget: number = NAPI_POLL_WEIGHT): number {
    return this.#nv === undefined ? 0 : napiPoll(this.#nv, budget);
  }

  /** ethtool -G: clamp, detach, re-attach with the new counts, or with the old ones if that fails. */
  setRingParam(rx: number, tx: number): NetvscResult<void> {
    const nv = this.#nv;
    if (nv === undefined || nv.destroy) return reject("ENODEV", "no-device", "the device is not attached");
    const plan = ringParamPlan(nv, rx, tx);
    if (!plan.ok || plan.value === null) return plan.ok ? ok(undefined) : plan;
    const { next, orig } = plan.value;
    const d = this.#detach();
    if (!d.ok) return d;
    const a = this.#attach(next);
    if (a.ok) return a;
    const restored = this.#attach(orig);
    if (!restored.ok) this.stats.errors.count("restoring-ringparam-failed");
    return a;
  }

  /** The counts in use and their maxima (ethtool -g), or undefined while detached. */
  get ringParam(): RingParamState | undefined {
    return this.#nv === undefined ? undefined : getRingParam(this.#nv);
  }

  /** netvsc_remove: close the interface, halt RNDIS, netvsc_device_remove. */
  remove(): { readonly leakedBuffers: number } {
    if (this.#nv !== undefined) this.#detach(true);
    return { leakedBuffers: this.#leaked };
  }

  get queueStopped(): boolean {
    return this.#env.txq.stopped;
  }

  get rxBuffer(): SharedBuffer | undefined {
    return this.#nv?.recv?.buf;
  }

  get txBuffer(): SharedBuffer | undefined {
    return this.#nv?.send?.buf;
  }

  /** The address the receive buffer's GPADL covers now: the strategy's `map` may have moved it. */
  get rxGpadlVa(): number | undefined {
    return this.#nv?.recv?.gpadl?.buffer;
  }

  /** The address the send buffer's GPADL covers now. */
  get txGpadlVa(): number | undefined {
    return this.#nv?.send?.gpadl?.buffer;
  }

  /** The negotiated NVSP version (0 while detached). */
  get nvspVersion(): number {
    return this.#nv?.nvspVersion ?? 0;
  }

  /** The host's section sizes and counts in use. */
  get sections():
    | {
        readonly recvSize: number;
        readonly recvCount: number;
        readonly sendSize: number;
        readonly sendCount: number;
      }
    | undefined {
    const nv = this.#nv;
    if (nv === undefined) return undefined;
    return {
      recvSize: nv.recvSectionSize,
      recvCount: nv.recvSectionCnt,
      sendSize: nv.sendSectionSize,
      sendCount: nv.sendSectionCnt,
    };
  }

  get mac(): Uint8Array | undefined {
    return this.#nv?.rndis.mac?.slice();
  }

  /** Send completions the host still owes (queue_sends). */
  get outstandingSends(): number {
    return this.#nv?.queueSends ?? 0;
  }

  /** netvsc_attach / the probe path: rndis_filter_device_add, then rndis_filter_open. */
  #attach(info: DeviceInfo): NetvscResult<void> {
    const nv = newNetvscDev(this.#env, info);
    const added = this.#deviceAdd(nv);
    if (!added.ok) return added;
    this.#nv = nv;
    let r = rndisFilterDeviceAdd(nv);
    if (r.ok && nv.numChn > 1) this.#openSubChannels(nv);
    if (r.ok) {
      nv.txDisable = false;
      // netif_device_attach wakes the queue.
      this.#env.txq.stopped = false;
      r = rndisFilterOpen(nv);
    }
    if (!r.ok) {
      rndisFilterHalt(nv);
      this.#deviceRemove(nv);
    }
    return r;
  }

  /** The channel parameters netvsc_device_add and netvsc_sc_open both use. */
  #openParams(): ChannelOpenParams {
    const ringBytes = this.#env.ringBytes;
    return { ringBytes, maxPktSize: NETVSC_MAX_PKT_SIZE, requestTableSize: netvscRqstorSize(ringBytes) };
  }

  /** The probe's subchan_work / netvsc_attach: request the sub-channels, or fall back to one channel. */
  #openSubChannels(nv: NetvscDev): void {
    const r = prepareSubChannels(nv, this.#openParams(), NAPI_POLL_WEIGHT)
      ? rndisSetSubchannel(nv)
      : undefined;
    if (r?.ok === true) return;
    if (r !== undefined) this.stats.errors.count(r.error.reason);
    fallBackToPrimary(nv);
  }

  /**
   * netvsc_device_add: open the channel (rings, request table, max packet size as netvsc sets them),
   * connect to the VSP (NVSP, buffers). On failure: close, unmap, then free or leak each buffer.
   */
  #deviceAdd(nv: NetvscDev): NetvscResult<void> {
    const { channel, scheduler } = this.#env;
    const params = this.#openParams();
    const primary: NetvscChannel = { index: 0, channel, dev: nv, counters: newChannelCounters() };
    nv.chanTable[0] = primary;
    const opened = channel.open({
      sendRingSize: params.ringBytes,
      recvRingSize: params.ringBytes,
      onChannelCallback: channelCallback(primary, NAPI_POLL_WEIGHT),
      maxPktSize: params.maxPktSize,
      requestTableSize: params.requestTableSize,
    });
    if (!opened.ok) {
      this.#leaked += freeNetvscDevice(nv);
      return fromVmbus(opened.error, "channel-open-failed");
    }
    // NAPI reschedules itself while receive completions could not be sent; the model polls for them.
    this.#stopPoller = scheduler.addPoller("netvsc-recv-completions", () => {
      let sent = false;
      for (const q of nv.chanTable) {
        const d = q?.dev;
        if (d?.mrc !== undefined && d.mrc.pending > 0 && sendRecvCompletions(d) > 0) sent = true;
      }
      return sent;
    });
    const c = connectVsp(nv);
    if (!c.ok) {
      this.#stopPollerNow();
      const closed = channel.close();
      if (!closed.ok) this.stats.errors.count("channel-close-failed");
      unmapBuffers(nv);
      this.#leaked += freeNetvscDevice(nv);
      return c;
    }
    return ok(undefined);
  }

  #stopPollerNow(): void {
    this.#stopPoller?.();
    this.#stopPoller = undefined;
  }

  /**
   * netvsc_detach (ethtool) or netvsc_remove (`force`): stop the queue, filter 0 and wait for the rings
   * to drain (a failure aborts a detach, not a remove), halt, then netvsc_device_remove.
   */
  #detach(force = false): NetvscResult<void> {
    const nv = this.#nv!;
    nv.txDisable = true;
    this.#env.txq.stopped = true;
    const c = rndisFilterClose(nv);
    if (!c.ok && !force) return c;
    const { channel, scheduler } = this.#env;
    // netvsc_wait_until_empty: every channel's rings.
    const w = scheduler.runUntil(
      () =>
        ringEmpty(channel.inbound?.mem) &&
        ringEmpty(channel.outbound?.mem) &&
        nv.chanTable.every(
          (q) => q === undefined || (ringEmpty(q.channel.inbound?.mem) && ringEmpty(q.channel.outbound?.mem)),
        ),
      "netvsc-wait-until-empty",
    );
    if (!w.ok) {
      if (!force) return fromVmbus(w.error, "ring-not-empty");
      this.stats.errors.count("ring-not-empty");
    }
    rndisFilterHalt(nv);
    this.#deviceRemove(nv);
    return ok(undefined);
  }

  /**
   * netvsc_device_remove (5.17 order): revoke the receive buffer (its GPADL torn down here only before
   * Windows 10), the same for the send buffer, close the channel, tear the GPADLs down (Windows 10+),
   * unmap both buffers, then free_netvsc_device frees each buffer or leaks it when its re-encryption
   * failed. Model additions: a batch still pending, sends the host never completed and requests never
   * answered are released here so nothing stays mapped or allocated.
   */
  #deviceRemove(nv: NetvscDev): void {
    const afterClose = gpadlTeardownAfterClose(nv);
    revokeRecvBuf(nv);
    if (!afterClose) teardownRecvGpadl(nv);
    revokeSendBuf(nv);
    if (!afterClose) teardownSendGpadl(nv);
    if (this.#nv === nv) this.#nv = undefined;
    this.#stopPollerNow();
    // vmbus_close of the primary closes every open sub-channel first (vmbus_disconnect_ring).
    const channel = this.#env.channel;
    channel.scCreationCallback = undefined;
    const closed = channel.close();
    if (!closed.ok) this.stats.errors.count("channel-close-failed");
    if (afterClose) {
      teardownRecvGpadl(nv);
      teardownSendGpadl(nv);
    }
    unmapBuffers(nv);
    for (const q of nv.chanTable) if (q !== undefined) this.#releaseLeftovers(q.dev);
    for (const m of nv.subMrc) m.free(this.#env.memory);
    nv.subMrc.length = 0;
    this.#leaked += freeNetvscDevice(nv);
  }

  #releaseLeftovers(nv: NetvscDev): void {
    const { memory, stats } = this.#env;
    const pending = nv.msd.pkt;
    nv.msd.pkt = null;
    nv.msd.count = 0;
    if (pending !== null) {
      stats.txDrops.count("tx-batch-dropped-at-remove", pending.totalPackets);
      if (pending.skb !== null) memory.kmalloc.kfree(pending.skb.va);
    }
    for (const pkt of nv.inflight) {
      stats.errors.count("tx-abandoned-at-remove");
      dmaUnmap(nv, pkt);
      if (pkt.skb !== null) memory.kmalloc.kfree(pkt.skb.va);
      pkt.skb = null;
      pkt.sendBufIndex = NETVSC_INVALID_INDEX;
    }
    nv.inflight.clear();
    if (nv.env.channel !== this.#env.channel) return; // a sub-channel's view: the rest is the NIC's
    for (const req of nv.rndis.requests.values()) {
      if (req.pkt !== undefined) dmaUnmap(nv, req.pkt);
      memory.kmalloc.kfree(req.va);
    }
    nv.rndis.requests.clear();
  }
}
