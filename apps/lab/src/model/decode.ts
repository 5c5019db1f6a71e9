/**
 * Field-by-field views of recorded events. Every value comes from the packages' own decoders
 * (readVisibilityInput, decodeChannelMessage, readPacketDescriptor, decodeTransferPagePacket,
 * decodeGpaDirectPacket, decodeNvspMessage, decodeRndisMessage); the tables below only say where each
 * decoded field sits in the bytes, for the hex view. Each such field is read back from the bytes at its
 * offset and flagged when it disagrees with the decoder, so a wrong offset here cannot go unnoticed.
 */
import { HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY, HvStatus, readVisibilityInput } from "@ivm/hypercall";
import {
  decodeNvspMessage,
  decodeRndisMessage,
  nvspFieldLayout,
  RNDIS_MSG_TYPE,
  rndisFieldLayout,
} from "@ivm/netvsc-protocol";
import {
  CHANNELMSG,
  decodeChannelMessage,
  decodeGpaDirectPacket,
  decodePfnArray,
  decodeTransferPagePacket,
  readPacketDescriptor,
  VM_PKT,
} from "@ivm/vmbus";
import type { LabEvent } from "./recorder.js";

export interface FieldRow {
  readonly name: string;
  /** Byte offset in the part's bytes, when the field has a fixed place. */
  readonly offset?: number;
  readonly size?: number;
  readonly value: string;
  /** The bytes at offset disagree with the decoder's value (a layout error in this file). */
  readonly mismatch?: boolean;
}

/** A contiguous run of PFNs. */
export interface PfnRun {
  readonly first: number;
  readonly count: number;
}

export interface DecodedPart {
  readonly title: string;
  /** The bytes this part's offsets count from. */
  readonly bytes: Uint8Array;
  /** Where this part starts inside `bytes` (a payload inside a packet). */
  readonly base: number;
  readonly length: number;
  readonly fields: readonly FieldRow[];
  readonly pfns?: readonly PfnRun[];
  readonly note?: string;
}

export interface DecodedEvent {
  /** One line: what this event is. */
  readonly title: string;
  /** Machine-readable facts the UI and tests use (e.g. a GPADL header's handle and PFN count). */
  readonly facts: Readonly<Record<string, number | string>>;
  readonly parts: readonly DecodedPart[];
}

type Layout = Readonly<Record<string, readonly [offset: number, size: number]>>;

function readLe(bytes: Uint8Array, offset: number, size: number): bigint | undefined {
  if (offset + size > bytes.length) return undefined;
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[offset + i]!);
  return v;
}

function show(v: unknown): string {
  if (typeof v === "bigint") return `0x${v.toString(16)}`;
  if (typeof v === "number") return v > 0xffff ? `${v} (0x${v.toString(16)})` : String(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (v instanceof Float64Array) return `${v.length} PFNs`;
  if (v === null) return "null";
  if (Array.isArray(v)) return `${v.length} entries`;
  return String(v);
}

/** The decoder's fields in its own order, placed by `layout` (relative to `base`) and checked against the bytes. */
function fieldsOf(obj: object, layout: Layout, bytes: Uint8Array, base: number): FieldRow[] {
  const rows: FieldRow[] = [];
  const visit = (o: object, prefix: string): void => {
    for (const [k, v] of Object.entries(o)) {
      const name = prefix + k;
      if (v !== null && typeof v === "object" && !(v instanceof Uint8Array) && !(v instanceof Float64Array)) {
        if (!Array.isArray(v)) visit(v, `${name}.`);
        else rows.push({ name, value: show(v) });
        continue;
      }
      const at = layout[name];
      if (!at) {
        rows.push({ name, value: show(v) });
        continue;
      }
      const [offset, size] = at;
      const raw = readLe(bytes, base + offset, size);
      const expected =
        typeof v === "bigint"
          ? v
          : typeof v === "number"
            ? BigInt(v)
            : typeof v === "boolean"
              ? BigInt(v ? 1 : 0)
              : undefined;
      rows.push({
        name,
        offset,
        size,
        value: show(v),
        ...(expected !== undefined && raw !== expected ? { mismatch: true } : {}),
      });
    }
  };
  visit(obj, "");
  return rows;
}

function runs(pfns: ArrayLike<number>): PfnRun[] {
  const out: PfnRun[] = [];
  for (let i = 0; i < pfns.length; i++) {
    const p = pfns[i]!;
    const last = out[out.length - 1];
    if (last && last.first + last.count === p)
      out[out.length - 1] = { first: last.first, count: last.count + 1 };
    else out.push({ first: p, count: 1 });
  }
  return out;
}

const STATUS_NAMES = new Map<number, string>(Object.entries(HvStatus).map(([k, v]) => [v, k]));
const VISIBILITY = ["not visible", "read-only", "?", "read-write"];

function decodeHypercall(e: LabEvent): DecodedEvent {
  const h = e.hypercall!;
  const view = new DataView(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength);
  const input = readVisibilityInput(view, 0, Math.floor((e.bytes.length - 16) / 8));
  const fields = fieldsOf(
    { partitionId: input.partitionId, hostVisibility: input.hostVisibility },
    { partitionId: [0, 8], hostVisibility: [8, 1] },
    e.bytes,
    0,
  );
  const rows: FieldRow[] = [
    ...fields,
    { name: "reserved", offset: 12, size: 4, value: "0" },
    { name: "gpa_page_list[]", offset: 16, size: input.pfns.length * 8, value: `${input.pfns.length} PFNs` },
  ];
  const status = STATUS_NAMES.get(h.result) ?? `0x${h.result.toString(16)}`;
  const control: FieldRow[] = [
    {
      name: "call code",
      value: `0x${h.code.toString(16)}${h.code === HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY ? " (HvCallModifySparseGpaPageHostVisibility)" : ""}`,
    },
    { name: "rep count", value: String(h.repCount) },
    { name: "rep start index", value: String(h.repStart) },
    { name: "reps completed", value: String(h.repsCompleted) },
    { name: "result", value: status },
    { name: "pages were", value: h.owner },
  ];
  return {
    title: `hypercall #${h.seq}: make ${VISIBILITY[h.visibility] ?? "?"} ${h.repCount} pages of ${h.owner} → ${status}`,
    facts: {
      seq: h.seq,
      pfnCount: input.pfns.length,
      visibility: h.visibility,
      repsCompleted: h.repsCompleted,
      result: h.result,
    },
    parts: [
      { title: "hypercall (control and status words)", bytes: e.bytes, base: 0, length: 0, fields: control },
      {
        title: "input page: struct hv_gpa_range_for_visibility",
        bytes: e.bytes,
        base: 0,
        length: e.bytes.length,
        fields: rows,
        pfns: runs(input.pfns),
      },
    ],
  };
}

const MESSAGE_LAYOUT: Readonly<Record<string, Layout>> = {
  "gpadl-header": { childRelid: [8, 4], gpadl: [12, 4], rangeBufLen: [16, 2], rangeCount: [18, 2] },
  "gpadl-body": { msgNumber: [8, 4], gpadl: [12, 4] },
  "gpadl-created": { childRelid: [8, 4], gpadl: [12, 4], creationStatus: [16, 4] },
  "gpadl-teardown": { childRelid: [8, 4], gpadl: [12, 4] },
  "gpadl-torndown": { gpadl: [8, 4] },
  "open-channel": {
    childRelid: [8, 4],
    openId: [12, 4],
    ringBufferGpadlHandle: [16, 4],
    targetVp: [20, 4],
    downstreamRingBufferPageOffset: [24, 4],
  },
  "open-channel-result": { childRelid: [8, 4], openId: [12, 4], status: [16, 4] },
  "close-channel": { childRelid: [8, 4] },
  "rescind-channel-offer": { childRelid: [8, 4] },
  "relid-released": { childRelid: [8, 4] },
  "offer-channel": { chnFlags: [56, 2], mmioMegabytes: [58, 2], subChannelIndex: [180, 2] },
};

const MESSAGE_NAME = new Map<number, string>(
  Object.entries(CHANNELMSG).map(([k, v]) => [v, `CHANNELMSG_${k}`]),
);

function decodeMessage(e: LabEvent): DecodedEvent {
  const d = decodeChannelMessage(e.bytes);
  const msgtype = Number(readLe(e.bytes, 0, 4) ?? 0n);
  const header: FieldRow[] = [
    { name: "msgtype", offset: 0, size: 4, value: `${msgtype} (${MESSAGE_NAME.get(msgtype) ?? "?"})` },
    { name: "padding", offset: 4, size: 4, value: String(readLe(e.bytes, 4, 4) ?? 0n) },
  ];
  const arrow = e.direction === "guest-to-host" ? "guest → host" : "host → guest";
  if (!d.ok) {
    return {
      title: `channel message ${arrow}: rejected (${d.error.message})`,
      facts: { msgtype },
      parts: [
        {
          title: "vmbus_channel_message_header",
          bytes: e.bytes,
          base: 0,
          length: e.bytes.length,
          fields: header,
        },
      ],
    };
  }
  const m = d.value;
  const fields = fieldsOf(m, MESSAGE_LAYOUT[m.kind] ?? {}, e.bytes, 0).filter((f) => f.name !== "kind");
  const facts: Record<string, number | string> = { msgtype, kind: m.kind };
  let pfns: PfnRun[] | undefined;
  let title = `${m.kind} ${arrow}`;
  if (m.kind === "gpadl-header") {
    // struct gpa_range at 20: byte_count, byte_offset, then pfn_array[] up to the end of the message.
    const byteCount = Number(readLe(e.bytes, 20, 4) ?? 0n);
    const byteOffset = Number(readLe(e.bytes, 24, 4) ?? 0n);
    const total = Math.max(0, (m.rangeBufLen - 8) / 8);
    const here = Math.max(0, Math.min(total, Math.floor((e.bytes.length - 28) / 8)));
    const list = decodePfnArray(e.bytes.subarray(28, 28 + here * 8));
    const values = list.ok ? list.value : new Float64Array(0);
    pfns = runs(values);
    fields.push(
      { name: "range[0].byte_count", offset: 20, size: 4, value: String(byteCount) },
      { name: "range[0].byte_offset", offset: 24, size: 4, value: String(byteOffset) },
      {
        name: "range[0].pfn_array[] (this message)",
        offset: 28,
        size: here * 8,
        value: `${here} of ${total} PFNs`,
      },
    );
    Object.assign(facts, { gpadl: m.gpadl, pfnCount: total, pfnsHere: here, byteCount });
    title = `GPADL header ${arrow}: handle 0x${m.gpadl.toString(16)}, ${total} PFNs (${here} here)`;
  } else if (m.kind === "gpadl-body") {
    const n = Math.floor(m.data.length / 8);
    const list = decodePfnArray(e.bytes.subarray(16, 16 + n * 8));
    const values = list.ok ? list.value : new Float64Array(0);
    pfns = runs(values);
    fields.push({ name: "pfn[]", offset: 16, size: n * 8, value: `${n} PFNs` });
    Object.assign(facts, { gpadl: m.gpadl, pfnsHere: n, msgNumber: m.msgNumber });
    title = `GPADL body #${m.msgNumber} ${arrow}: handle 0x${m.gpadl.toString(16)}, ${n} PFNs`;
  } else if ("gpadl" in m) {
    facts.gpadl = m.gpadl;
  }
  return {
    title,
    facts,
    parts: [
      {
        title: `channel message (${e.bytes.length} bytes)`,
        bytes: e.bytes,
        base: 0,
        length: e.bytes.length,
        fields: [...header, ...fields],
        ...(pfns ? { pfns } : {}),
      },
    ],
  };
}

const DESCRIPTOR: Layout = { type: [0, 2], offset8: [2, 2], len8: [4, 2], flags: [6, 2], transId: [8, 8] };
const PACKET_TYPE = new Map<number, string>(Object.entries(VM_PKT).map(([k, v]) => [v, `VM_PKT_${k}`]));

// Where NVSP and RNDIS fields sit comes from @ivm/netvsc-protocol's layouts (the ones its codecs use).
const NVSP_OTHER: Layout = { msgType: [0, 4] };

const RNDIS_NAME = new Map<number, string>(Object.entries(RNDIS_MSG_TYPE).map(([k, v]) => [v as number, k]));

function decodePacket(e: LabEvent): DecodedEvent {
  const arrow = e.direction === "guest-to-host" ? "guest → host" : "host → guest";
  if (e.bytes.length < 16) {
    return { title: `ring packet ${arrow}: ${e.bytes.length} bytes`, facts: {}, parts: [] };
  }
  const desc = readPacketDescriptor(e.bytes);
  const parts: DecodedPart[] = [];
  const typeName = PACKET_TYPE.get(desc.type) ?? `type ${desc.type}`;
  const descFields = fieldsOf(desc, DESCRIPTOR, e.bytes, 0).map((f) =>
    f.name === "type" ? { ...f, value: `${desc.type} (${typeName})` } : f,
  );
  const facts: Record<string, number | string> = { packetType: desc.type, transId: String(desc.transId) };
  let pfns: PfnRun[] | undefined;
  if (desc.type === VM_PKT.DATA_USING_XFER_PAGES) {
    const x = decodeTransferPagePacket(e.bytes);
    if (x.ok) {
      descFields.push(
        { name: "xfer_pageset_id", offset: 16, size: 2, value: String(x.value.pagesetId) },
        { name: "sender_owns_set", offset: 18, size: 1, value: String(x.value.senderOwns) },
        { name: "range_cnt", offset: 20, size: 4, value: String(x.value.ranges.length) },
        ...x.value.ranges.slice(0, 8).map((r, i) => ({
          name: `ranges[${i}] (byte_count, byte_offset)`,
          offset: 24 + i * 8,
          size: 8,
          value: `${r.byteCount} @ 0x${r.byteOffset.toString(16)}`,
        })),
      );
    }
  } else if (desc.type === VM_PKT.DATA_USING_GPA_DIRECT) {
    const g = decodeGpaDirectPacket(e.bytes);
    if (g.ok) {
      descFields.push({ name: "range_cnt", offset: 20, size: 4, value: String(g.value.ranges.length) });
      let at = 24;
      const all: number[] = [];
      g.value.ranges.forEach((r, i) => {
        descFields.push({
          name: `range[${i}] (len, offset, ${r.pfns.length} PFNs)`,
          offset: at,
          size: 8 + 8 * r.pfns.length,
          value: `${r.len} @ 0x${r.offset.toString(16)}`,
        });
        at += 8 + 8 * r.pfns.length;
        all.push(...r.pfns);
      });
      pfns = runs(all);
    }
  }
  parts.push({
    title: `ring packet: struct vmpacket_descriptor (${desc.len8 * 8} bytes)`,
    bytes: e.bytes,
    base: 0,
    length: desc.offset8 * 8,
    fields: descFields,
    ...(pfns ? { pfns } : {}),
  });
  let title = `${typeName} ${arrow}`;
  const start = desc.offset8 * 8;
  const end = Math.min(e.bytes.length, desc.len8 * 8);
  if (desc.type !== VM_PKT.COMP || end > start) {
    const payload = e.bytes.subarray(start, end);
    const nvsp = decodeNvspMessage(payload, e.direction);
    if (nvsp.ok) {
      const m = nvsp.value;
      facts.nvsp = m.kind;
      const fields = fieldsOf(
        m,
        m.kind === "other" ? NVSP_OTHER : nvspFieldLayout(m.kind),
        e.bytes,
        start,
      ).filter((f) => f.name !== "kind");
      const msgType = Number(readLe(e.bytes, start, 4) ?? 0n);
      parts.push({
        title: `NVSP message: ${m.kind}`,
        bytes: e.bytes,
        base: start,
        length: payload.length,
        fields: [{ name: "hdr.msg_type", offset: 0, size: 4, value: String(msgType) }, ...fields],
      });
      title = `${typeName} ${arrow}: NVSP ${m.kind}`;
    } else if (payload.length > 0) {
      parts.push({
        title: "payload",
        bytes: e.bytes,
        base: start,
        length: payload.length,
        fields: [],
        note: nvsp.error.message,
      });
    }
  }
  if (e.rndis) {
    const r = decodeRndisMessage(e.rndis);
    const msgType = Number(readLe(e.rndis, 0, 4) ?? 0n);
    if (r.ok) {
      facts.rndis = r.value.kind;
      const fields = fieldsOf(r.value, rndisFieldLayout(r.value.kind), e.rndis, 0).filter(
        (f) => f.name !== "kind",
      );
      parts.push({
        title: `RNDIS message: ${r.value.kind} (from ${e.rndisFrom})`,
        bytes: e.rndis,
        base: 0,
        length: Math.min(e.rndis.length, r.value.msgLen),
        fields: [
          {
            name: "msg_type",
            offset: 0,
            size: 4,
            value: `0x${msgType.toString(16)} (${RNDIS_NAME.get(msgType) ?? "?"})`,
          },
          ...fields,
        ],
      });
      title += ` → RNDIS ${r.value.kind}`;
    } else {
      parts.push({
        title: `RNDIS bytes (from ${e.rndisFrom})`,
        bytes: e.rndis,
        base: 0,
        length: e.rndis.length,
        fields: [],
        note: r.error.message,
      });
    }
  }
  return { title, facts, parts };
}

/** Decodes one recorded event for the panel (cheap: only the event in hand is decoded). */
export function decodeEvent(e: LabEvent): DecodedEvent {
  if (e.kind === "hypercall") return decodeHypercall(e);
  if (e.kind === "message") return decodeMessage(e);
  return decodePacket(e);
}

/** A guest → host GPADL header or body message (what "next GPADL" jumps to). */
export function isGpadlMessage(e: LabEvent): boolean {
  if (e.kind !== "message" || e.direction !== "guest-to-host" || e.bytes.length < 4) return false;
  const type = e.bytes[0]! | (e.bytes[1]! << 8);
  return type === CHANNELMSG.GPADL_HEADER || type === CHANNELMSG.GPADL_BODY;
}
