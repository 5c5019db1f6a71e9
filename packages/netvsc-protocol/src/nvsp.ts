// NVSP: the netvsc protocol messages carried in VMBus packets. Layouts mirror `struct nvsp_message`
// and its unions in drivers/net/hyperv/hyperv_net.h (all __packed, little-endian).

import { type NetvscResult, ok, reject } from "./errors.js";
import { checkU16, checkU32, checkU64, readU16, readU32, readU64, writeU16, writeU32 } from "./wire.js";

/** NVSP protocol versions (NVSP_PROTOCOL_VERSION_*): major in the high 16 bits. */
export const NVSP_PROTOCOL_VERSION: {
  readonly V1: 0x2;
  readonly V2: 0x30002;
  readonly V4: 0x40000;
  readonly V5: 0x50000;
  readonly V6: 0x60000;
  readonly V61: 0x60001;
} = {
  V1: 0x2,
  V2: 0x30002,
  V4: 0x40000,
  V5: 0x50000,
  V6: 0x60000,
  V61: 0x60001,
} as const;
export type NvspProtocolVersion = (typeof NVSP_PROTOCOL_VERSION)[keyof typeof NVSP_PROTOCOL_VERSION];

export const NVSP_INVALID_PROTOCOL_VERSION = 0xffff_ffff;

/** NETVSC_INVALID_INDEX as the u32 that goes on the wire in send_buf_section_index. */
export const NETVSC_INVALID_INDEX = 0xffff_ffff;

/** netvsc_connect_vsp's ver_list, oldest first; the driver tries it from the end (newest first). */
export const NVSP_VERSION_LIST: readonly NvspProtocolVersion[] = [
  NVSP_PROTOCOL_VERSION.V1,
  NVSP_PROTOCOL_VERSION.V2,
  NVSP_PROTOCOL_VERSION.V4,
  NVSP_PROTOCOL_VERSION.V5,
  NVSP_PROTOCOL_VERSION.V6,
  NVSP_PROTOCOL_VERSION.V61,
];

/**
 * Isolated (SNP/TDX) guests refuse anything older ("hv_netvsc: Restrict configurations on isolated
 * guests", Parri, Feb 2021): netvsc_connect_vsp fails with -EPROTO below this.
 */
export const NVSP_MIN_ISOLATED_VERSION: NvspProtocolVersion = NVSP_PROTOCOL_VERSION.V61;

/** Message types (the anonymous NVSP_MSG*_TYPE_* enum; v2 and v5/v6 values counted from 100). */
export const NVSP_MSG_TYPE: {
  readonly NONE: 0;
  readonly INIT: 1;
  readonly INIT_COMPLETE: 2;
  readonly SEND_NDIS_VER: 100;
  readonly SEND_RECV_BUF: 101;
  readonly SEND_RECV_BUF_COMPLETE: 102;
  readonly REVOKE_RECV_BUF: 103;
  readonly SEND_SEND_BUF: 104;
  readonly SEND_SEND_BUF_COMPLETE: 105;
  readonly REVOKE_SEND_BUF: 106;
  readonly SEND_RNDIS_PKT: 107;
  readonly SEND_RNDIS_PKT_COMPLETE: 108;
  readonly SEND_CHIMNEY_DELEGATED_BUF: 109;
  readonly SEND_CHIMNEY_DELEGATED_BUF_COMP: 110;
  readonly REVOKE_CHIMNEY_DELEGATED_BUF: 111;
  readonly RESUME_CHIMNEY_RX_INDICATION: 112;
  readonly TERMINATE_CHIMNEY: 113;
  readonly TERMINATE_CHIMNEY_COMP: 114;
  readonly INDICATE_CHIMNEY_EVENT: 115;
  readonly SEND_CHIMNEY_PKT: 116;
  readonly SEND_CHIMNEY_PKT_COMP: 117;
  readonly POST_CHIMNEY_RECV_REQ: 118;
  readonly POST_CHIMNEY_RECV_REQ_COMP: 119;
  readonly ALLOC_RXBUF: 120;
  readonly ALLOC_RXBUF_COMP: 121;
  readonly FREE_RXBUF: 122;
  readonly SEND_VMQ_RNDIS_PKT: 123;
  readonly SEND_VMQ_RNDIS_PKT_COMP: 124;
  readonly SEND_NDIS_CONFIG: 125;
  readonly ALLOC_CHIMNEY_HANDLE: 126;
  readonly ALLOC_CHIMNEY_HANDLE_COMP: 127;
  readonly SEND_VF_ASSOCIATION: 128;
  readonly SWITCH_DATA_PATH: 129;
  readonly UPLINK_CONNECT_STATE_DEPRECATED: 130;
  readonly OID_QUERY_EX: 131;
  readonly OID_QUERY_EX_COMP: 132;
  readonly SUBCHANNEL: 133;
  readonly SEND_INDIRECTION_TABLE: 134;
  readonly PD_API: 135;
  readonly PD_POST_BATCH: 136;
} = {
  NONE: 0,
  INIT: 1,
  INIT_COMPLETE: 2,
  SEND_NDIS_VER: 100,
  SEND_RECV_BUF: 101,
  SEND_RECV_BUF_COMPLETE: 102,
  REVOKE_RECV_BUF: 103,
  SEND_SEND_BUF: 104,
  SEND_SEND_BUF_COMPLETE: 105,
  REVOKE_SEND_BUF: 106,
  SEND_RNDIS_PKT: 107,
  SEND_RNDIS_PKT_COMPLETE: 108,
  SEND_CHIMNEY_DELEGATED_BUF: 109,
  SEND_CHIMNEY_DELEGATED_BUF_COMP: 110,
  REVOKE_CHIMNEY_DELEGATED_BUF: 111,
  RESUME_CHIMNEY_RX_INDICATION: 112,
  TERMINATE_CHIMNEY: 113,
  TERMINATE_CHIMNEY_COMP: 114,
  INDICATE_CHIMNEY_EVENT: 115,
  SEND_CHIMNEY_PKT: 116,
  SEND_CHIMNEY_PKT_COMP: 117,
  POST_CHIMNEY_RECV_REQ: 118,
  POST_CHIMNEY_RECV_REQ_COMP: 119,
  ALLOC_RXBUF: 120,
  ALLOC_RXBUF_COMP: 121,
  FREE_RXBUF: 122,
  SEND_VMQ_RNDIS_PKT: 123,
  SEND_VMQ_RNDIS_PKT_COMP: 124,
  SEND_NDIS_CONFIG: 125,
  ALLOC_CHIMNEY_HANDLE: 126,
  ALLOC_CHIMNEY_HANDLE_COMP: 127,
  SEND_VF_ASSOCIATION: 128,
  SWITCH_DATA_PATH: 129,
  UPLINK_CONNECT_STATE_DEPRECATED: 130,
  OID_QUERY_EX: 131,
  OID_QUERY_EX_COMP: 132,
  SUBCHANNEL: 133,
  SEND_INDIRECTION_TABLE: 134,
  PD_API: 135,
  PD_POST_BATCH: 136,
} as const;
/** A known message type; wire values outside this set stay representable as plain numbers. */
export type NvspMsgType = (typeof NVSP_MSG_TYPE)[keyof typeof NVSP_MSG_TYPE];

/** NVSP_STAT_*. */
export const NVSP_STATUS: {
  readonly NONE: 0;
  readonly SUCCESS: 1;
  readonly FAIL: 2;
  readonly PROTOCOL_TOO_NEW: 3;
  readonly PROTOCOL_TOO_OLD: 4;
  readonly INVALID_RNDIS_PKT: 5;
  readonly BUSY: 6;
  readonly PROTOCOL_UNSUPPORTED: 7;
} = {
  NONE: 0,
  SUCCESS: 1,
  FAIL: 2,
  PROTOCOL_TOO_NEW: 3,
  PROTOCOL_TOO_OLD: 4,
  INVALID_RNDIS_PKT: 5,
  BUSY: 6,
  PROTOCOL_UNSUPPORTED: 7,
} as const;
export type NvspStatus = (typeof NVSP_STATUS)[keyof typeof NVSP_STATUS];

/** `struct nvsp_message_header`: one u32. */
export const NVSP_HEADER_SIZE = 4;
/**
 * sizeof(struct nvsp_message) = 4 + sizeof(union nvsp_all_messages) = 4 + 36, the largest member being
 * nvsp_6_pd_api_comp (op, status, and a 28-byte create-queue reply). The driver sends this many bytes
 * for every message it originates (vmbus_sendpacket(..., sizeof(struct nvsp_message), ...)), so the
 * union padding goes on the wire; OpenVMM's netvsp calls it PACKET_SIZE_V61 = 0x28.
 */
export const NVSP_MESSAGE_SIZE = 40;
/** What a v1-era message occupied (OpenVMM PACKET_SIZE_V1 = 0x1c): header + the v1 union (24). */
export const NVSP_MESSAGE_SIZE_V1 = 28;
/** send_recv_completions() sends only `struct recv_comp_msg` {header, status}: 8 bytes, not 40. */
export const NVSP_RECV_COMPLETION_SIZE = 8;
/** sizeof(union nvsp_6_message_uber): used by the <= v6 send-table offset fix-up in netvsc_send_table. */
export const NVSP_V6_UNION_SIZE = 36;

/** channel_type of SEND_RNDIS_PKT: RMC_DATA for skbs, RMC_CONTROL for RNDIS control requests. */
export const NVSP_CHANNEL_TYPE: { readonly DATA: 0; readonly CONTROL: 1 } = { DATA: 0, CONTROL: 1 } as const;

/**
 * Bits of nvsp_2_vsc_capability (a u64 bitfield). bigint because the field is a u64 on the wire and the
 * host may set any of its 64 bits.
 */
export const NVSP_CAPABILITY: {
  readonly VMQ: bigint;
  readonly CHIMNEY: bigint;
  readonly SRIOV: bigint;
  readonly IEEE8021Q: bigint;
  readonly CORRELATION_ID: bigint;
  readonly TEAMING: bigint;
  readonly VSUBNETID: bigint;
  readonly RSC: bigint;
} = {
  VMQ: 1n << 0n,
  CHIMNEY: 1n << 1n,
  SRIOV: 1n << 2n,
  IEEE8021Q: 1n << 3n,
  CORRELATION_ID: 1n << 4n,
  TEAMING: 1n << 5n,
  VSUBNETID: 1n << 6n,
  RSC: 1n << 7n,
} as const;

/** `struct nvsp_1_receive_buffer_section`. */
export interface RecvBufSection {
  readonly offset: number;
  readonly subAllocSize: number;
  readonly numSubAllocs: number;
  readonly endOffset: number;
}

export type NvspMessage =
  | { readonly kind: "init"; readonly minProtocolVersion: number; readonly maxProtocolVersion: number }
  | {
      readonly kind: "init-complete";
      readonly negotiatedProtocolVersion: number;
      readonly maxMdlChainLength: number;
      readonly status: number;
    }
  | { readonly kind: "send-ndis-version"; readonly ndisMajor: number; readonly ndisMinor: number }
  | { readonly kind: "send-recv-buf"; readonly gpadlHandle: number; readonly id: number }
  | {
      readonly kind: "send-recv-buf-complete";
      readonly status: number;
      /** As claimed by the host; the struct (and so the wire message) holds exactly one section. */
      readonly numSections: number;
      readonly section: RecvBufSection;
    }
  | { readonly kind: "revoke-recv-buf"; readonly id: number }
  | { readonly kind: "send-send-buf"; readonly gpadlHandle: number; readonly id: number }
  | { readonly kind: "send-send-buf-complete"; readonly status: number; readonly sectionSize: number }
  | { readonly kind: "revoke-send-buf"; readonly id: number }
  | {
      readonly kind: "send-rndis-pkt";
      readonly channelType: number;
      /** 0xffffffff (NETVSC_INVALID_INDEX) when the data did not go through the send buffer. */
      readonly sendBufSectionIndex: number;
      readonly sendBufSectionSize: number;
    }
  | {
      readonly kind: "send-rndis-pkt-complete";
      /** null when the host sent a bare header: netvsc_send_tx_complete never reads the status. */
      readonly status: number | null;
    }
  | { readonly kind: "send-ndis-config"; readonly mtu: number; readonly capabilities: bigint }
  | { readonly kind: "send-vf-association"; readonly allocated: number; readonly serial: number }
  | { readonly kind: "switch-data-path"; readonly activeDatapath: number }
  | { readonly kind: "subchannel-request"; readonly operation: number; readonly numSubchannels: number }
  | { readonly kind: "subchannel-complete"; readonly status: number; readonly numSubchannels: number }
  | { readonly kind: "send-indirection-table"; readonly count: number; readonly offset: number }
  /** Any other type (chimney, PD, OID_QUERY_EX, values never assigned): kept, not interpreted. */
  | { readonly kind: "other"; readonly msgType: number; readonly body: Uint8Array };

export type NvspMessageKind = NvspMessage["kind"];

/** Who sent the bytes. Only SUBCHANNEL (133) has a different layout per direction. */
export type NvspDirection = "guest-to-host" | "host-to-guest";

export type NvspRejectReason = "nvsp-header-too-short" | "nvsp-message-too-short";

const T = NVSP_MSG_TYPE;

type KnownKind = Exclude<NvspMessageKind, "other">;

/**
 * One field of a message body: its byte offset after the 4-byte header, its width (u16, u32 or the u64
 * of nvsp_2_vsc_capability), its name in the decoded message and, for the receive-buffer section, the
 * nested object it lives in.
 */
interface NvspField {
  readonly name: string;
  readonly at: number;
  readonly width: 2 | 4 | 8;
  readonly group?: "section";
}

/** A message: its wire type, the packed size of its struct (after the header) and its fields. */
interface NvspLayout {
  readonly type: number;
  readonly body: number;
  readonly fields: readonly NvspField[];
}

const u16 = (name: string, at: number): NvspField => ({ name, at, width: 2 });
const u32 = (name: string, at: number, group?: "section"): NvspField =>
  group === undefined ? { name, at, width: 4 } : { name, at, width: 4, group };
const u64 = (name: string, at: number): NvspField => ({ name, at, width: 8 });
const layout = (type: number, body: number, ...fields: NvspField[]): NvspLayout => ({ type, body, fields });

/**
 * Every message kind the model interprets, said once: encodeNvspMessage writes these fields and
 * decodeNvspMessage reads them (the structs of hyperv_net.h, packed). Reserved words are not listed and
 * stay zero.
 */
const LAYOUT: { readonly [K in KnownKind]: NvspLayout } = {
  init: layout(T.INIT, 8, u32("minProtocolVersion", 0), u32("maxProtocolVersion", 4)),
  "init-complete": layout(
    T.INIT_COMPLETE,
    12,
    u32("negotiatedProtocolVersion", 0),
    u32("maxMdlChainLength", 4),
    u32("status", 8),
  ),
  "send-ndis-version": layout(T.SEND_NDIS_VER, 8, u32("ndisMajor", 0), u32("ndisMinor", 4)),
  "send-recv-buf": layout(T.SEND_RECV_BUF, 6, u32("gpadlHandle", 0), u16("id", 4)),
  "send-recv-buf-complete": layout(
    T.SEND_RECV_BUF_COMPLETE,
    24,
    u32("status", 0),
    u32("numSections", 4),
    u32("offset", 8, "section"),
    u32("subAllocSize", 12, "section"),
    u32("numSubAllocs", 16, "section"),
    u32("endOffset", 20, "section"),
  ),
  "revoke-recv-buf": layout(T.REVOKE_RECV_BUF, 2, u16("id", 0)),
  "send-send-buf": layout(T.SEND_SEND_BUF, 6, u32("gpadlHandle", 0), u16("id", 4)),
  "send-send-buf-complete": layout(T.SEND_SEND_BUF_COMPLETE, 8, u32("status", 0), u32("sectionSize", 4)),
  "revoke-send-buf": layout(T.REVOKE_SEND_BUF, 2, u16("id", 0)),
  "send-rndis-pkt": layout(
    T.SEND_RNDIS_PKT,
    12,
    u32("channelType", 0),
    u32("sendBufSectionIndex", 4),
    u32("sendBufSectionSize", 8),
  ),
  "send-rndis-pkt-complete": layout(T.SEND_RNDIS_PKT_COMPLETE, 4, u32("status", 0)),
  // mtu, a reserved u32, then the u64 capability bitfield.
  "send-ndis-config": layout(T.SEND_NDIS_CONFIG, 16, u32("mtu", 0), u64("capabilities", 8)),
  "send-vf-association": layout(T.SEND_VF_ASSOCIATION, 8, u32("allocated", 0), u32("serial", 4)),
  "switch-data-path": layout(T.SWITCH_DATA_PATH, 4, u32("activeDatapath", 0)),
  "subchannel-request": layout(T.SUBCHANNEL, 8, u32("operation", 0), u32("numSubchannels", 4)),
  "subchannel-complete": layout(T.SUBCHANNEL, 8, u32("status", 0), u32("numSubchannels", 4)),
  "send-indirection-table": layout(T.SEND_INDIRECTION_TABLE, 8, u32("count", 0), u32("offset", 4)),
};

/** Wire type -> kind; SUBCHANNEL (the one type laid out per direction) is resolved in kindOf. */
const KIND_OF_TYPE: ReadonlyMap<number, KnownKind> = new Map(
  (Object.keys(LAYOUT) as KnownKind[])
    .filter((k) => LAYOUT[k].type !== T.SUBCHANNEL)
    .map((k) => [LAYOUT[k].type, k] as const),
);

function kindOf(msgType: number, direction: NvspDirection): KnownKind | null {
  if (msgType === T.SUBCHANNEL)
    return direction === "guest-to-host" ? "subchannel-request" : "subchannel-complete";
  return KIND_OF_TYPE.get(msgType) ?? null;
}

/** Absolute offset (header included) of a field of a layout: the hot paths' constants come from here. */
function fieldAt(kind: KnownKind, name: string): number {
  const field = LAYOUT[kind].fields.find((f) => f.name === name);
  if (field === undefined) throw new Error(`nvsp layout ${kind} has no field ${name}`);
  return NVSP_HEADER_SIZE + field.at;
}

// The per-packet messages, resolved to constant offsets once (SEND_RNDIS_PKT and its completion).
const RNDIS_PKT_CHANNEL_TYPE = fieldAt("send-rndis-pkt", "channelType");
const RNDIS_PKT_SECTION_INDEX = fieldAt("send-rndis-pkt", "sendBufSectionIndex");
const RNDIS_PKT_SECTION_SIZE = fieldAt("send-rndis-pkt", "sendBufSectionSize");
const RNDIS_PKT_COMPLETE_STATUS = fieldAt("send-rndis-pkt-complete", "status");

/** Where a field sits in a message: byte offset from the start of the message and width. */
export type FieldPlace = readonly [offset: number, width: number];

/**
 * Where each field of a message kind sits (header included), read from the layout the codecs use: for
 * tools that show a message's bytes beside its decoded fields. Grouped fields are named "section.offset".
 * "other" has none.
 */
export function nvspFieldLayout(kind: NvspMessageKind): Readonly<Record<string, FieldPlace>> {
  if (kind === "other") return {};
  return Object.fromEntries(
    LAYOUT[kind].fields.map((f) => [fieldName(f), [NVSP_HEADER_SIZE + f.at, f.width] as const]),
  );
}

/** The wire type number of a message. */
export function nvspMsgType(msg: NvspMessage): number {
  return msg.kind === "other" ? msg.msgType : LAYOUT[msg.kind].type;
}

/**
 * Minimum length the guest accepts for a host message of this type, as netvsc_send_completion,
 * netvsc_send_vf and netvsc_send_table check it. The switch in netvsc_send_completion falls through,
 * so INIT_COMPLETE must also pass the SEND_RECV_BUF_COMPLETE check: 4 + 24 = 28 bytes, not 16.
 * SEND_RNDIS_PKT_COMPLETE is only checked for the header. Types the kernel does not read from the host
 * need their full struct here (the model's choice: it decodes every field it reports).
 */
function hostMinLength(kind: KnownKind): number {
  switch (kind) {
    case "init-complete":
      return NVSP_HEADER_SIZE + LAYOUT["send-recv-buf-complete"].body;
    case "send-rndis-pkt-complete":
      return NVSP_HEADER_SIZE;
    default:
      return NVSP_HEADER_SIZE + LAYOUT[kind].body;
  }
}

function fieldName(f: NvspField): string {
  return f.group === undefined ? f.name : `${f.group}.${f.name}`;
}

function writeField(buf: Uint8Array, f: NvspField, v: unknown): void {
  const at = NVSP_HEADER_SIZE + f.at;
  if (f.width === 8) {
    const big = checkU64(fieldName(f), v as bigint);
    writeU32(buf, at, Number(big & 0xffff_ffffn));
    writeU32(buf, at + 4, Number(big >> 32n));
  } else if (f.width === 4) writeU32(buf, at, checkU32(fieldName(f), v as number));
  else writeU16(buf, at, checkU16(fieldName(f), v as number));
}

function readField(bytes: Uint8Array, f: NvspField): number | bigint {
  const at = NVSP_HEADER_SIZE + f.at;
  if (f.width === 8) return readU64(bytes, at);
  return f.width === 4 ? readU32(bytes, at) : readU16(bytes, at);
}

/**
 * Encode a message the way the driver sends it: a zeroed 40-byte `struct nvsp_message` (memset, then
 * the fields), so the union padding goes out as zeros (invariant I5). The receive completion is the
 * one 8-byte exception: use {@link encodeNvspRecvCompletion}.
 */
export function encodeNvspMessage(msg: NvspMessage): Uint8Array {
  const buf = new Uint8Array(NVSP_MESSAGE_SIZE);
  writeU32(buf, 0, checkU32("msgType", nvspMsgType(msg)));
  if (msg.kind === "other") {
    if (msg.body.length > NVSP_MESSAGE_SIZE - NVSP_HEADER_SIZE) {
      throw new RangeError(`NVSP body of ${msg.body.length} bytes does not fit struct nvsp_message`);
    }
    buf.set(msg.body, NVSP_HEADER_SIZE);
    return buf;
  }
  // A bare completion (status null) goes out as status 0 in the zeroed struct.
  const bare = msg.kind === "send-rndis-pkt-complete";
  const fields = msg as unknown as Readonly<Record<string, unknown>>;
  for (const f of LAYOUT[msg.kind].fields) {
    const holder = f.group === undefined ? fields : (fields[f.group] as Readonly<Record<string, unknown>>);
    const v = holder[f.name];
    writeField(buf, f, bare ? (v ?? 0) : v);
  }
  return buf;
}

/**
 * SEND_RNDIS_PKT written into `buf` (at least 40 bytes, the union padding zeroed): the per-packet message
 * of both sides, encoded without a message object or a fresh buffer. Same bytes as
 * encodeNvspMessage({ kind: "send-rndis-pkt", ... }).
 */
export function writeNvspRndisPacket(
  buf: Uint8Array,
  channelType: number,
  sendBufSectionIndex: number,
  sendBufSectionSize: number,
): Uint8Array {
  if (buf.length < NVSP_MESSAGE_SIZE)
    throw new RangeError(`an nvsp_message needs ${NVSP_MESSAGE_SIZE} bytes`);
  buf.fill(0, 0, NVSP_MESSAGE_SIZE);
  writeU32(buf, 0, T.SEND_RNDIS_PKT);
  writeU32(buf, RNDIS_PKT_CHANNEL_TYPE, checkU32("channelType", channelType));
  writeU32(buf, RNDIS_PKT_SECTION_INDEX, checkU32("sendBufSectionIndex", sendBufSectionIndex));
  writeU32(buf, RNDIS_PKT_SECTION_SIZE, checkU32("sendBufSectionSize", sendBufSectionSize));
  return buf;
}

/** The 8-byte RNDIS-packet completion the guest queues per transfer-page packet (send_recv_completions). */
export function encodeNvspRecvCompletion(status: number): Uint8Array {
  return writeNvspRecvCompletion(new Uint8Array(NVSP_RECV_COMPLETION_SIZE), status);
}

/** encodeNvspRecvCompletion into `buf` (8 bytes or more), for a caller that keeps one buffer. */
export function writeNvspRecvCompletion(buf: Uint8Array, status: number): Uint8Array {
  writeU32(buf, 0, T.SEND_RNDIS_PKT_COMPLETE);
  writeU32(buf, RNDIS_PKT_COMPLETE_STATUS, checkU32("status", status));
  return buf;
}

/** The length decodeNvspMessage requires of a guest's SEND_RNDIS_PKT_COMPLETE: header and status. */
const GUEST_RECV_COMPLETION_MIN = NVSP_HEADER_SIZE + LAYOUT["send-rndis-pkt-complete"].body;

/**
 * The status of a guest's receive completion (the SEND_RNDIS_PKT_COMPLETE a host reads per
 * transfer-page packet, see {@link writeNvspRecvCompletion}), read in place with no message object: −1
 * when decodeNvspMessage(bytes, "guest-to-host") would not decode it as one (too short for the header
 * or the status, or another message type).
 */
export function readNvspRecvCompletion(bytes: Uint8Array): number {
  if (bytes.length < GUEST_RECV_COMPLETION_MIN) return -1;
  if (readU32(bytes, 0) !== T.SEND_RNDIS_PKT_COMPLETE) return -1;
  return readU32(bytes, RNDIS_PKT_COMPLETE_STATUS);
}

/**
 * Decode an NVSP message from a private copy of the packet payload (hv_pkt_data .. hv_pkt_datalen).
 * Never throws on any input: a too-short message is a typed rejection (the kernel logs and drops it).
 * Bytes past the fields a kind uses are ignored, as the kernel ignores the union padding.
 */
export function decodeNvspMessage(
  bytes: Uint8Array,
  direction: NvspDirection,
): NetvscResult<NvspMessage, NvspRejectReason> {
  if (bytes.length < NVSP_HEADER_SIZE) {
    return reject("EINVAL", "nvsp-header-too-short", `nvsp_message length too small: ${bytes.length}`);
  }
  const msgType = readU32(bytes, 0);
  const kind = kindOf(msgType, direction);
  if (kind === null) {
    return ok({ kind: "other", msgType, body: bytes.slice(NVSP_HEADER_SIZE) });
  }
  const min = direction === "host-to-guest" ? hostMinLength(kind) : NVSP_HEADER_SIZE + LAYOUT[kind].body;
  if (bytes.length < min) {
    return reject("EINVAL", "nvsp-message-too-short", `nvsp type ${msgType} length ${bytes.length} < ${min}`);
  }
  // The two per-packet kinds as fixed-shape literals over the layout's constant offsets.
  if (kind === "send-rndis-pkt") {
    return ok({
      kind,
      channelType: readU32(bytes, RNDIS_PKT_CHANNEL_TYPE),
      sendBufSectionIndex: readU32(bytes, RNDIS_PKT_SECTION_INDEX),
      sendBufSectionSize: readU32(bytes, RNDIS_PKT_SECTION_SIZE),
    });
  }
  if (kind === "send-rndis-pkt-complete") {
    const status =
      bytes.length >= RNDIS_PKT_COMPLETE_STATUS + 4 ? readU32(bytes, RNDIS_PKT_COMPLETE_STATUS) : null;
    return ok({ kind, status });
  }
  const out: Record<string, unknown> = { kind };
  for (const f of LAYOUT[kind].fields) {
    const holder =
      f.group === undefined ? out : ((out[f.group] as Record<string, unknown> | undefined) ?? {});
    if (f.group !== undefined) out[f.group] = holder;
    holder[f.name] = readField(bytes, f);
  }
  return ok(out as unknown as NvspMessage);
}

/** The NDIS version netvsc_connect_vsp announces: 6.1 up to NVSP v4, 6.30 (0x1e) from v5. */
export function ndisVersionFor(nvspVersion: number): { readonly major: number; readonly minor: number } {
  return nvspVersion <= NVSP_PROTOCOL_VERSION.V4 ? { major: 6, minor: 1 } : { major: 6, minor: 0x1e };
}

/**
 * The SEND_NDIS_CONFIG negotiate_nvsp_ver sends after a successful INIT for versions above v1:
 * mtu + ETH_HLEN, 802.1q always, SR-IOV and teaming from v5, RSC from v6.1. Null for v1 (not sent).
 */
export function ndisConfigFor(nvspVersion: number, mtu: number): NvspMessage | null {
  if (nvspVersion === NVSP_PROTOCOL_VERSION.V1) return null;
  let capabilities = NVSP_CAPABILITY.IEEE8021Q;
  if (nvspVersion >= NVSP_PROTOCOL_VERSION.V5)
    capabilities |= NVSP_CAPABILITY.SRIOV | NVSP_CAPABILITY.TEAMING;
  if (nvspVersion >= NVSP_PROTOCOL_VERSION.V61) capabilities |= NVSP_CAPABILITY.RSC;
  return { kind: "send-ndis-config", mtu: mtu + 14, capabilities };
}

/** VRSS_SEND_TAB_SIZE: the only send-table size netvsc_send_table accepts. */
export const VRSS_SEND_TAB_SIZE = 16;

export type SendTableRejectReason =
  | "nvsp-message-too-short"
  | "send-table-size-wrong"
  | "send-table-offset-too-big";

/**
 * SEND_INDIRECTION_TABLE (134) as a host writes it: the v5 struct (count, offset) and the table's
 * little-endian u32 entries at `offset` bytes from the message's start. The defaults are what a host
 * speaking NVSP 6.1 sends: every entry, right after the v6 union (offset 40, where hosts up to v6 put
 * it whatever offset they claimed). `count` and `offset` may claim anything (a hostile host); the
 * message is as long as it needs to be to hold the entries at `at` (default `offset`).
 */
export function encodeSendIndirectionTable(
  entries: ArrayLike<number>,
  options: { readonly count?: number; readonly offset?: number; readonly at?: number } = {},
): Uint8Array {
  const offset = options.offset ?? NVSP_HEADER_SIZE + NVSP_V6_UNION_SIZE;
  const at = options.at ?? offset;
  const head = encodeNvspMessage({
    kind: "send-indirection-table",
    count: options.count ?? entries.length,
    offset,
  });
  const buf = new Uint8Array(Math.max(head.length, at + 4 * entries.length));
  buf.set(head);
  for (let i = 0; i < entries.length; i++) writeU32(buf, at + 4 * i, checkU32("entry", entries[i]!));
  return buf;
}

/**
 * Mirrors netvsc_send_table: parse the host's send indirection table (SEND_INDIRECTION_TABLE, 134)
 * from a private copy of the whole NVSP message. Hosts speaking <= v6 put the table right after the v6
 * union whatever offset they claim, so the offset is replaced by 40 when the message is long enough.
 *
 * The bound is the kernel's since 505e3f00c3f3 ("hv_netvsc: Add (more) validation for untrusted
 * Hyper-V values", 5.12, before every profile of the lab): the message must hold the table
 * (`msglen < count * 4` is refused first), so `msglen - count * 4` cannot wrap. Before it, a message shorter than the table
 * wrapped that unsigned difference, passed, and the table was read from past the message.
 */
export function parseSendIndirectionTable(
  bytes: Uint8Array,
  nvspVersion: number,
): NetvscResult<Uint32Array, SendTableRejectReason> {
  const msglen = bytes.length;
  if (msglen < NVSP_HEADER_SIZE + 8) {
    return reject("EINVAL", "nvsp-message-too-short", `nvsp_v5_msg length too small: ${msglen}`);
  }
  const count = readU32(bytes, fieldAt("send-indirection-table", "count"));
  let offset = readU32(bytes, fieldAt("send-indirection-table", "offset"));
  if (count !== VRSS_SEND_TAB_SIZE) {
    return reject("EINVAL", "send-table-size-wrong", `wrong send-table size: ${count}`);
  }
  const tableBytes = count * 4;
  if (
    nvspVersion <= NVSP_PROTOCOL_VERSION.V6 &&
    msglen >= NVSP_HEADER_SIZE + NVSP_V6_UNION_SIZE + tableBytes
  ) {
    offset = NVSP_HEADER_SIZE + NVSP_V6_UNION_SIZE;
  }
  if (msglen < tableBytes || offset > msglen - tableBytes) {
    return reject("EINVAL", "send-table-offset-too-big", `send-table offset too big: ${offset}`);
  }
  const table = new Uint32Array(count);
  for (let i = 0; i < count; i++) table[i] = readU32(bytes, offset + i * 4);
  return ok(table);
}
