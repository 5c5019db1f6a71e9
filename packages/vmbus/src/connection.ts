/**
 * The guest's VMBus connection: mirrors drivers/hv/connection.c (vmbus_connect,
 * vmbus_negotiate_version, vmbus_post_msg, the GPADL handle counter) and the message side of
 * channel_mgmt.c (vmbus_on_msg_dpc's dispatch through channel_message_table, vmbus_onoffer,
 * vmbus_onoffer_rescind, the reply handlers that complete entries of chn_msg_list).
 *
 * Host messages arrive as bytes in the SynIC link and are decoded from a private copy; anything
 * malformed, unknown, unexpected or unmatched is dropped and counted, never thrown.
 */
import type { HypervLayer } from "@ivm/hypercall";
import type { FindingLog, KernelProfile } from "@ivm/kernel";
import type { GuestMemory } from "@ivm/memory";
import { VmbusChannel } from "./channel.js";
import {
  DEFAULT_VMBUS_DEVICES,
  isPerfChannel,
  isValidOffer,
  type VmbusDeviceEntry,
} from "./channel-offer.js";
import { err, OK_VOID, ok, type Result } from "./errors.js";
import {
  type MonitorPage,
  type MonitorPageCounters,
  setupMonitorPages,
  teardownMonitorPages,
} from "./monitor-pages.js";
import { KernelContext, VMBUS_FINDING } from "./profile.js";
import type { Scheduler } from "./scheduler.js";
import { placeOffer } from "./subchannel.js";
import { HV_POST_STATUS, MessageCopies, type SynicLink } from "./synic.js";
import type { MessageDirection, VmbusTraceEvent } from "./trace.js";
import type { ChannelTransport, PendingRequest } from "./transport.js";
import { VmbusCpuAllocator } from "./vp-index.js";
import { readU32 } from "./wire/bytes.js";
import {
  CHANNELMSG,
  type ChannelMessage,
  channelMessageName,
  decodeChannelMessage,
  encodeChannelMessage,
  type GpadlCreatedMessage,
  type GpadlTorndownMessage,
  type OfferChannelMessage,
  type OpenChannelResultMessage,
  type VersionResponseMessage,
  VMBUS_VERSION,
} from "./wire/channel-message.js";
import { GPADL_HANDLE_START } from "./wire/gpadl.js";

/** vmbus_versions[]: newest first; vmbus_connect tries each until the host accepts one. */
export const VMBUS_VERSIONS: readonly number[] = [
  VMBUS_VERSION.WIN10_V5_3,
  VMBUS_VERSION.WIN10_V5_2,
  VMBUS_VERSION.WIN10_V5_1,
  VMBUS_VERSION.WIN10_V5,
  VMBUS_VERSION.WIN10_V4_1,
  VMBUS_VERSION.WIN10,
  VMBUS_VERSION.WIN8_1,
  VMBUS_VERSION.WIN8,
  VMBUS_VERSION.WIN7,
  VMBUS_VERSION.WS2008,
];

/** MAX_CHANNEL_RELIDS (hyperv_vmbus.h): HV_EVENT_FLAGS_COUNT = 256 · 8. */
export const MAX_CHANNEL_RELIDS = 2048;
/** vmbus_post_msg: at most 100 tries. */
export const POST_MSG_MAX_TRIES = 100;
/** VMBUS_MESSAGE_SINT, the SINT the guest asks the host to deliver messages on (5.0+). */
const VMBUS_MESSAGE_SINT = 2;

/**
 * One channel message as it crossed the link (for timelines). `bytes` is a copy of its own (an array
 * whose buffer holds nothing else), made when it is first read: the same array on every read.
 */
export interface MessageEvent {
  readonly direction: MessageDirection;
  readonly type: number;
  readonly bytes: Uint8Array;
}

/**
 * A MessageEvent whose bytes are kept, at emit time, in a chunk of copies shared with later messages,
 * and become an array of their own only when a listener reads them: a VM that records every message
 * but looks at few of them makes no ArrayBuffer per message.
 */
class RecordedMessage implements MessageEvent {
  readonly direction: MessageDirection;
  readonly type: number;
  #kept: Uint8Array;
  #own: Uint8Array | undefined;

  constructor(direction: MessageDirection, type: number, kept: Uint8Array) {
    this.direction = direction;
    this.type = type;
    this.#kept = kept;
  }

  get bytes(): Uint8Array {
    if (this.#own === undefined) {
      this.#own = this.#kept.slice();
      this.#kept = this.#own; // the chunk need not outlive the copies nobody has read
    }
    return this.#own;
  }
}

/** Why a host message was dropped. */
export type DropReason =
  /** Too short, too long, or a field out of range (vmbus_on_msg_dpc's payload checks). */
  | "malformed"
  /** A message type the guest has no handler for (types ≥ CHANNELMSG_COUNT or unused ones). */
  | "unknown-type"
  /** A type only the guest sends (NULL handler in channel_message_table). */
  | "unexpected-type"
  /** vmbus_is_valid_offer refused it (an isolated guest loads only hardened drivers). */
  | "invalid-offer"
  | "relid-out-of-range"
  | "duplicate-offer"
  /** A second offer with index 0 for a device already offered (vmbus_process_offer's WARN_ON_ONCE). */
  | "duplicate-primary"
  | "rescind-unknown-channel"
  | "duplicate-rescind"
  /** A reply that matches no outstanding request (GPADL_CREATED for an unknown handle, …). */
  | "unmatched-reply";

export interface VmbusConnectionCounters {
  /** Successful posts by message type. */
  readonly posted: Map<number, number>;
  /** Host messages decoded by type (dropped ones included). */
  readonly received: Map<number, number>;
  readonly dropped: Record<DropReason, number>;
  /** vmbus_post_msg retries after -ENOBUFS/-EAGAIN-like statuses. */
  postRetries: number;
  /** vmbus_post_msg calls that failed in the end. */
  postFailures: number;
  /** Microseconds the retry loop would have spent in udelay/msleep. */
  retryDelayUs: number;
  /** GPADL handles handed out (never reused). */
  gpadlHandles: number;
  /** vmbus_teardown_gpadl post errors the kernel overwrites with the re-encryption result. */
  teardownPostErrorsSwallowed: number;
  /** The monitor pages' allocations, frees and leaks (monitor-pages.ts). */
  readonly monitorPages: MonitorPageCounters;
  /** Sub-channel offers attached to their primary (vmbus_process_offer, subchannel.ts). */
  subChannelOffers: number;
  /** Offers with a non-zero sub_channel_index whose primary is unknown: made a device, as the kernel does. */
  orphanSubChannelOffers: number;
}

export interface VmbusConnectionOptions {
  readonly memory: GuestMemory;
  readonly hyperv: HypervLayer;
  readonly scheduler: Scheduler;
  readonly synic: SynicLink;
  /** vmbus_devs[]: which device types exist and may load in an isolated VM. */
  readonly devices?: readonly VmbusDeviceEntry[];
  /** The kernel whose VMBus behaviours run (`kernel.vmbus`); DEFAULT_KERNEL_PROFILE when absent. */
  readonly kernel?: KernelProfile;
  /** Where this guest's findings go; a fresh log when absent (read it back as `connection.kernel.findings`). */
  readonly findings?: FindingLog;
  /**
   * num_online_cpus(): init_vp_index spreads performance channels over them (OPENCHANNEL's target_vp).
   * Default 1, which puts every channel on VP 0.
   */
  readonly cpus?: number;
  /** cpumask_of_node() per NUMA node (see CpuTopology); default one node holding every CPU. */
  readonly numaNodes?: readonly (readonly number[])[];
  /** CPUs isolated with `isolcpus=managed_irq,…` (5.19+ kernels never pick them); default none. */
  readonly isolatedCpus?: readonly number[];
}

export type ConnectionState = "disconnected" | "connecting" | "connected";

export class VmbusConnection {
  readonly memory: GuestMemory;
  readonly hyperv: HypervLayer;
  readonly scheduler: Scheduler;
  readonly synic: SynicLink;
  readonly devices: readonly VmbusDeviceEntry[];
  /** init_vp_index's state for this boot: the allocated mask per NUMA node and the node cursor. */
  readonly cpuAllocator: VmbusCpuAllocator;
  /** The booted kernel profile and its findings log, shared by every channel of this connection. */
  readonly kernel: KernelContext;
  readonly counters: VmbusConnectionCounters = {
    posted: new Map(),
    received: new Map(),
    dropped: {
      malformed: 0,
      "unknown-type": 0,
      "unexpected-type": 0,
      "invalid-offer": 0,
      "relid-out-of-range": 0,
      "duplicate-offer": 0,
      "duplicate-primary": 0,
      "rescind-unknown-channel": 0,
      "duplicate-rescind": 0,
      "unmatched-reply": 0,
    },
    postRetries: 0,
    postFailures: 0,
    retryDelayUs: 0,
    gpadlHandles: 0,
    teardownPostErrorsSwallowed: 0,
    monitorPages: { allocated: 0, freed: 0, leaked: 0, freedWhileVisible: 0 },
    subChannelOffers: 0,
    orphanSubChannelOffers: 0,
  };
  /** vmbus_connection.monitor_pages while connected (or connecting), else empty. */
  monitorPages: readonly MonitorPage[] = [];
  state: ConnectionState = "disconnected";
  /** The negotiated protocol version (vmbus_proto_version), 0 before connect. */
  version = 0;
  /** msg_conn_id from VERSION_RESPONSE (5.0+). */
  msgConnId = 0;
  allOffersDelivered = false;
  private readonly channelsByRelid = new Map<number, VmbusChannel>();
  private readonly pending: PendingRequest[] = [];
  private readonly messageListeners: ((e: MessageEvent) => void)[] = [];
  /** Where the messages the listeners are given are kept until they read them. */
  readonly #eventCopies = new MessageCopies();
  readonly #traceListeners: ((e: VmbusTraceEvent) => void)[] = [];
  private readonly offerListeners: ((c: VmbusChannel) => void)[] = [];
  private readonly subChannelListeners: ((c: VmbusChannel) => void)[] = [];
  private nextGpadl = GPADL_HANDLE_START;
  /** handle_sub_chan_wq: sub-channels whose sc_creation_callback is still to run. */
  readonly #subChannelWork: VmbusChannel[] = [];
  private readonly removePollers: (() => void)[];
  /** What channels and GPADLs get of the connection: its message path, nothing else. */
  readonly #transport: ChannelTransport;

  constructor(options: VmbusConnectionOptions) {
    this.memory = options.memory;
    this.hyperv = options.hyperv;
    this.kernel = new KernelContext(options.kernel, options.findings);
    this.cpuAllocator = new VmbusCpuAllocator({
      cpus: options.cpus ?? 1,
      ...(options.numaNodes === undefined ? {} : { numaNodes: options.numaNodes }),
      ...(options.isolatedCpus === undefined ? {} : { isolatedCpus: options.isolatedCpus }),
    });
    this.#transport = {
      memory: this.memory,
      hyperv: this.hyperv,
      kernel: this.kernel,
      version: () => this.version,
      postMessage: (bytes) => this.postMessage(bytes),
      addPending: (p) => this.#addPending(p),
      removePending: (req) => this.#removePending(req),
      waitFor: (req, what) => this.#waitFor(req, what),
      allocGpadlHandle: () => this.#allocGpadlHandle(),
      countTeardownPostErrorSwallowed: () => {
        this.counters.teardownPostErrorsSwallowed++;
      },
      signalHost: (relid) => this.synic.signalHost(relid),
      releaseRelid: (channel) => this.#releaseRelid(channel),
      tracing: () => this.#traceListeners.length > 0,
      trace: (e) => this.#trace(e),
    };
    this.scheduler = options.scheduler;
    this.synic = options.synic;
    this.devices = options.devices ?? DEFAULT_VMBUS_DEVICES;
    this.removePollers = [
      this.scheduler.addPoller("guest vmbus_on_msg_dpc", () => this.pollMessages()),
      this.scheduler.addPoller("guest channel callbacks", () => this.pollChannels()),
      this.scheduler.addPoller("guest vmbus sub-channel work", () => this.#runSubChannelWork()),
    ];
  }

  /** hv_is_isolation_supported(). */
  get isolated(): boolean {
    return this.memory.isolated;
  }

  /** Offered channels that have not been released, by child_relid. */
  get channels(): ReadonlyMap<number, VmbusChannel> {
    return this.channelsByRelid;
  }

  /** Outstanding requests (chn_msg_list); empty whenever no wait is in progress. */
  get pendingRequests(): number {
    return this.pending.length;
  }

  posted(type: number): number {
    return this.counters.posted.get(type) ?? 0;
  }

  received(type: number): number {
    return this.counters.received.get(type) ?? 0;
  }

  /**
   * VMBus's tracepoints as typed events (see VmbusTraceEvent): every channel message, named, and the
   * GPADL, open, teardown and close steps with their handles and PFNs. Returns an unsubscribe function.
   */
  onTrace(listener: (e: VmbusTraceEvent) => void): () => void {
    this.#traceListeners.push(listener);
    return () => {
      const i = this.#traceListeners.indexOf(listener);
      if (i >= 0) this.#traceListeners.splice(i, 1);
    };
  }

  #trace(e: VmbusTraceEvent): void {
    for (const l of this.#traceListeners.slice()) l(e);
  }

  /** Every message in either direction; returns an unsubscribe function. */
  onMessage(listener: (e: MessageEvent) => void): () => void {
    this.messageListeners.push(listener);
    return () => {
      const i = this.messageListeners.indexOf(listener);
      if (i >= 0) this.messageListeners.splice(i, 1);
    };
  }

  /** A valid offer arrived (the driver core's probe point). */
  onOffer(listener: (channel: VmbusChannel) => void): () => void {
    this.offerListeners.push(listener);
    return () => {
      const i = this.offerListeners.indexOf(listener);
      if (i >= 0) this.offerListeners.splice(i, 1);
    };
  }

  /**
   * A sub-channel is about to be handed to its primary's sc_creation_callback (vmbus_add_channel_work),
   * before the driver opens it: for observers that follow every channel, not only primaries.
   */
  onSubChannel(listener: (channel: VmbusChannel) => void): () => void {
    this.subChannelListeners.push(listener);
    return () => {
      const i = this.subChannelListeners.indexOf(listener);
      if (i >= 0) this.subChannelListeners.splice(i, 1);
    };
  }

  /** Stops this connection's pollers (the model's teardown; the kernel never unloads vmbus here). */
  dispose(): void {
    for (const r of this.removePollers) r();
  }

  /**
   * vmbus_connect: the monitor pages (allocated, made host-visible and zeroed, monitor-pages.ts), then
   * INITIATE_CONTACT for each version until the host accepts one, the isolated-VM floor of 5.2, then
   * REQUESTOFFERS and a wait for ALLOFFERS_DELIVERED. A failure before the version is settled runs the
   * kernel's cleanup (vmbus_disconnect's page half).
   */
  connect(): Result<number> {
    if (this.state !== "disconnected") return err("EINVAL", "already-connected", "connect twice");
    this.state = "connecting";
    const monitor = setupMonitorPages(this, this.counters.monitorPages);
    if (!monitor.ok) {
      this.state = "disconnected";
      return monitor;
    }
    this.monitorPages = monitor.value;
    const fail = <T>(r: Result<T>): Result<T> => {
      this.state = "disconnected";
      this.disconnect();
      return r;
    };
    let accepted = 0;
    for (const version of VMBUS_VERSIONS) {
      const r = this.negotiateVersion(version);
      if (!r.ok) return fail(r);
      if (r.value) {
        accepted = version;
        break;
      }
    }
    if (accepted === 0) return fail(err("ENODEV", "no-common-version", "the host accepted no VMBus version"));
    if (this.isolated && accepted < VMBUS_VERSION.WIN10_V5_2) {
      return fail(err("EINVAL", "version-too-old", `version 0x${accepted.toString(16)} in an isolated VM`));
    }
    this.version = accepted;
    const posted = this.postMessage(encodeChannelMessage({ kind: "request-offers" }));
    if (!posted.ok) return posted;
    const w = this.scheduler.runUntil(() => this.allOffersDelivered, "ALLOFFERS_DELIVERED");
    if (!w.ok) return w;
    return ok(accepted);
  }

  /**
   * vmbus_disconnect's page half: the monitor pages are re-encrypted and freed (or leaked, or freed
   * while host-visible, as the profile's kernel does). UNLOAD is not modelled; channels are the
   * drivers' to close first.
   */
  disconnect(): void {
    const pages = this.monitorPages;
    this.monitorPages = [];
    this.state = "disconnected";
    teardownMonitorPages(this, pages, this.counters.monitorPages);
  }

  /** vmbus_negotiate_version: true when the host supports `version`. */
  private negotiateVersion(version: number): Result<boolean> {
    const req = this.#addPending({ msgtype: CHANNELMSG.INITIATE_CONTACT, channel: undefined });
    this.state = "connecting";
    const posted = this.postMessage(
      encodeChannelMessage({
        kind: "initiate-contact",
        versionRequested: version,
        targetVcpu: 0,
        msgSint: version >= VMBUS_VERSION.WIN10_V5 ? VMBUS_MESSAGE_SINT : 0,
        msgVtl: 0,
        featureFlags: 0,
        monitorPage1: this.monitorPages[0]?.gpa ?? 0,
        monitorPage2: this.monitorPages[1]?.gpa ?? 0,
      }),
    );
    if (!posted.ok) {
      this.#removePending(req);
      return posted;
    }
    const w = this.#waitFor(req, "VERSION_RESPONSE");
    this.#removePending(req);
    if (!w.ok) return w;
    const resp = req.response as VersionResponseMessage;
    if (resp.versionSupported === 0) return ok(false);
    this.state = "connected";
    this.msgConnId = version >= VMBUS_VERSION.WIN10_V5 ? resp.msgConnId : 1;
    return ok(true);
  }

  /**
   * vmbus_post_msg: HvPostMessage up to 100 times. INSUFFICIENT_MEMORY/BUFFERS (-ENOBUFS) and
   * INVALID_CONNECTION_ID (-EAGAIN, except for INITIATE_CONTACT: -EINVAL at once) are retried with a
   * delay of 1 µs doubling for the first 22 retries; any other status is -EINVAL at once.
   */
  postMessage(bytes: Uint8Array): Result<void> {
    const type = bytes.length >= 4 ? readU32(bytes, 0) : -1;
    let usec = 1;
    // The last retryable failure, kept as its errno and status: the error (with its stack trace) is
    // built only if every attempt fails, never on the posts that succeed.
    let lastCode: "EAGAIN" | "ENOBUFS" | undefined;
    let lastStatus = 0;
    for (let attempt = 1; attempt <= POST_MSG_MAX_TRIES; attempt++) {
      const status = this.synic.postMessage(bytes, attempt);
      if (status === HV_POST_STATUS.SUCCESS) {
        this.counters.posted.set(type, (this.counters.posted.get(type) ?? 0) + 1);
        this.emit("guest-to-host", type, bytes);
        return OK_VOID;
      }
      if (status === HV_POST_STATUS.INVALID_CONNECTION_ID) {
        if (type === CHANNELMSG.INITIATE_CONTACT) return this.postFailed("EINVAL", status);
        lastCode = "EAGAIN";
      } else if (
        status === HV_POST_STATUS.INSUFFICIENT_MEMORY ||
        status === HV_POST_STATUS.INSUFFICIENT_BUFFERS
      ) {
        lastCode = "ENOBUFS";
      } else {
        return this.postFailed("EINVAL", status);
      }
      lastStatus = status;
      this.counters.postRetries++;
      this.counters.retryDelayUs += usec;
      if (attempt < 22) usec *= 2;
    }
    this.counters.postFailures++;
    if (lastCode === undefined) return err("EINVAL", "post-failed", "not posted");
    return err(lastCode, "post-retry-exhausted", `HvPostMessage status 0x${lastStatus.toString(16)}`);
  }

  private postFailed(code: "EINVAL", status: number): Result<void> {
    this.counters.postFailures++;
    return err(code, "post-failed", `HvPostMessage status 0x${status.toString(16)}`);
  }

  /* ---- chn_msg_list ------------------------------------------------------------------------ */

  /** Adds a request to chn_msg_list (before posting, as the kernel does). */
  #addPending(p: {
    readonly msgtype: number;
    readonly channel: { readonly relid: number } | undefined;
    readonly gpadl?: number;
    readonly openId?: number;
  }): PendingRequest {
    const req: PendingRequest = {
      msgtype: p.msgtype,
      channel: p.channel,
      childRelid: p.channel?.relid ?? 0,
      gpadl: p.gpadl ?? 0,
      openId: p.openId ?? 0,
      response: undefined,
      done: false,
    };
    this.pending.push(req);
    return req;
  }

  #removePending(req: PendingRequest): void {
    const i = this.pending.indexOf(req);
    if (i >= 0) this.pending.splice(i, 1);
  }

  /** wait_for_completion(&msginfo->waitevent), bounded by the scheduler. */
  #waitFor(req: PendingRequest, what: string): Result<number> {
    return this.scheduler.runUntil(() => req.done, what);
  }

  /** atomic_inc_return(&next_gpadl_handle) − 1: handed out even when establishment then fails. */
  #allocGpadlHandle(): number {
    const h = this.nextGpadl;
    this.nextGpadl = (this.nextGpadl + 1) >>> 0;
    this.counters.gpadlHandles++;
    return h;
  }

  /**
   * hv_process_channel_removal's tail: the channel leaves the relid map (its primary's sc_list was left
   * before), a performance channel's CPU goes back to init_vp_index, then vmbus_release_relid tells the
   * host the guest is done with it.
   */
  #releaseRelid(channel: { readonly relid: number }): Result<void> {
    const released = this.channelsByRelid.get(channel.relid);
    this.channelsByRelid.delete(channel.relid);
    if (released?.perfChannel === true) {
      this.cpuAllocator.releaseCpu(released.targetCpu, this.channelsByRelid.values());
    }
    return this.postMessage(encodeChannelMessage({ kind: "relid-released", childRelid: channel.relid }));
  }

  /* ---- host → guest ------------------------------------------------------------------------ */

  private pollMessages(): boolean {
    let progress = false;
    // A bounded batch per round, so the other actors run in between (the DPC handles one message at a time).
    for (let i = 0; i < 64; i++) {
      const bytes = this.synic.takeForGuest();
      if (bytes === undefined) break;
      progress = true;
      this.handleMessage(bytes);
    }
    return progress;
  }

  /**
   * vmbus_add_channel_work for a sub-channel: the primary's sc_creation_callback, if the driver set
   * one (without it the sub-channel stays offered and unopened). Rescinded ones are skipped.
   */
  #runSubChannelWork(): boolean {
    let progress = false;
    while (this.#subChannelWork.length > 0) {
      const sc = this.#subChannelWork.shift()!;
      progress = true;
      if (sc.rescinded || sc.released) continue;
      for (const l of this.subChannelListeners.slice()) l(sc);
      sc.primaryChannel?.scCreationCallback?.(sc);
    }
    return progress;
  }

  private pollChannels(): boolean {
    let progress = false;
    for (const relid of this.synic.takeGuestEvents()) {
      this.channelsByRelid.get(relid)?.interrupt();
    }
    for (const ch of this.channelsByRelid.values()) {
      if (ch.runCallback()) progress = true;
    }
    return progress;
  }

  /** vmbus_on_msg_dpc: decode from a private copy, then dispatch by type. */
  private handleMessage(bytes: Uint8Array): void {
    // The SynIC's copy of the host's message, the guest's own: decoded in place (one fetch of each field).
    const decoded = decodeChannelMessage(bytes, { owned: true });
    const type = bytes.length >= 4 ? readU32(bytes, 0) : -1;
    this.counters.received.set(type, (this.counters.received.get(type) ?? 0) + 1);
    this.emit("host-to-guest", type, bytes);
    if (!decoded.ok) {
      this.drop("malformed");
      return;
    }
    const msg = decoded.value;
    switch (msg.kind) {
      case "offer-channel":
        this.onOfferMessage(msg);
        return;
      case "rescind-channel-offer":
        this.onRescind(msg.childRelid);
        return;
      case "all-offers-delivered":
        this.allOffersDelivered = true;
        return;
      case "version-response":
        this.complete(msg, (r) => r.msgtype === CHANNELMSG.INITIATE_CONTACT);
        return;
      case "open-channel-result":
        this.onOpenResult(msg);
        return;
      case "gpadl-created":
        this.onGpadlCreated(msg);
        return;
      case "gpadl-torndown":
        this.onGpadlTorndown(msg);
        return;
      case "unknown":
        this.drop("unknown-type");
        return;
      default:
        // request-offers, open-channel, gpadl-header, …: guest-to-host types (no handler in the guest).
        // unload-response is unexpected too: the model never sends UNLOAD.
        this.drop("unexpected-type");
        return;
    }
  }

  private drop(reason: DropReason): void {
    this.counters.dropped[reason]++;
  }

  /** Completes the first outstanding request `match` accepts, or counts the reply as unmatched. */
  private complete(msg: ChannelMessage, match: (r: PendingRequest) => boolean): void {
    const req = this.pending.find((r) => !r.done && match(r));
    if (req === undefined) {
      this.drop("unmatched-reply");
      return;
    }
    req.response = msg;
    req.done = true;
  }

  /** vmbus_onopen_result: matched on child_relid and openid. */
  private onOpenResult(msg: OpenChannelResultMessage): void {
    this.complete(
      msg,
      (r) =>
        r.msgtype === CHANNELMSG.OPENCHANNEL && r.childRelid === msg.childRelid && r.openId === msg.openId,
    );
  }

  /** vmbus_ongpadl_created: matched on (child_relid, gpadl); an unknown one is counted and ignored. */
  private onGpadlCreated(msg: GpadlCreatedMessage): void {
    this.complete(
      msg,
      (r) =>
        r.msgtype === CHANNELMSG.GPADL_HEADER && r.childRelid === msg.childRelid && r.gpadl === msg.gpadl,
    );
  }

  /** vmbus_ongpadl_torndown: matched on the handle only. */
  private onGpadlTorndown(msg: GpadlTorndownMessage): void {
    this.complete(msg, (r) => r.msgtype === CHANNELMSG.GPADL_TEARDOWN && r.gpadl === msg.gpadl);
  }

  /** vmbus_onoffer: validate (isolated VMs load only hardened drivers), then create the channel. */
  private onOfferMessage(offer: OfferChannelMessage): void {
    if (!isValidOffer(offer, this.isolated, this.devices)) {
      this.drop("invalid-offer");
      return;
    }
    if (offer.childRelid >= MAX_CHANNEL_RELIDS) {
      this.drop("relid-out-of-range");
      return;
    }
    if (this.channelsByRelid.has(offer.childRelid)) {
      this.drop("duplicate-offer");
      return;
    }
    // vmbus_process_offer: a sub-channel joins its primary and goes to the driver's callback only.
    const place = placeOffer(offer, this.channelsByRelid.values());
    // init_vp_index runs before the duplicate check: a duplicate primary's CPU stays marked allocated.
    const perfChannel = isPerfChannel(offer, this.devices);
    const targetCpu = this.#initVpIndex(
      offer,
      perfChannel,
      place.kind === "primary" ? undefined : place.primary,
    );
    if (place.kind === "duplicate-primary") {
      this.drop("duplicate-primary");
      return;
    }
    const channel = new VmbusChannel(this.#transport, offer, { targetCpu, perfChannel });
    this.channelsByRelid.set(offer.childRelid, channel);
    if (place.kind === "sub-channel") {
      channel.primaryChannel = place.primary;
      place.primary.subChannels.push(channel);
      this.counters.subChannelOffers++;
      // vmbus_add_channel_work runs on a workqueue, not in the DPC: the callback may wait (vmbus_open).
      this.#subChannelWork.push(channel);
      return;
    }
    if (offer.subChannelIndex !== 0) this.counters.orphanSubChannelOffers++;
    for (const l of this.offerListeners.slice()) l(channel);
  }

  /** init_vp_index for an offer (vp-index.ts), in the form the booted kernel runs. */
  #initVpIndex(offer: OfferChannelMessage, perfChannel: boolean, primary: VmbusChannel | undefined): number {
    const form = this.kernel.profile.vmbus.initVpIndex.value;
    const choice = this.cpuAllocator.initVpIndex(
      { perfChannel, primary, subChannelIndex: offer.subChannelIndex, version: this.version },
      form,
    );
    if (choice.loopsForever) {
      this.kernel.report({
        id: VMBUS_FINDING.initVpIndexLoopsForever,
        invariant: "liveness",
        what: `offer ${offer.childRelid}: a NUMA node has no housekeeping CPU, so init_vp_index clears its mask and retries for ever (the model binds the channel to CPU 0)`,
        where: "init_vp_index (drivers/hv/channel_mgmt.c), the retry after cpumask_empty(available_mask)",
      });
    }
    return choice.cpu;
  }

  /**
   * vmbus_onoffer_rescind: mark the channel rescinded (writes fail with ENODEV), wake every request
   * waiting on it (vmbus_rescind_cleanup), tell the driver; a channel that is not open is released
   * at once, an open one when its driver closes it.
   */
  private onRescind(relid: number): void {
    const channel = this.channelsByRelid.get(relid);
    if (channel === undefined) {
      this.drop("rescind-unknown-channel");
      return;
    }
    if (channel.rescinded) {
      this.drop("duplicate-rescind");
      return;
    }
    channel.markRescinded();
    for (const r of this.pending) {
      if (r.channel === channel) r.done = true;
    }
    channel.notifyRescind();
    channel.releaseIfIdle();
  }

  private emit(direction: MessageDirection, type: number, bytes: Uint8Array): void {
    if (this.#traceListeners.length > 0)
      this.#trace({ kind: "message", direction, type, name: channelMessageName(type), bytes: bytes.slice() });
    if (this.messageListeners.length === 0) return;
    // The listeners' copy becomes an array of its own when read (callers may read `bytes.buffer` from offset 0).
    const e = new RecordedMessage(direction, type, this.#eventCopies.copy(bytes));
    for (const l of this.messageListeners) l(e);
  }
}
