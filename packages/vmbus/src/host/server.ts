/**
 * The host's VMBus server (the part of Hyper-V / OpenVMM's vmbus_server the guest talks to). It sees
 * the guest only through channel-message bytes and its visibility-gated view of guest memory:
 * version negotiation, offers of the channels host devices registered, GPADL reassembly (malformed →
 * GPADL_CREATED with a failed status, as OpenVMM does), OPENCHANNEL with a HostRingEndpoint over the
 * ring GPADL's pages, CLOSECHANNEL, GPADL teardown, RELID_RELEASED.
 *
 * Hooks for an adversarial host: intercept (replace, drop or delay) any outgoing message, send
 * arbitrary bytes, refuse HvPostMessage with any status, rescind a channel at any point.
 */
import type { HostView } from "@ivm/hypercall";
import { HypercallError } from "@ivm/hypercall";
import { type Result, VmbusError } from "../errors.js";
import type { RingWriteOk } from "../ring/outgoing.js";
import type { Scheduler } from "../scheduler.js";
import type { PostStatusHook, SynicLink } from "../synic.js";
import { guidFromString, readU32, writeU32 } from "../wire/bytes.js";
import {
  type ChannelMessage,
  decodeChannelMessage,
  encodeChannelMessage,
  type GpadlBodyMessage,
  type GpadlHeaderMessage,
  MAX_USER_DEFINED_BYTES,
  type OfferChannelMessage,
  type OpenChannelMessage,
  VMBUS_VERSION,
} from "../wire/channel-message.js";
import { HV_HYP_PAGE_SIZE } from "../wire/gpadl.js";
import { type AssembledGpadl, GpadlAssembler, type GpadlStep } from "./gpadl-assembler.js";
import { type HostMemoryAccess, HostRingMem } from "./host-ring-mem.js";
import { type HostReadResult, HostRingEndpoint } from "./ring-endpoint.js";

/** STATUS_UNSUCCESSFUL: what the host puts in creation_status / OPEN_RESULT status on failure. */
export const HOST_STATUS_UNSUCCESSFUL = 0xc000_0001;

/** What the intercept hook decides for one outgoing message. */
export type HostMessageAction =
  | { readonly kind: "send" }
  | { readonly kind: "replace"; readonly bytes: Uint8Array }
  | { readonly kind: "drop" }
  | { readonly kind: "delay"; readonly rounds: number };

export interface HostHooks {
  /** Sees every message the server is about to send (a copy); undefined means send as is. */
  intercept?: ((bytes: Uint8Array) => HostMessageAction | undefined) | undefined;
}

/** A host device behind a channel (netvsp, a test device). */
export interface HostDevice {
  /** OPENCHANNEL accepted by the server: return a non-zero status to refuse it. */
  onOpen?(channel: HostChannel, message: OpenChannelMessage): number | undefined;
  onClose?(channel: HostChannel): void;
  /** Called every round while the channel is open; return true when it did something. */
  poll?(channel: HostChannel): boolean;
}

/** The parts of an offer a device chooses; the rest gets defaults. */
export interface HostOfferInit {
  readonly interfaceType: Uint8Array;
  readonly interfaceInstance?: Uint8Array;
  readonly chnFlags?: number;
  readonly userDefined?: Uint8Array;
  readonly subChannelIndex?: number;
  /** child_relid; the next free one by default. */
  readonly childRelid?: number;
  readonly connectionId?: number;
}

export type HostChannelState = "offered" | "open" | "rescinded";

export type HostDropReason =
  | "malformed"
  | "unknown-type"
  /** A type only the host sends (the OpenVMM server hits unreachable! here; the model counts it). */
  | "unexpected-type"
  | "unknown-channel"
  | "unknown-gpadl";

export interface HostServerCounters {
  readonly received: Map<number, number>;
  readonly sent: Map<number, number>;
  readonly dropped: Record<HostDropReason, number>;
  gpadlsCreated: number;
  gpadlsFailed: number;
  gpadlsTornDown: number;
  opensRefused: number;
  /** Host accesses to guest memory the host view refused (counted per device call that hit one). */
  accessRefused: number;
  /** Guest → host signals seen. */
  signalsSeen: number;
  /** Messages the intercept hook dropped, replaced or delayed. */
  intercepted: number;
}

/** One channel as the host sees it. */
export class HostChannel {
  readonly server: HostVmbusServer;
  readonly relid: number;
  readonly offer: OfferChannelMessage;
  readonly device: HostDevice;
  state: HostChannelState = "offered";
  /** The ring endpoint while open. */
  endpoint: HostRingEndpoint | undefined;
  /** The ring GPADL's handle while open. */
  ringGpadl = 0;
  /** The guest signalled since the last takeSignal(). */
  private signalled = false;

  constructor(server: HostVmbusServer, offer: OfferChannelMessage, device: HostDevice) {
    this.server = server;
    this.relid = offer.childRelid;
    this.offer = offer;
    this.device = device;
  }

  /** Whether the guest signalled this channel since the last call. */
  takeSignal(): boolean {
    const s = this.signalled;
    this.signalled = false;
    return s;
  }

  /** @internal */
  markSignalled(): void {
    this.signalled = true;
  }

  /** An established GPADL of this channel (e.g. netvsc's receive buffer), by handle. */
  gpadl(handle: number): AssembledGpadl | undefined {
    const g = this.server.gpadls.get(handle);
    return g !== undefined && g.childRelid === this.relid ? g : undefined;
  }

  /** Reads `dst.length` bytes at byte `offset` of a GPADL of this channel, through the host view. */
  readGpadl(handle: number, offset: number, dst: Uint8Array): boolean {
    return this.gpadlAccess(handle, offset, dst, false);
  }

  writeGpadl(handle: number, offset: number, src: Uint8Array): boolean {
    return this.gpadlAccess(handle, offset, src, true);
  }

  private gpadlAccess(handle: number, offset: number, buf: Uint8Array, write: boolean): boolean {
    const g = this.gpadl(handle);
    if (g === undefined || g.ranges.length !== 1) return false;
    const range = g.ranges[0]!;
    if (offset < 0 || offset + buf.length > range.byteCount) return false;
    const memory = this.server.memory;
    let done = 0;
    while (done < buf.length) {
      const at = range.byteOffset + offset + done;
      const page = Math.floor(at / HV_HYP_PAGE_SIZE);
      const inPage = at - page * HV_HYP_PAGE_SIZE;
      const n = Math.min(HV_HYP_PAGE_SIZE - inPage, buf.length - done);
      const gpa = range.pfns[page]! * HV_HYP_PAGE_SIZE + inPage;
      // a view only for the pieces of an access that crosses pages (most lie inside one)
      const part = n === buf.length ? buf : buf.subarray(done, done + n);
      if (write) memory.write(gpa, part);
      else memory.read(gpa, part);
      done += n;
    }
    return true;
  }

  /** Reads the next guest packet (a host-owned copy). */
  readPacket(): HostReadResult {
    if (this.endpoint === undefined) return { kind: "empty" };
    return this.endpoint.readPacket();
  }

  /** Publishes the host's read index; signals the guest if it was waiting for room. */
  commitRead(): void {
    if (this.endpoint?.commitRead().signal === true) this.server.signalGuest(this.relid);
  }

  /** Writes a prepared packet into the guest's inbound ring, signalling as hv_signal_on_write would. */
  send(packet: Uint8Array): Result<RingWriteOk> {
    return this.afterWrite(this.requireEndpoint().send(packet));
  }

  sendInband(payload: Uint8Array, transId: bigint, flags = 0): Result<RingWriteOk> {
    return this.afterWrite(this.requireEndpoint().sendInband(payload, transId, flags));
  }

  sendCompletion(transId: bigint, payload: Uint8Array): Result<RingWriteOk> {
    return this.afterWrite(this.requireEndpoint().sendCompletion(transId, payload));
  }

  private requireEndpoint(): HostRingEndpoint {
    if (this.endpoint === undefined) throw new VmbusError("EINVAL", "not-open", "host channel is not open");
    return this.endpoint;
  }

  private afterWrite(r: Result<RingWriteOk>): Result<RingWriteOk> {
    if (r.ok && r.value.signal) this.server.signalGuest(this.relid);
    return r;
  }
}

export interface HostServerOptions {
  readonly scheduler: Scheduler;
  readonly synic: SynicLink;
  /** The host's view of guest memory (visibility-gated). */
  readonly hostView: HostView | HostMemoryAccess;
  /** Newest protocol version the host accepts (WIN10_V5_3 by default). */
  readonly maxVersion?: number;
  /** Oldest version the host accepts (WIN7 by default). */
  readonly minVersion?: number;
}

export class HostVmbusServer {
  readonly synic: SynicLink;
  readonly memory: HostMemoryAccess;
  readonly gpadls: GpadlAssembler = new GpadlAssembler();
  readonly hooks: HostHooks = {};
  readonly maxVersion: number;
  readonly minVersion: number;
  readonly counters: HostServerCounters = {
    received: new Map(),
    sent: new Map(),
    dropped: {
      malformed: 0,
      "unknown-type": 0,
      "unexpected-type": 0,
      "unknown-channel": 0,
      "unknown-gpadl": 0,
    },
    gpadlsCreated: 0,
    gpadlsFailed: 0,
    gpadlsTornDown: 0,
    opensRefused: 0,
    accessRefused: 0,
    signalsSeen: 0,
    intercepted: 0,
  };
  /** The version the guest negotiated, 0 before. */
  version = 0;
  private readonly channelsByRelid = new Map<number, HostChannel>();
  /** child_relid of GPADLs being assembled, so a failure can be reported to the right channel. */
  private readonly gpadlRelid = new Map<number, number>();
  private readonly delayed: { bytes: Uint8Array; rounds: number }[] = [];
  /**
   * The lowest child_relid no channel holds. A relid is held from its offer until the guest's
   * CHANNELMSG_RELID_RELEASED, then free again — as QEMU's VMBus server allocates them (a bitmap,
   * lowest free first). Never reusing them would end a long-running guest's hot adds at the guest's
   * MAX_CHANNEL_RELIDS (2048), which drops any offer at or above it.
   */
  #freeRelid(): number {
    let relid = 1;
    while (this.channelsByRelid.has(relid)) relid++;
    return relid;
  }
  private readonly removePollers: (() => void)[];

  constructor(options: HostServerOptions) {
    this.synic = options.synic;
    this.memory = options.hostView;
    this.maxVersion = options.maxVersion ?? VMBUS_VERSION.WIN10_V5_3;
    this.minVersion = options.minVersion ?? VMBUS_VERSION.WIN7;
    this.removePollers = [
      options.scheduler.addPoller("host vmbus server", () => this.pollMessages()),
      options.scheduler.addPoller("host devices", () => this.pollDevices()),
    ];
  }

  get channels(): ReadonlyMap<number, HostChannel> {
    return this.channelsByRelid;
  }

  /** The host transport's answer to HvPostMessage (adversarial: return INSUFFICIENT_BUFFERS, …). */
  set postStatus(hook: PostStatusHook | undefined) {
    this.synic.postStatus = hook;
  }

  dispose(): void {
    for (const r of this.removePollers) r();
  }

  /** Registers a device; its channel is offered in answer to REQUESTOFFERS, or at once after it (hot add). */
  registerDevice(init: HostOfferInit, device: HostDevice): HostChannel {
    const relid = init.childRelid ?? this.#freeRelid();
    const userDefined = new Uint8Array(MAX_USER_DEFINED_BYTES);
    if (init.userDefined !== undefined) userDefined.set(init.userDefined.subarray(0, MAX_USER_DEFINED_BYTES));
    const offer: OfferChannelMessage = {
      kind: "offer-channel",
      interfaceType: init.interfaceType.slice(),
      interfaceInstance: (init.interfaceInstance ?? instanceGuid(relid)).slice(),
      chnFlags: init.chnFlags ?? 0,
      mmioMegabytes: 0,
      userDefined,
      subChannelIndex: init.subChannelIndex ?? 0,
      childRelid: relid,
      monitorId: 0,
      monitorAllocated: false,
      isDedicatedInterrupt: false,
      connectionId: init.connectionId ?? relid,
    };
    const ch = new HostChannel(this, offer, device);
    this.channelsByRelid.set(relid, ch);
    // Hot add: once the guest has asked for offers, a new device is offered at once, as Hyper-V does.
    if (this.#offersRequested) this.send(offer);
    return ch;
  }

  #offersRequested = false;

  /** Sends a channel message through the intercept hook. */
  send(msg: ChannelMessage): void {
    this.deliver(encodeChannelMessage(msg));
  }

  /** Sends arbitrary bytes to the guest, bypassing the intercept hook (adversarial). */
  sendRaw(bytes: Uint8Array): void {
    this.count(this.counters.sent, bytes);
    this.synic.sendToGuest(bytes);
  }

  /** CHANNELMSG_RESCIND_CHANNELOFFER for `relid`, at any point. */
  rescind(relid: number): void {
    const ch = this.channelsByRelid.get(relid);
    if (ch !== undefined) {
      if (ch.state === "open") ch.device.onClose?.(ch);
      ch.state = "rescinded";
      ch.endpoint = undefined;
    }
    this.send({ kind: "rescind-channel-offer", childRelid: relid });
  }

  /** @internal */
  signalGuest(relid: number): void {
    this.synic.signalGuest(relid);
  }

  private deliver(bytes: Uint8Array): void {
    const action = this.hooks.intercept?.(bytes.slice());
    if (action !== undefined && action.kind !== "send") this.counters.intercepted++;
    if (action === undefined || action.kind === "send") {
      this.sendRaw(bytes);
      return;
    }
    if (action.kind === "replace") {
      this.sendRaw(action.bytes);
      return;
    }
    if (action.kind === "delay") this.delayed.push({ bytes, rounds: Math.max(1, Math.floor(action.rounds)) });
  }

  private count(map: Map<number, number>, bytes: Uint8Array): void {
    const type = bytes.length >= 4 ? readU32(bytes, 0) : -1;
    map.set(type, (map.get(type) ?? 0) + 1);
  }

  private pollMessages(): boolean {
    let progress = false;
    for (let i = 0; i < this.delayed.length; ) {
      const d = this.delayed[i]!;
      progress = true;
      if (--d.rounds <= 0) {
        this.delayed.splice(i, 1);
        this.sendRaw(d.bytes);
      } else i++;
    }
    for (let i = 0; i < 64; i++) {
      const bytes = this.synic.takeForHost();
      if (bytes === undefined) break;
      progress = true;
      this.handle(bytes);
    }
    for (const relid of this.synic.takeHostEvents()) {
      this.counters.signalsSeen++;
      this.channelsByRelid.get(relid)?.markSignalled();
    }
    return progress;
  }

  private pollDevices(): boolean {
    let progress = false;
    for (const ch of this.channelsByRelid.values()) {
      if (ch.state !== "open" || ch.device.poll === undefined) continue;
      try {
        if (ch.device.poll(ch)) progress = true;
      } catch (e) {
        // The guest made ring pages private under the host's feet: the host's problem, not a crash.
        if (e instanceof HypercallError) this.counters.accessRefused++;
        else throw e;
      }
    }
    return progress;
  }

  private handle(bytes: Uint8Array): void {
    this.count(this.counters.received, bytes);
    // The SynIC's copy of the guest's message, the host's own: decoded in place.
    const decoded = decodeChannelMessage(bytes, { owned: true });
    if (!decoded.ok) {
      this.counters.dropped.malformed++;
      return;
    }
    const msg = decoded.value;
    switch (msg.kind) {
      case "initiate-contact": {
        const v = msg.versionRequested;
        const supported = v >= this.minVersion && v <= this.maxVersion && isKnownVersion(v);
        if (supported) this.version = v;
        this.send({
          kind: "version-response",
          versionSupported: supported ? 1 : 0,
          connectionState: 0,
          msgConnId: 1,
        });
        return;
      }
      case "request-offers":
        this.#offersRequested = true;
        for (const ch of this.channelsByRelid.values()) {
          if (ch.state !== "rescinded") this.send(ch.offer);
        }
        this.send({ kind: "all-offers-delivered" });
        return;
      case "gpadl-header":
        this.onGpadlHeader(msg);
        return;
      case "gpadl-body":
        this.onGpadlBody(msg);
        return;
      case "gpadl-teardown": {
        const t = this.gpadls.teardown(msg.gpadl);
        this.gpadlRelid.delete(msg.gpadl);
        if (!t.ok) {
          this.counters.dropped["unknown-gpadl"]++;
          return;
        }
        this.counters.gpadlsTornDown++;
        this.send({ kind: "gpadl-torndown", gpadl: msg.gpadl });
        return;
      }
      case "open-channel":
        this.onOpen(msg);
        return;
      case "close-channel": {
        const ch = this.channelsByRelid.get(msg.childRelid);
        if (ch === undefined) {
          this.counters.dropped["unknown-channel"]++;
          return;
        }
        if (ch.state === "open") {
          ch.device.onClose?.(ch);
          ch.state = "offered";
          ch.endpoint = undefined;
          ch.ringGpadl = 0;
        }
        return;
      }
      case "relid-released": {
        const ch = this.channelsByRelid.get(msg.childRelid);
        if (ch === undefined || ch.state !== "rescinded") {
          this.counters.dropped["unknown-channel"]++;
          return;
        }
        this.channelsByRelid.delete(msg.childRelid);
        return;
      }
      case "unload":
        this.send({ kind: "unload-response" });
        return;
      case "unknown":
        this.counters.dropped["unknown-type"]++;
        return;
      default:
        this.counters.dropped["unexpected-type"]++;
        return;
    }
  }

  private onGpadlHeader(msg: GpadlHeaderMessage): void {
    const ch = this.channelsByRelid.get(msg.childRelid);
    if (ch === undefined || ch.state === "rescinded") {
      this.gpadlFailed(msg.childRelid, msg.gpadl);
      return;
    }
    if (!this.gpadls.get(msg.gpadl) && !this.gpadlRelid.has(msg.gpadl)) {
      this.gpadlRelid.set(msg.gpadl, msg.childRelid);
    }
    this.gpadlStep(this.gpadls.header(msg), msg.childRelid);
  }

  private onGpadlBody(msg: GpadlBodyMessage): void {
    const relid = this.gpadlRelid.get(msg.gpadl);
    const step = this.gpadls.body(msg);
    if (relid === undefined) {
      this.counters.dropped["unknown-gpadl"]++;
      return;
    }
    this.gpadlStep(step, relid);
  }

  private gpadlStep(step: GpadlStep, relid: number): void {
    if (step.kind === "pending") return;
    if (step.kind === "rejected") {
      if (step.reason !== "duplicate-handle") this.gpadlRelid.delete(step.gpadl);
      this.gpadlFailed(relid, step.gpadl);
      return;
    }
    const g = step.value;
    // The host maps the pages now: every one must be host-visible (the guest decrypts before posting).
    for (const r of g.ranges) {
      if (!this.pagesAccessible(r.pfns)) {
        this.gpadls.teardown(g.gpadl);
        this.gpadlRelid.delete(g.gpadl);
        this.gpadlFailed(relid, g.gpadl);
        return;
      }
    }
    this.counters.gpadlsCreated++;
    this.send({ kind: "gpadl-created", childRelid: relid, gpadl: g.gpadl, creationStatus: 0 });
  }

  /**
   * Whether the host may touch every page of `pfns`: asked once per run of consecutive PFNs. A run the
   * view refuses is asked again page by page, so a run the view would see differently from its pages
   * (one that crosses vTOM) gets the per-page answer.
   */
  private pagesAccessible(pfns: Float64Array): boolean {
    for (let i = 0; i < pfns.length; ) {
      const first = pfns[i]!;
      let n = 1;
      while (i + n < pfns.length && pfns[i + n] === first + n) n++;
      if (!this.accessible(first * HV_HYP_PAGE_SIZE, n * HV_HYP_PAGE_SIZE)) {
        for (let k = 0; k < n; k++) {
          if (!this.accessible((first + k) * HV_HYP_PAGE_SIZE, HV_HYP_PAGE_SIZE)) return false;
        }
      }
      i += n;
    }
    return true;
  }

  private accessible(gpa: number, len: number): boolean {
    const view = this.memory as Partial<HostView>;
    return view.accessible === undefined ? true : view.accessible(gpa, len);
  }

  private gpadlFailed(relid: number, gpadl: number): void {
    this.counters.gpadlsFailed++;
    this.send({ kind: "gpadl-created", childRelid: relid, gpadl, creationStatus: HOST_STATUS_UNSUCCESSFUL });
  }

  private onOpen(msg: OpenChannelMessage): void {
    const refuse = (): void => {
      this.counters.opensRefused++;
      this.send({
        kind: "open-channel-result",
        childRelid: msg.childRelid,
        openId: msg.openId,
        status: HOST_STATUS_UNSUCCESSFUL,
      });
    };
    const ch = this.channelsByRelid.get(msg.childRelid);
    if (ch === undefined || ch.state !== "offered") {
      refuse();
      return;
    }
    const g = ch.gpadl(msg.ringBufferGpadlHandle);
    if (g === undefined || g.ranges.length !== 1 || g.ranges[0]!.byteOffset !== 0) {
      refuse();
      return;
    }
    const off = msg.downstreamRingBufferPageOffset;
    const n = g.pfns.length;
    if (off < 2 || off > n - 2) {
      refuse();
      return;
    }
    let endpoint: HostRingEndpoint;
    try {
      endpoint = new HostRingEndpoint({
        fromGuest: new HostRingMem(this.memory, g.pfns.subarray(0, off)),
        toGuest: new HostRingMem(this.memory, g.pfns.subarray(off)),
      });
    } catch (e) {
      if (!(e instanceof HypercallError)) throw e;
      this.counters.accessRefused++;
      refuse();
      return;
    }
    ch.endpoint = endpoint;
    ch.ringGpadl = msg.ringBufferGpadlHandle;
    ch.state = "open";
    const status = ch.device.onOpen?.(ch, msg) ?? 0;
    if (status !== 0) {
      ch.state = "offered";
      ch.endpoint = undefined;
      ch.ringGpadl = 0;
      this.counters.opensRefused++;
    }
    this.send({ kind: "open-channel-result", childRelid: msg.childRelid, openId: msg.openId, status });
  }
}

const KNOWN_VERSIONS: ReadonlySet<number> = new Set<number>(Object.values(VMBUS_VERSION));

function isKnownVersion(v: number): boolean {
  return KNOWN_VERSIONS.has(v);
}

/** The if_instance template, parsed once (the relid goes into its first field). */
const INSTANCE_GUID_TEMPLATE: Uint8Array = guidFromString("00000000-0000-4000-8000-000000000000");

/** A deterministic if_instance per relid (a real host uses a random GUID). */
function instanceGuid(relid: number): Uint8Array {
  const g = INSTANCE_GUID_TEMPLATE.slice();
  writeU32(g, 0, relid);
  return g;
}
