// Test-only: a tiny scripted "guest" that drives a Netvsp through two FlatRingMem rings, built from
// the package's own wire encoders (the host package never imports the guest driver), plus Uint8Array-backed host views of
// GPADLs and of guest-physical memory. Not exported from the package index.

import {
  decodeNvspMessage,
  encodeNvspMessage,
  encodeNvspRecvCompletion,
  encodeRndisInit,
  encodeRndisQuery,
  encodeRndisSet,
  NETVSC_INVALID_INDEX,
  NVSP_CHANNEL_TYPE,
  NVSP_PROTOCOL_VERSION,
  type NvspMessage,
  PAGE_SIZE,
  parseRndisFromHost,
  RNDIS_OID,
  type RndisMessage,
  validateXferPagePacket,
} from "@ivm/netvsc-protocol";
import {
  encodeCompletionPacket,
  encodePageBufferDescriptor,
  FlatRingMem,
  type HvPageBuffer,
  IncomingRing,
  initRingHeader,
  OutgoingRing,
  VM_PKT,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
} from "@ivm/vmbus";
import { HostRingEndpoint } from "@ivm/vmbus/host";
import { Netvsp, type NetvspOptions } from "../src/netvsp.js";
import type { HostGpadlView, HostGuestMemory } from "../src/ports.js";

/**
 * The scripted guest's section pool: lowest free index first (as netvsc's bitmap search), and
 * NETVSC_INVALID_INDEX when all are busy. The host side must not import the guest driver's allocator.
 */
export class ScriptedSections {
  readonly #busy: boolean[];
  constructor(count: number) {
    this.#busy = new Array<boolean>(count).fill(false);
  }
  allocate(): number {
    const i = this.#busy.indexOf(false);
    if (i < 0) return NETVSC_INVALID_INDEX;
    this.#busy[i] = true;
    return i;
  }
  free(i: number): { readonly ok: boolean } {
    if (this.#busy[i] !== true) return { ok: false };
    this.#busy[i] = false;
    return { ok: true };
  }
}

/** Padding after a batched RNDIS packet, to pkt_align when more follow (netvsc_send's padding). */
export function scriptedPadding(len: number, pktAlign: number, more: boolean): number {
  const remain = len & (pktAlign - 1);
  return more && remain !== 0 ? pktAlign - remain : 0;
}

/** Where the scripted guest puts RNDIS control requests: straddling a page boundary on purpose. */
export const CONTROL_GPA: number = 3 * PAGE_SIZE - 24;

export class FlatGpadl implements HostGpadlView {
  readonly bytes: Uint8Array;
  /** When set, every access throws (the pages stopped being host-visible). */
  refuse = false;
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }
  get size(): number {
    return this.bytes.length;
  }
  read(offset: number, dst: Uint8Array): void {
    if (this.refuse || offset < 0 || offset + dst.length > this.bytes.length) throw new Error("refused");
    dst.set(this.bytes.subarray(offset, offset + dst.length));
  }
  write(offset: number, src: Uint8Array): void {
    if (this.refuse || offset < 0 || offset + src.length > this.bytes.length) throw new Error("refused");
    this.bytes.set(src, offset);
  }
}

/** Guest-physical memory with a host-visibility bit per page; a refused access throws. */
export class FlatGuestMemory implements HostGuestMemory {
  readonly bytes: Uint8Array;
  readonly visible: Uint8Array;
  refused = 0;
  constructor(pages: number) {
    this.bytes = new Uint8Array(pages * PAGE_SIZE);
    this.visible = new Uint8Array(pages).fill(1);
  }
  read(gpa: number, dst: Uint8Array): void {
    const end = gpa + dst.length;
    if (!Number.isSafeInteger(gpa) || gpa < 0 || end > this.bytes.length) {
      this.refused++;
      throw new Error(`gpa ${gpa} outside guest RAM`);
    }
    for (let p = Math.floor(gpa / PAGE_SIZE); p * PAGE_SIZE < end; p++) {
      if (this.visible[p] !== 1) {
        this.refused++;
        throw new Error(`page ${p} not host-visible`);
      }
    }
    dst.set(this.bytes.subarray(gpa, end));
  }
  /** Put bytes at gpa and describe them as page buffers, one per page touched. */
  place(gpa: number, data: Uint8Array): HvPageBuffer[] {
    this.bytes.set(data, gpa);
    const out: HvPageBuffer[] = [];
    let at = gpa;
    let left = data.length;
    while (left > 0) {
      const offset = at % PAGE_SIZE;
      const len = Math.min(PAGE_SIZE - offset, left);
      out.push({ pfn: Math.floor(at / PAGE_SIZE), offset, len });
      at += len;
      left -= len;
    }
    return out;
  }
}

export interface GuestPacket {
  readonly type: number;
  readonly transId: bigint;
  readonly flags: number;
  /** A private copy of the whole packet. */
  readonly bytes: Uint8Array;
  /** The payload after the descriptor area. */
  readonly data: Uint8Array;
}

export const RECV_GPADL = 0x100;
export const SEND_GPADL = 0x101;

export class ScriptedGuest {
  readonly outMem: FlatRingMem;
  readonly inMem: FlatRingMem;
  readonly out: OutgoingRing;
  readonly in: IncomingRing;
  readonly endpoint: HostRingEndpoint;
  readonly gpadls: Map<number, FlatGpadl> = new Map();
  readonly memory: FlatGuestMemory;
  readonly netvsp: Netvsp;
  signals = 0;
  #tid = 1n;

  constructor(
    options: NetvspOptions = {},
    sizes: { ring?: number; inRing?: number; recv?: number; send?: number; pages?: number } = {},
  ) {
    this.outMem = new FlatRingMem(sizes.ring ?? 64 * 1024);
    this.inMem = new FlatRingMem(sizes.inRing ?? sizes.ring ?? 64 * 1024);
    initRingHeader(this.outMem);
    initRingHeader(this.inMem);
    this.out = new OutgoingRing(this.outMem);
    this.in = new IncomingRing(this.inMem);
    this.endpoint = new HostRingEndpoint({ fromGuest: this.outMem, toGuest: this.inMem });
    this.gpadls.set(RECV_GPADL, new FlatGpadl(sizes.recv ?? 1728 * 256));
    this.gpadls.set(SEND_GPADL, new FlatGpadl(sizes.send ?? 6144 * 32));
    this.memory = new FlatGuestMemory(sizes.pages ?? 256);
    this.netvsp = new Netvsp(options);
    this.netvsp.open({
      ring: this.endpoint,
      gpadl: (h) => this.gpadls.get(h),
      guestMemory: this.memory,
      signalGuest: () => {
        this.signals++;
      },
    });
  }

  get recvBuf(): FlatGpadl {
    return this.gpadls.get(RECV_GPADL)!;
  }

  get sendBuf(): FlatGpadl {
    return this.gpadls.get(SEND_GPADL)!;
  }

  nextTid(): bigint {
    return this.#tid++;
  }

  /** An in-band NVSP message (always the 40-byte struct, as the driver sends it). Returns the tid or null. */
  sendNvsp(msg: NvspMessage | Uint8Array, completion = true, tid: bigint = this.nextTid()): bigint | null {
    const payload = msg instanceof Uint8Array ? msg : encodeNvspMessage(msg);
    const r = this.out.sendPacket(payload, {
      type: VM_PKT.DATA_INBAND,
      flags: completion ? VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED : 0,
      requestId: tid,
    });
    return r.ok ? tid : null;
  }

  /** SEND_RNDIS_PKT whose bytes sit in send section `index` (written there first). */
  sendInSection(index: number, rndis: Uint8Array, tid: bigint = this.nextTid()): bigint | null {
    this.sendBuf.bytes.set(rndis, index * 6144);
    return this.sendNvsp(
      {
        kind: "send-rndis-pkt",
        channelType: NVSP_CHANNEL_TYPE.DATA,
        sendBufSectionIndex: index,
        sendBufSectionSize: rndis.length,
      },
      true,
      tid,
    );
  }

  /** SEND_RNDIS_PKT by GPA-direct page buffers over bytes placed at `gpa` in guest memory. */
  sendByPages(
    gpa: number,
    rndis: Uint8Array,
    channelType: number = NVSP_CHANNEL_TYPE.DATA,
    tid: bigint = this.nextTid(),
  ): bigint | null {
    const pbs = this.memory.place(gpa, rndis);
    return this.sendPageBuffers(pbs, channelType, tid);
  }

  sendPageBuffers(
    pbs: readonly HvPageBuffer[],
    channelType: number,
    tid: bigint = this.nextTid(),
  ): bigint | null {
    const nvsp = encodeNvspMessage({
      kind: "send-rndis-pkt",
      channelType,
      sendBufSectionIndex: NETVSC_INVALID_INDEX,
      sendBufSectionSize: 0,
    });
    const desc = encodePageBufferDescriptor(pbs, nvsp.length, tid);
    if (!desc.ok) throw desc.error;
    const r = this.out.sendWithDescriptor(desc.value, nvsp, tid);
    return r.ok ? tid : null;
  }

  /** The guest's completion of a transfer-page packet (send_recv_completions: 8 bytes). */
  completeRx(tid: bigint, status = 1): boolean {
    return this.out.write([encodeCompletionPacket(tid, encodeNvspRecvCompletion(status))], tid).ok;
  }

  readonly #held: GuestPacket[] = [];

  /** Drain the inbound ring into private copies. */
  receive(): GuestPacket[] {
    const got: GuestPacket[] = this.#held.splice(0);
    const r = this.in.drain((p) => {
      const bytes = p.bytes.slice();
      got.push({
        type: p.desc.type,
        transId: p.desc.transId,
        flags: p.desc.flags,
        bytes,
        data: bytes.subarray(p.desc.offset8 * 8, p.desc.len8 * 8),
      });
    });
    if (!r.ok) throw r.error;
    return got;
  }

  /** Poll the host until it reports no progress. */
  pump(limit = 10_000): number {
    let n = 0;
    while (this.netvsp.poll()) {
      if (++n > limit) throw new Error("netvsp never went idle");
    }
    return n;
  }

  /** Run the host and collect what it sent. */
  exchange(): GuestPacket[] {
    this.pump();
    return this.receive();
  }

  /** The RNDIS messages in a transfer-page packet, read from private copies of each good range. */
  readXfer(p: GuestPacket): { readonly messages: RndisMessage[]; readonly bad: number } {
    const v = validateXferPagePacket(p.bytes, { recvBufSize: this.recvBuf.size, recvSectionSize: 1728 });
    if (!v.ok) throw v.error;
    const messages: RndisMessage[] = [];
    let bad = 0;
    for (const r of v.value.ranges) {
      if (!r.ok) {
        bad++;
        continue;
      }
      const copy = this.recvBuf.bytes.slice(r.offset, r.offset + r.length);
      const m = parseRndisFromHost(copy);
      if (!m.ok) throw m.error;
      messages.push(m.value);
    }
    return { messages, bad };
  }

  /**
   * One RNDIS control request by page buffers: returns the NVSP completion status of the send and the
   * response the host put in a receive section (completed back to the host).
   */
  rndisRequest(msg: Uint8Array): { readonly sendStatus: number | null; readonly response: RndisMessage } {
    const tid = this.sendByPages(CONTROL_GPA, msg, NVSP_CHANNEL_TYPE.CONTROL);
    if (tid === null) throw new Error("outbound ring full");
    const got = this.exchange();
    let sendStatus: number | null = null;
    let response: RndisMessage | undefined;
    for (const p of got) {
      if (p.type === VM_PKT.COMP && p.transId === tid) {
        const d = decodeNvspMessage(p.data, "host-to-guest");
        if (d.ok && d.value.kind === "send-rndis-pkt-complete") sendStatus = d.value.status;
      } else if (p.type === VM_PKT.DATA_USING_XFER_PAGES && response === undefined) {
        const m = this.readXfer(p).messages[0];
        if (m?.kind === "packet") {
          this.#held.push(p); // a data frame that raced the response: the next receive() gets it
          continue;
        }
        response = m;
        this.completeRx(p.transId);
      } else {
        this.#held.push(p);
      }
    }
    this.pump();
    if (response === undefined) throw new Error("no RNDIS response");
    return { sendStatus, response };
  }

  #req = 1;

  /**
   * The whole attach the Linux driver performs (netvsc_connect_vsp, netvsc_init_buf,
   * rndis_filter_device_add, rndis_filter_open), without checking the replies.
   */
  attach(version: number = NVSP_PROTOCOL_VERSION.V61): void {
    this.sendNvsp({ kind: "init", minProtocolVersion: version, maxProtocolVersion: version });
    this.sendNvsp({ kind: "send-ndis-config", mtu: 1514, capabilities: 0n }, false);
    this.sendNvsp({ kind: "send-ndis-version", ndisMajor: 6, ndisMinor: 0x1e }, false);
    this.sendNvsp({ kind: "send-recv-buf", gpadlHandle: RECV_GPADL, id: 0xcafe });
    this.sendNvsp({ kind: "send-send-buf", gpadlHandle: SEND_GPADL, id: 0 });
    this.exchange();
    this.rndisRequest(encodeRndisInit({ requestId: this.#req++ }));
    this.rndisRequest(encodeRndisQuery({ requestId: this.#req++, oid: RNDIS_OID.ETH_PERMANENT_ADDRESS }));
    const filter = new Uint8Array(4);
    new DataView(filter.buffer).setUint32(0, 0x9, true); // DIRECTED | BROADCAST
    this.rndisRequest(
      encodeRndisSet({ requestId: this.#req++, oid: RNDIS_OID.GEN_CURRENT_PACKET_FILTER, info: filter }),
    );
  }
}
