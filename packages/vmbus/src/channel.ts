/**
 * A guest VMBus channel: mirrors struct vmbus_channel with vmbus_open / __vmbus_open / vmbus_close /
 * vmbus_close_internal / vmbus_free_ring (drivers/hv/channel.c), the send helpers
 * (vmbus_sendpacket_getid, vmbus_sendpacket_pagebuffer, vmbus_sendpacket_mpb_desc), the receive side
 * (vmbus_recvpacket, foreach_vmbus_pkt over hv_pkt_iter_*) and the rescind state.
 */
import { Gfp } from "@ivm/memory";
import { err, ok, type Result, VmbusError } from "./errors.js";
import {
  type EstablishGpadlOptions,
  establishGpadl,
  type Gpadl,
  type GpadlEstablishResult,
  type GpadlTeardownResult,
  rebaseGpadl,
  teardownGpadl,
} from "./gpadl.js";
import type { KernelContext } from "./profile.js";
import { RequestTable } from "./request-table.js";
import { type IncomingPacket, IncomingRing, type IndexPolicy, type RecvResult } from "./ring/incoming.js";
import { OutgoingRing, type RingWriteOk, type TransIdValue } from "./ring/outgoing.js";
import {
  type GuestRingBuffer,
  hvRingbufferCleanup,
  hvRingbufferInit,
  type RingPages,
  vmbusAllocRing,
  vmbusFreeRingPages,
} from "./ring/ring-buffer.js";
import { closeSubChannels } from "./subchannel.js";
import type { ChannelTransport } from "./transport.js";
import { cpuToVp, VMBUS_CONNECT_CPU } from "./vp-index.js";
import {
  CHANNELMSG,
  encodeChannelMessage,
  MAX_USER_DEFINED_BYTES,
  type OfferChannelMessage,
  type OpenChannelResultMessage,
} from "./wire/channel-message.js";
import {
  encodeMpbDescriptor,
  type HvPageBuffer,
  MAX_PAGE_BUFFER_COUNT,
  MAX_PAGE_BUFFER_PACKET,
  type MpbRange,
  pageBufferDescriptorSize,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMBUS_RQST_ERROR,
  writePageBufferDescriptor,
} from "./wire/packet.js";
import { RING_HEADER, VMBUS_DEFAULT_MAX_PKT_SIZE } from "./wire/ring-header.js";

/**
 * enum vmbus_channel_state, reduced: "open-state" is ready to open (CHANNEL_OPEN_STATE), "opening"
 * and "opened" as in the kernel.
 */
export type ChannelState = "open-state" | "opening" | "opened";

/** Owner tag of the request table's kernel memory (vmbus_alloc_requestor). */
export const REQUESTOR_TAG = "vmbus-requestor";

export interface ChannelOpenOptions {
  /** Bytes of the guest → host ring, header page included (a multiple of 4096, at least 8192). */
  readonly sendRingSize: number;
  /** Bytes of the host → guest ring. */
  readonly recvRingSize: number;
  /** At most 120 bytes, copied into the OPENCHANNEL message (the rest stays zero). */
  readonly userData?: Uint8Array;
  /** onchannel_callback: run by the guest's poller when the host signals the channel. */
  readonly onChannelCallback?: (channel: VmbusChannel) => void;
  /** channel->max_pkt_size: the inbound ring's private packet buffer. */
  readonly maxPktSize?: number;
  /** channel->rqstor_size: slots in the request table (0: none, trans_id is the caller's requestId). */
  readonly requestTableSize?: number;
  /**
   * OPENCHANNEL's target_vp. Default: the VP of the CPU init_vp_index chose when the offer arrived
   * (`channel.targetCpu`). Giving it overrides only the message (the kernel has no such argument).
   */
  readonly targetVp?: number;
  /**
   * How the inbound reader treats a corrupt write index (see IncomingRing). Default: from the
   * connection's profile ("reject" when hardened, the kernel's "linux" arithmetic otherwise).
   */
  readonly indexPolicy?: IndexPolicy;
}

export interface SendPacketOptions {
  readonly type: number;
  readonly flags: number;
  /** Written as trans_id when no request id is allocated (vmbus_sendpacket's requestid); a number below 2^53 or a bigint. */
  readonly requestId?: TransIdValue;
  /** Stored in the request table when the packet asks for a completion. */
  readonly requestCtx?: unknown;
}

export interface VmbusChannelCounters {
  /** vmbus_setevent calls: guest → host signals (HvSignalEvent hypercalls, not visibility hypercalls). */
  signals: number;
  /** Channel callbacks run. */
  callbacks: number;
  /** Sends refused with ENODEV after a rescind. */
  rescindedWrites: number;
}

/** What close() did with the rings. */
export interface CloseResult {
  /** The ring pages went back to the buddy allocator. */
  readonly freed: boolean;
  /** The ring pages were marked leaked (re-encryption failed, visibility unknown). */
  readonly leaked: boolean;
  /**
   * The profile's vmbus_free_ring freed pages that may still be host-visible (before 30d18df6567b,
   * reported as CVE-2024-36909); the model kept them out of the allocator (counted in `leaked`).
   */
  readonly freedWhileVisible?: boolean;
}

interface OpenRings {
  readonly pages: RingPages;
  gpadl: Gpadl | undefined;
  outbound: GuestRingBuffer | undefined;
  inbound: GuestRingBuffer | undefined;
}

/** A page-buffer descriptor being sent: written, then copied into the ring before the send returns. */
const PAGE_BUFFER_SCRATCH = new Uint8Array(MAX_PAGE_BUFFER_PACKET);

export class VmbusChannel {
  /** The connection's message path (vmbus_post_msg, chn_msg_list): internal, never exposed. */
  readonly #conn: ChannelTransport;
  /** The offer (decoded from the host's bytes, a private copy). */
  readonly offer: OfferChannelMessage;
  readonly relid: number;
  readonly counters: VmbusChannelCounters = { signals: 0, callbacks: 0, rescindedWrites: 0 };
  state: ChannelState = "open-state";
  /** channel->rescind. */
  rescinded = false;
  /** RELID_RELEASED was sent; the channel is gone from the connection. */
  released = false;
  private rings: OpenRings | undefined;
  private outRing: OutgoingRing<unknown> | undefined;
  private inRing: IncomingRing | undefined;
  private table: RequestTable<unknown> | undefined;
  /** The requestor's kcalloc'd id array and bitmap (guest memory, tag vmbus-requestor). */
  private requestorVas: readonly [number, number] | undefined;
  private callback: ((channel: VmbusChannel) => void) | undefined;
  private pendingInterrupt = false;
  /** Views of PAGE_BUFFER_SCRATCH by page-buffer count (sendPageBuffer). */
  private readonly pageBufferDescs: (Uint8Array | undefined)[] = [];
  private readonly rescindListeners: ((c: VmbusChannel) => void)[] = [];
  /** channel->primary_channel: set on a sub-channel (subchannel.ts), undefined on a primary. */
  primaryChannel: VmbusChannel | undefined;
  /** channel->sc_list of a primary: its sub-channels in offer order, until each is released. */
  readonly subChannels: VmbusChannel[] = [];
  /** channel->sc_creation_callback (vmbus_set_sc_create_callback): the driver's netvsc_sc_open. */
  scCreationCallback: ((subChannel: VmbusChannel) => void) | undefined;
  /** channel->target_cpu: the CPU init_vp_index chose at offer time (vp-index.ts). */
  readonly targetCpu: number;
  /** hv_is_perf_channel: the offer's device is performance critical (vmbus_devs[].perf_device). */
  readonly perfChannel: boolean;

  constructor(
    transport: ChannelTransport,
    offer: OfferChannelMessage,
    placement: { readonly targetCpu: number; readonly perfChannel: boolean } = {
      targetCpu: VMBUS_CONNECT_CPU,
      perfChannel: false,
    },
  ) {
    this.#conn = transport;
    this.offer = offer;
    this.relid = offer.childRelid;
    this.targetCpu = placement.targetCpu;
    this.perfChannel = placement.perfChannel;
  }

  /** hv_cpu_number_to_vp_number(target_cpu): the VP OPENCHANNEL names unless `targetVp` is given. */
  get targetVp(): number {
    return cpuToVp(this.targetCpu);
  }

  /** The VMBus protocol version the connection negotiated (vmbus_proto_version). */
  get vmbusVersion(): number {
    return this.#conn.version();
  }

  /** The booted kernel's profile and findings log, the connection's (one boot has one profile). */
  get kernel(): KernelContext {
    return this.#conn.kernel;
  }

  /** The ring GPADL (channel->ringbuffer_gpadlhandle) while open. */
  get ringGpadl(): Gpadl | undefined {
    return this.rings?.gpadl;
  }

  /** The request table (channel->requestor) while open. */
  get requestTable(): RequestTable<unknown> | undefined {
    return this.table;
  }

  get outbound(): OutgoingRing<unknown> | undefined {
    return this.outRing;
  }

  get inbound(): IncomingRing | undefined {
    return this.inRing;
  }

  /** The double-mapped ring addresses while open (outbound first, as the kernel lays them out). */
  get ringVas(): { readonly outbound: number; readonly inbound: number } | undefined {
    const r = this.rings;
    if (r?.outbound === undefined || r.inbound === undefined) return undefined;
    return { outbound: r.outbound.va, inbound: r.inbound.va };
  }

  /** The driver's rescind hook (the point where the kernel unbinds the device). */
  onRescind(listener: (c: VmbusChannel) => void): () => void {
    this.rescindListeners.push(listener);
    return () => {
      const i = this.rescindListeners.indexOf(listener);
      if (i >= 0) this.rescindListeners.splice(i, 1);
    };
  }

  /* ---- GPADLs ----------------------------------------------------------------------------- */

  /** vmbus_establish_gpadl (HV_GPADL_BUFFER) over `size` bytes at `va`. */
  establishGpadl(va: number, size: number, options: EstablishGpadlOptions = {}): GpadlEstablishResult {
    return establishGpadl(this.#conn, this, va, size, options);
  }

  /** vmbus_teardown_gpadl; `mustLeak` says the buffer may still be host-visible. */
  teardownGpadl(gpadl: Gpadl): GpadlTeardownResult {
    return teardownGpadl(this.#conn, this, gpadl);
  }

  /** Moves a GPADL onto another mapping of the same pages (see rebaseGpadl). */
  rebaseGpadl(gpadl: Gpadl, newVa: number): Result<void> {
    return rebaseGpadl(this.#conn, gpadl, newVa);
  }

  /* ---- open / close ----------------------------------------------------------------------- */

  /**
   * vmbus_open: vmbus_alloc_ring, then __vmbus_open — request table, ring GPADL, ring init (after the
   * GPADL: decryption destroys contents), OPENCHANNEL, wait for OPENCHANNEL_RESULT. On failure the
   * kernel's unwinding: teardown of the ring GPADL, ring cleanup, then vmbus_free_ring (which leaks
   * the pages if they could not be re-encrypted).
   */
  open(options: ChannelOpenOptions): Result<void> {
    if (this.rescinded) return err("ENODEV", "rescinded", "channel was rescinded");
    if (this.state !== "open-state") return err("EINVAL", "bad-state", `open in state ${this.state}`);
    const userData = options.userData ?? new Uint8Array(0);
    const alloc = vmbusAllocRing(this.#conn.memory, options.sendRingSize, options.recvRingSize);
    if (!alloc.ok) return alloc;
    const rings: OpenRings = {
      pages: alloc.value,
      gpadl: undefined,
      outbound: undefined,
      inbound: undefined,
    };
    this.rings = rings;
    const r = this.openInternal(rings, options, userData);
    if (!r.ok) {
      this.freeRing(rings);
      this.releaseIfIdle();
    }
    return r;
  }

  /** __vmbus_open. */
  private openInternal(rings: OpenRings, options: ChannelOpenOptions, userData: Uint8Array): Result<void> {
    const conn = this.#conn;
    const memory = conn.memory;
    if (userData.length > MAX_USER_DEFINED_BYTES) {
      return err("EINVAL", "userdata-too-long", `${userData.length} bytes of user data, at most 120`);
    }
    const { firstPfn, pageCount, sendPages } = rings.pages;
    if (sendPages < 2 || pageCount - sendPages < 2) {
      return err("EINVAL", "ring-size", "each ring needs a header page and a data page");
    }
    const tableSize = options.requestTableSize ?? 0;
    // vmbus_alloc_requestor: kcalloc(size, 8) for the id array and bitmap_zalloc(size), kernel memory.
    if (tableSize > 0) {
      const ids = memory.kmalloc.kmalloc(tableSize * 8, { tag: REQUESTOR_TAG, gfp: Gfp.Zero });
      const bitmap =
        ids === null
          ? null
          : memory.kmalloc.kmalloc(Math.ceil(tableSize / 64) * 8, { tag: REQUESTOR_TAG, gfp: Gfp.Zero });
      if (ids === null || bitmap === null) {
        if (ids !== null) memory.kmalloc.kfree(ids);
        return err("ENOMEM", "requestor", `no memory for a ${tableSize}-entry request table`);
      }
      this.requestorVas = [ids, bitmap];
    }
    this.table = tableSize > 0 ? new RequestTable<unknown>(tableSize) : undefined;
    this.state = "opening";
    this.callback = options.onChannelCallback;

    const cleanRing = (e: VmbusError): Result<void> => {
      if (rings.outbound !== undefined) hvRingbufferCleanup(memory, rings.outbound);
      if (rings.inbound !== undefined) hvRingbufferCleanup(memory, rings.inbound);
      rings.outbound = undefined;
      rings.inbound = undefined;
      this.outRing = undefined;
      this.inRing = undefined;
      this.table = undefined;
      this.freeRequestor();
      this.callback = undefined;
      this.state = "open-state";
      return { ok: false, error: e };
    };
    const freeGpadl = (e: VmbusError): Result<void> => {
      if (rings.gpadl !== undefined && rings.gpadl.handle !== 0) teardownGpadl(conn, this, rings.gpadl);
      return cleanRing(e);
    };

    const va = memory.pageToVirt(firstPfn);
    const g = establishGpadl(conn, this, va, pageCount * 4096, { type: "ring" });
    rings.gpadl = g.ok ? g.value : g.gpadl;
    if (!g.ok) return cleanRing(g.error);

    const out = hvRingbufferInit(memory, firstPfn, sendPages, 0);
    if (!out.ok) return freeGpadl(out.error);
    rings.outbound = out.value;
    const maxPkt = options.maxPktSize ?? VMBUS_DEFAULT_MAX_PKT_SIZE;
    const inb = hvRingbufferInit(memory, firstPfn + sendPages, pageCount - sendPages, maxPkt);
    if (!inb.ok) return freeGpadl(inb.error);
    rings.inbound = inb.value;
    const kernel = conn.kernel;
    this.outRing = new OutgoingRing<unknown>(rings.outbound.mem, {
      ...(this.table === undefined ? {} : { requestTable: this.table }),
      kernel,
      name: `outbound ring of channel ${this.relid}`,
    });
    this.inRing = new IncomingRing(rings.inbound.mem, {
      pktBufferSize: maxPkt,
      ...(options.indexPolicy === undefined ? {} : { indexPolicy: options.indexPolicy }),
      kernel,
      name: `inbound ring of channel ${this.relid}`,
    });

    const openId = this.relid;
    const req = conn.addPending({ msgtype: CHANNELMSG.OPENCHANNEL, channel: this, openId });
    const finish = (e: VmbusError): Result<void> => {
      conn.removePending(req);
      return freeGpadl(e);
    };
    if (this.rescinded) return finish(new VmbusError("ENODEV", "rescinded", "rescinded before OPENCHANNEL"));
    const openMsg = encodeChannelMessage({
      kind: "open-channel",
      childRelid: this.relid,
      openId,
      ringBufferGpadlHandle: rings.gpadl.handle,
      // __vmbus_open: target_vp = hv_cpu_number_to_vp_number(channel->target_cpu).
      targetVp: options.targetVp ?? this.targetVp,
      // hv_ring_gpadl_send_hvpgoffset: the inbound ring's page offset inside the ring GPADL.
      downstreamRingBufferPageOffset: sendPages,
      userData,
    });
    const posted = conn.postMessage(openMsg);
    if (!posted.ok) return finish(posted.error);
    if (conn.tracing()) {
      const ringGpadlHandle = rings.gpadl.handle;
      conn.trace({ kind: "open", relid: this.relid, openId, ringGpadlHandle, bytes: openMsg });
    }
    const w = conn.waitFor(req, "OPENCHANNEL_RESULT");
    if (!w.ok) return finish(w.error);
    conn.removePending(req);
    if (this.rescinded) return freeGpadl(new VmbusError("ENODEV", "rescinded", "rescinded during open"));
    const resp = req.response as OpenChannelResultMessage;
    if (resp.status !== 0) {
      return freeGpadl(
        new VmbusError("EAGAIN", "open-refused", `OPENCHANNEL_RESULT status 0x${resp.status.toString(16)}`),
      );
    }
    this.state = "opened";
    return ok(undefined);
  }

  /**
   * vmbus_close: vmbus_close_internal (CLOSECHANNEL, then teardown of the ring GPADL), and only if
   * that worked vmbus_free_ring (unmap both rings, free the pages unless still decrypted). When the
   * teardown fails the kernel frees nothing; the model additionally marks decrypted pages leaked.
   */
  close(): Result<CloseResult> {
    const rings = this.rings;
    if (this.state !== "opened" || rings === undefined) {
      return err("EINVAL", "not-open", `close in state ${this.state}`);
    }
    // vmbus_disconnect_ring: a primary's open sub-channels are closed first, each on its own.
    if (this.primaryChannel === undefined && this.subChannels.length > 0) closeSubChannels(this);
    const conn = this.#conn;
    this.callback = undefined; // vmbus_reset_channel_cb
    this.pendingInterrupt = false;
    this.state = "open-state";
    let failure: VmbusError | undefined;
    const closeMsg = encodeChannelMessage({ kind: "close-channel", childRelid: this.relid });
    const posted = conn.postMessage(closeMsg);
    if (posted.ok && conn.tracing()) conn.trace({ kind: "close", relid: this.relid, bytes: closeMsg });
    if (!posted.ok) {
      // "If we failed to post the close msg, it is perhaps better to leak memory."
      failure = posted.error;
    } else if (rings.gpadl !== undefined && rings.gpadl.handle !== 0) {
      const t = teardownGpadl(conn, this, rings.gpadl);
      if (!t.ok) failure = t.error;
    }
    let result: CloseResult;
    // vmbus_free_requestor: the table is private memory; the model releases it whatever the teardown did.
    this.freeRequestor();
    if (failure === undefined) {
      this.table = undefined;
      result = this.freeRing(rings);
    } else {
      // Nothing is freed or unmapped (vmbus_close skips vmbus_free_ring); pages that may be shared
      // are marked leaked so the model's invariants know they can never be reused.
      const decrypted = rings.gpadl?.decrypted === true;
      if (decrypted) vmbusFreeRingPages(conn.memory, rings.pages, true);
      this.rings = undefined;
      this.outRing = undefined;
      this.inRing = undefined;
      result = { freed: false, leaked: decrypted };
    }
    this.releaseIfIdle();
    return failure === undefined ? ok(result) : { ok: false, error: failure };
  }

  private freeRequestor(): void {
    for (const va of this.requestorVas ?? []) this.#conn.memory.kmalloc.kfree(va);
    this.requestorVas = undefined;
  }

  /** vmbus_free_ring: hv_ringbuffer_cleanup on both rings, then the pages unless decrypted. */
  private freeRing(rings: OpenRings): CloseResult {
    const memory = this.#conn.memory;
    if (rings.outbound !== undefined) hvRingbufferCleanup(memory, rings.outbound);
    if (rings.inbound !== undefined) hvRingbufferCleanup(memory, rings.inbound);
    rings.outbound = undefined;
    rings.inbound = undefined;
    const decrypted = rings.gpadl?.decrypted === true;
    const kernel = this.#conn.kernel;
    const freed = vmbusFreeRingPages(memory, rings.pages, decrypted, kernel);
    this.rings = undefined;
    this.outRing = undefined;
    this.inRing = undefined;
    const freedWhileVisible = decrypted && !kernel.profile.vmbus.ringFreeChecksDecrypted.value;
    return freedWhileVisible ? { freed, leaked: !freed, freedWhileVisible } : { freed, leaked: !freed };
  }

  /* ---- sending ---------------------------------------------------------------------------- */

  /** The outbound ring when a write may go ahead, else the error (no result object on success). */
  private writable(): OutgoingRing<unknown> | Result<never> {
    if (this.rescinded) {
      this.counters.rescindedWrites++;
      return err("ENODEV", "rescinded", "channel was rescinded");
    }
    if (this.state !== "opened" || this.outRing === undefined) {
      return err("EINVAL", "not-open", "channel is not open");
    }
    return this.outRing;
  }

  /** vmbus_setevent after a write that made the ring non-empty. */
  private afterWrite(r: Result<RingWriteOk>): Result<RingWriteOk> {
    if (r.ok && r.value.signal) this.signalHost();
    return r;
  }

  private signalHost(): void {
    this.counters.signals++;
    this.#conn.signalHost(this.relid);
  }

  /**
   * vmbus_sendpacket_getid: descriptor + payload + padding. With COMPLETION_REQUESTED and a request
   * table the trans_id is a fresh request id for `requestCtx`; otherwise it is `requestId`. The result's
   * value is the ring's one write result, valid until the next send on this channel.
   */
  sendPacket(payload: Uint8Array, options: SendPacketOptions): Result<RingWriteOk> {
    return this.sendInband(
      payload,
      options.type,
      options.flags,
      options.requestId ?? VMBUS_RQST_ERROR,
      options.requestCtx,
    );
  }

  /**
   * sendPacket with its options as plain arguments, for per-packet callers: nothing is allocated for a
   * send that succeeds. `requestId` is a bigint or, below 2^53, a number (the same 8 bytes go out).
   */
  sendInband(
    payload: Uint8Array,
    type: number,
    flags: number,
    requestId: TransIdValue,
    requestCtx?: unknown,
  ): Result<RingWriteOk> {
    const ring = this.writable();
    if (!(ring instanceof OutgoingRing)) return ring;
    const hasCtx = flags === VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED;
    return this.afterWrite(ring.sendInband(payload, type, flags, requestId, hasCtx, requestCtx));
  }

  /** vmbus_sendpacket_pagebuffer (removed upstream in 2025): more than 32 page buffers is EINVAL. */
  sendPageBuffer(
    pageBuffers: readonly HvPageBuffer[],
    payload: Uint8Array,
    requestCtx?: unknown,
  ): Result<RingWriteOk> {
    const ring = this.writable();
    if (!(ring instanceof OutgoingRing)) return ring;
    const n = pageBuffers.length;
    if (n > MAX_PAGE_BUFFER_COUNT) {
      return err("EINVAL", "too-many-page-buffers", `${n} page buffers, at most 32`);
    }
    // The descriptor goes into the ring before the write returns: one buffer, one view per count.
    let desc = this.pageBufferDescs[n];
    if (desc === undefined) {
      desc = PAGE_BUFFER_SCRATCH.subarray(0, pageBufferDescriptorSize(n));
      this.pageBufferDescs[n] = desc;
    }
    writePageBufferDescriptor(desc, pageBuffers, payload.length, VMBUS_RQST_ERROR);
    return this.afterWrite(ring.sendWithDescriptor(desc, payload, VMBUS_RQST_ERROR, requestCtx));
  }

  /**
   * vmbus_sendpacket_mpb_desc: GPA ranges {len, offset, pfn[]} (build them with
   * mpbRangesFromPageBuffers so that contiguous PFNs share one range), then the payload.
   */
  sendMpbDesc(ranges: readonly MpbRange[], payload: Uint8Array, requestCtx?: unknown): Result<RingWriteOk> {
    const ring = this.writable();
    if (!(ring instanceof OutgoingRing)) return ring;
    if (ranges.length === 0) return err("EINVAL", "no-ranges", "an mpb packet needs at least one range");
    const desc = encodeMpbDescriptor(ranges, payload.length);
    return this.afterWrite(ring.sendWithDescriptor(desc, payload, VMBUS_RQST_ERROR, requestCtx));
  }

  /**
   * vmbus_request_addr: releases a completed request id (forged or duplicate ids are rejected). A
   * number id must be below 2^53 (IncomingPacket.transIdNumber when it is not −1).
   */
  completeRequest(transId: bigint | number): Result<unknown> {
    if (this.table === undefined) return err("EINVAL", "no-request-table", "channel has no request table");
    return this.table.complete(transId);
  }

  /* ---- receiving -------------------------------------------------------------------------- */

  /** vmbus_recvpacket (raw = vmbus_recvpacket_raw): one packet copied out of the inbound ring. */
  recvPacket(dst: Uint8Array, raw = false): RecvResult | { readonly kind: "not-open" } {
    const ring = this.inRing;
    if (ring === undefined || this.state !== "opened") return { kind: "not-open" };
    const before = ring.counters.signals;
    const r = ring.recvPacket(dst, raw);
    if (ring.counters.signals > before) this.signalHost();
    return r;
  }

  /**
   * foreach_vmbus_pkt + hv_pkt_iter_close: hands each inbound packet (a private copy) to `fn`, at most
   * `budget` of them, then publishes the read index and signals the host if it was waiting for room.
   */
  drain(fn: (packet: IncomingPacket) => void, budget?: number): Result<number> {
    const ring = this.inRing;
    if (ring === undefined || this.state !== "opened")
      return err("EINVAL", "not-open", "channel is not open");
    const before = ring.counters.signals;
    const r = budget === undefined ? ring.drain(fn) : ring.drain(fn, budget);
    if (ring.counters.signals > before) this.signalHost();
    return r;
  }

  /* ---- called by the connection ----------------------------------------------------------- */

  /** The host signalled this channel (vmbus_chan_sched). */
  interrupt(): void {
    this.pendingInterrupt = true;
  }

  /**
   * Runs the channel callback if an interrupt is pending. Like NAPI, the channel is polled again while
   * the host has published more than the guest has read. Returns whether the callback ran.
   */
  runCallback(): boolean {
    const cb = this.callback;
    // An interrupt that arrives while open() still waits for OPENCHANNEL_RESULT stays pending until the
    // channel is opened (the kernel may already run the callback then; the model defers it).
    if (!this.pendingInterrupt || cb === undefined || this.state !== "opened") return false;
    this.pendingInterrupt = false;
    this.counters.callbacks++;
    cb(this);
    const ring = this.inRing;
    if (ring !== undefined && this.state === "opened") {
      if (ring.mem.readHeaderU32(RING_HEADER.WRITE_INDEX) !== ring.privateReadIndex)
        this.pendingInterrupt = true;
    }
    return true;
  }

  markRescinded(): void {
    this.rescinded = true;
    if (this.outRing !== undefined) this.outRing.rescinded = true;
  }

  notifyRescind(): void {
    for (const l of this.rescindListeners.slice()) l(this);
  }

  /** hv_process_channel_removal: once rescinded and not open, send RELID_RELEASED (once). */
  releaseIfIdle(): void {
    if (!this.rescinded || this.released || this.state !== "open-state") return;
    this.released = true;
    // hv_process_channel_removal: a sub-channel leaves its primary's sc_list.
    const sc = this.primaryChannel?.subChannels;
    if (sc !== undefined && sc.indexOf(this) >= 0) sc.splice(sc.indexOf(this), 1);
    this.#conn.releaseRelid(this);
  }
}
