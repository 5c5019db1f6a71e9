// RNDIS: the network messages inside NVSP SEND_RNDIS_PKT. Layouts mirror include/linux/rndis.h and the
// rndis_* structs in drivers/net/hyperv/hyperv_net.h; validation mirrors rndis_filter_receive,
// rndis_filter_receive_data, rndis_get_ppi, rndis_filter_receive_response, rndis_filter_query_device and
// netvsc_linkstatus_callback after the 2020-21 hardening (44144185951a, 0ba35fe91ce3 and follow-ups).

import { type NetvscError, type NetvscResult, ok, reject } from "./errors.js";
import type { FieldPlace } from "./nvsp.js";
import { checkU32, readU32, u32OrZero, writeU32 } from "./wire.js";

/** RNDIS_MSG_* (completions are the request type | 0x80000000). */
export const RNDIS_MSG_TYPE: {
  readonly PACKET: 0x1;
  readonly INIT: 0x2;
  readonly HALT: 0x3;
  readonly QUERY: 0x4;
  readonly SET: 0x5;
  readonly RESET: 0x6;
  readonly INDICATE: 0x7;
  readonly KEEPALIVE: 0x8;
  readonly INIT_C: 0x80000002;
  readonly QUERY_C: 0x80000004;
  readonly SET_C: 0x80000005;
  readonly RESET_C: 0x80000006;
  readonly KEEPALIVE_C: 0x80000008;
} = {
  PACKET: 0x1,
  INIT: 0x2,
  HALT: 0x3,
  QUERY: 0x4,
  SET: 0x5,
  RESET: 0x6,
  INDICATE: 0x7,
  KEEPALIVE: 0x8,
  INIT_C: 0x80000002,
  QUERY_C: 0x80000004,
  SET_C: 0x80000005,
  RESET_C: 0x80000006,
  KEEPALIVE_C: 0x80000008,
} as const;
export type RndisMsgType = (typeof RNDIS_MSG_TYPE)[keyof typeof RNDIS_MSG_TYPE];

/** The OIDs rndis_filter.c queries or sets (values from hyperv_net.h / include/linux/rndis.h). */
export const RNDIS_OID: {
  readonly GEN_SUPPORTED_LIST: 0x00010101;
  readonly GEN_HARDWARE_STATUS: 0x00010102;
  readonly GEN_MEDIA_SUPPORTED: 0x00010103;
  readonly GEN_MEDIA_IN_USE: 0x00010104;
  readonly GEN_MAXIMUM_FRAME_SIZE: 0x00010106;
  readonly GEN_LINK_SPEED: 0x00010107;
  readonly GEN_CURRENT_PACKET_FILTER: 0x0001010e;
  readonly GEN_MAXIMUM_TOTAL_SIZE: 0x00010111;
  readonly GEN_MEDIA_CONNECT_STATUS: 0x00010114;
  readonly GEN_RECEIVE_SCALE_CAPABILITIES: 0x00010203;
  readonly GEN_RECEIVE_SCALE_PARAMETERS: 0x00010204;
  readonly GEN_RNDIS_CONFIG_PARAMETER: 0x0001021b;
  readonly ETH_PERMANENT_ADDRESS: 0x01010101;
  readonly ETH_CURRENT_ADDRESS: 0x01010102;
  readonly OFFLOAD_ENCAPSULATION: 0x0101010a;
  readonly TCP_OFFLOAD_PARAMETERS: 0xfc01020c;
  readonly TCP_OFFLOAD_HARDWARE_CAPABILITIES: 0xfc01020d;
} = {
  GEN_SUPPORTED_LIST: 0x00010101,
  GEN_HARDWARE_STATUS: 0x00010102,
  GEN_MEDIA_SUPPORTED: 0x00010103,
  GEN_MEDIA_IN_USE: 0x00010104,
  GEN_MAXIMUM_FRAME_SIZE: 0x00010106,
  GEN_LINK_SPEED: 0x00010107,
  GEN_CURRENT_PACKET_FILTER: 0x0001010e,
  GEN_MAXIMUM_TOTAL_SIZE: 0x00010111,
  GEN_MEDIA_CONNECT_STATUS: 0x00010114,
  GEN_RECEIVE_SCALE_CAPABILITIES: 0x00010203,
  GEN_RECEIVE_SCALE_PARAMETERS: 0x00010204,
  GEN_RNDIS_CONFIG_PARAMETER: 0x0001021b,
  ETH_PERMANENT_ADDRESS: 0x01010101,
  ETH_CURRENT_ADDRESS: 0x01010102,
  OFFLOAD_ENCAPSULATION: 0x0101010a,
  TCP_OFFLOAD_PARAMETERS: 0xfc01020c,
  TCP_OFFLOAD_HARDWARE_CAPABILITIES: 0xfc01020d,
} as const;

/**
 * sizeof(struct ndis_offload) with natural alignment (computed): header 4, csum 32, lsov1 16, ipsecv1
 * 28, lsov2 28, flags 4 (= NDIS_OFFLOAD_SIZE_6_0, 112), ipsecv2 32 (-> 144, NDIS_OFFLOAD_SIZE_6_1),
 * rsc 2 + 2 padding, encap_gre 8 = 156. rndis_query_hwcaps needs type 0xa7, revision >= 1 and
 * NDIS_OFFLOAD_SIZE_6_0 <= size <= the returned length.
 */
export const NDIS_OFFLOAD_SIZE = 156;
/** NDIS_OFFLOAD_SIZE_6_0: the smallest struct ndis_offload rndis_query_hwcaps accepts. */
export const NDIS_OFFLOAD_SIZE_6_0 = 112;

/** struct ndis_object_header types (hyperv_net.h). */
export const NDIS_OBJECT_TYPE: {
  readonly DEFAULT: 0x80;
  readonly RSS_CAPABILITIES: 0x88;
  readonly RSS_PARAMETERS: 0x89;
  readonly OFFLOAD: 0xa7;
} = { DEFAULT: 0x80, RSS_CAPABILITIES: 0x88, RSS_PARAMETERS: 0x89, OFFLOAD: 0xa7 } as const;

/** RNDIS_STATUS_* values the driver looks at. */
export const RNDIS_STATUS: {
  readonly SUCCESS: 0x0;
  readonly FAILURE: 0xc0000001;
  readonly INVALID_DATA: 0xc0010015;
  readonly NOT_SUPPORTED: 0xc00000bb;
  readonly BUFFER_OVERFLOW: 0x80000005;
  readonly MEDIA_CONNECT: 0x4001000b;
  readonly MEDIA_DISCONNECT: 0x4001000c;
  readonly LINK_SPEED_CHANGE: 0x40010013;
  readonly NETWORK_CHANGE: 0x40010018;
} = {
  SUCCESS: 0x0,
  FAILURE: 0xc0000001,
  INVALID_DATA: 0xc0010015,
  NOT_SUPPORTED: 0xc00000bb,
  BUFFER_OVERFLOW: 0x80000005,
  MEDIA_CONNECT: 0x4001000b,
  MEDIA_DISCONNECT: 0x4001000c,
  LINK_SPEED_CHANGE: 0x40010013,
  NETWORK_CHANGE: 0x40010018,
} as const;

/** enum ndis_per_pkt_info_type (PACKET_CANCEL_ID and NBL_HASH_VALUE share 8). */
export const NDIS_PPI_TYPE: {
  readonly TCPIP_CHKSUM: 0;
  readonly IPSEC: 1;
  readonly TCP_LARGESEND: 2;
  readonly CLASSIFICATION_HANDLE: 3;
  readonly NDIS_RESERVED: 4;
  readonly SG_LIST: 5;
  readonly IEEE_8021Q: 6;
  readonly ORIGINAL: 7;
  readonly NBL_HASH_VALUE: 8;
  readonly ORIGINAL_NET_BUFLIST: 9;
  readonly CACHED_NET_BUFLIST: 10;
  readonly SHORT_PKT_PADINFO: 11;
} = {
  TCPIP_CHKSUM: 0,
  IPSEC: 1,
  TCP_LARGESEND: 2,
  CLASSIFICATION_HANDLE: 3,
  NDIS_RESERVED: 4,
  SG_LIST: 5,
  IEEE_8021Q: 6,
  ORIGINAL: 7,
  NBL_HASH_VALUE: 8,
  ORIGINAL_NET_BUFLIST: 9,
  CACHED_NET_BUFLIST: 10,
  SHORT_PKT_PADINFO: 11,
} as const;
/** Internal PPI type (internal bit set): RNDIS_PKTINFO_ID, which carries the RSC fragment flags. */
export const RNDIS_PKTINFO_ID = 1;

export const RNDIS_HEADER_SIZE = 8;
/** sizeof(struct rndis_packet): nine u32s. data/ppi offsets count from here, i.e. from byte 8. */
export const RNDIS_PACKET_SIZE = 36;
/** sizeof(struct rndis_per_packet_info): size, type:31|internal:1, ppi_offset. */
export const RNDIS_PPI_HEADER_SIZE = 12;
/**
 * sizeof(struct rndis_message): header + the largest union member, rndis_initialize_complete (44).
 * (computed from the struct list; the rcondis members are smaller)
 */
export const RNDIS_MESSAGE_SIZE = 52;
/** RNDIS_EXT_LEN: the response buffer after response_msg in struct rndis_request. */
export const RNDIS_EXT_LEN = 4096;
/** A response longer than this is not copied; the waiter sees RNDIS_STATUS_BUFFER_OVERFLOW. */
export const RNDIS_MAX_RESPONSE_LEN: number = RNDIS_MESSAGE_SIZE + RNDIS_EXT_LEN;

/** What rndis_filter_init_device asks for. */
export const RNDIS_MAJOR_VERSION = 1;
export const RNDIS_MINOR_VERSION = 0;
export const RNDIS_INIT_MAX_XFER_SIZE = 0x4000;

/**
 * One message's body, said once: its type and its u32 fields in wire order. Every RNDIS struct is a run
 * of u32s after the 8-byte header (msg_type, msg_len), so field i sits at byte 8 + 4 * i; the decoder and
 * the encoders both read these lists, and the per-packet PACKET fields are resolved to constants below.
 */
/** The u32 fields of struct rndis_packet (its trailing reserved word aside). */
export type RndisPacketField =
  | "dataOffset"
  | "dataLen"
  | "oobDataOffset"
  | "oobDataLen"
  | "numOobDataElements"
  | "perPktInfoOffset"
  | "perPktInfoLen"
  | "vcHandle";

interface RndisLayout {
  readonly type: number;
  readonly fields: readonly string[];
}

const PACKET_FIELDS: readonly (RndisPacketField | "reserved")[] = [
  "dataOffset",
  "dataLen",
  "oobDataOffset",
  "oobDataLen",
  "numOobDataElements",
  "perPktInfoOffset",
  "perPktInfoLen",
  "vcHandle",
  "reserved",
];

const LAYOUT = {
  packet: { type: RNDIS_MSG_TYPE.PACKET, fields: PACKET_FIELDS },
  init: {
    type: RNDIS_MSG_TYPE.INIT,
    fields: ["requestId", "majorVersion", "minorVersion", "maxTransferSize"],
  },
  initComplete: {
    type: RNDIS_MSG_TYPE.INIT_C,
    fields: [
      "requestId",
      "status",
      "majorVersion",
      "minorVersion",
      "deviceFlags",
      "medium",
      "maxPacketsPerMessage",
      "maxTransferSize",
      "packetAlignmentFactor",
      "afListOffset",
      "afListSize",
    ],
  },
  halt: { type: RNDIS_MSG_TYPE.HALT, fields: ["requestId"] },
  query: {
    type: RNDIS_MSG_TYPE.QUERY,
    fields: ["requestId", "oid", "infoBufLen", "infoBufOffset", "deviceVcHandle"],
  },
  queryComplete: {
    type: RNDIS_MSG_TYPE.QUERY_C,
    fields: ["requestId", "status", "infoBufLen", "infoBufOffset"],
  },
  set: {
    type: RNDIS_MSG_TYPE.SET,
    fields: ["requestId", "oid", "infoBufLen", "infoBufOffset", "deviceVcHandle"],
  },
  setComplete: { type: RNDIS_MSG_TYPE.SET_C, fields: ["requestId", "status"] },
  reset: { type: RNDIS_MSG_TYPE.RESET, fields: ["reserved"] },
  resetComplete: { type: RNDIS_MSG_TYPE.RESET_C, fields: ["status", "addressingReset"] },
  indicate: { type: RNDIS_MSG_TYPE.INDICATE, fields: ["status", "statusBufLen", "statusBufOffset"] },
  keepalive: { type: RNDIS_MSG_TYPE.KEEPALIVE, fields: ["requestId"] },
  keepaliveComplete: { type: RNDIS_MSG_TYPE.KEEPALIVE_C, fields: ["requestId", "status"] },
} as const satisfies Record<string, RndisLayout>;

/** Packed size of a message's struct after the header. */
function bodySize(layout: RndisLayout): number {
  return layout.fields.length * 4;
}

/** Byte offset of a field from the start of the message (header included). */
function rndisFieldAt(layout: RndisLayout, name: string): number {
  const i = layout.fields.indexOf(name);
  if (i < 0) throw new Error(`rndis layout ${layout.type} has no field ${name}`);
  return RNDIS_HEADER_SIZE + i * 4;
}

const LAYOUT_OF_KIND: { readonly [K in RndisMessageKind]: RndisLayout | null } = {
  packet: LAYOUT.packet,
  init: LAYOUT.init,
  "init-complete": LAYOUT.initComplete,
  halt: LAYOUT.halt,
  query: LAYOUT.query,
  set: LAYOUT.set,
  "query-complete": LAYOUT.queryComplete,
  "set-complete": LAYOUT.setComplete,
  reset: LAYOUT.reset,
  "reset-complete": LAYOUT.resetComplete,
  "indicate-status": LAYOUT.indicate,
  keepalive: LAYOUT.keepalive,
  "keepalive-complete": LAYOUT.keepaliveComplete,
  unknown: null,
};

/**
 * Where each field of a message kind sits (msg_len and the struct's fields, offsets from the start of
 * the message, 4 bytes each), read from the layout the codecs use: for tools that show a message's
 * bytes beside its decoded fields.
 */
export function rndisFieldLayout(kind: RndisMessageKind): Readonly<Record<string, FieldPlace>> {
  const layout = LAYOUT_OF_KIND[kind];
  const places: Record<string, FieldPlace> = { msgLen: [4, 4] };
  if (layout !== null) {
    for (let i = 0; i < layout.fields.length; i++) places[layout.fields[i]!] = [RNDIS_HEADER_SIZE + 4 * i, 4];
  }
  return places;
}

/** Body sizes of the structs (from the layouts). */
const BODY = {
  init: bodySize(LAYOUT.init),
  initComplete: bodySize(LAYOUT.initComplete),
  query: bodySize(LAYOUT.query),
  queryComplete: bodySize(LAYOUT.queryComplete),
  indicate: bodySize(LAYOUT.indicate),
} as const;

/**
 * Offsets (from the start of the message) of the rndis_packet fields, from the layout: what a receiver
 * reads before (and after) it validates a PACKET with {@link checkRndisPacket}.
 */
export const RNDIS_PACKET_AT: { readonly [K in RndisPacketField]: number } = Object.freeze(
  Object.fromEntries(
    PACKET_FIELDS.filter((f) => f !== "reserved").map((f) => [f, rndisFieldAt(LAYOUT.packet, f)]),
  ) as { [K in RndisPacketField]: number },
);

// PACKET, once per frame both ways: its fields as constant offsets.
const PKT_DATA_OFFSET = RNDIS_PACKET_AT.dataOffset;
const PKT_DATA_LEN = RNDIS_PACKET_AT.dataLen;
const PKT_OOB_DATA_OFFSET = RNDIS_PACKET_AT.oobDataOffset;
const PKT_OOB_DATA_LEN = RNDIS_PACKET_AT.oobDataLen;
const PKT_NUM_OOB = RNDIS_PACKET_AT.numOobDataElements;
const PKT_PPI_OFFSET = RNDIS_PACKET_AT.perPktInfoOffset;
const PKT_PPI_LEN = RNDIS_PACKET_AT.perPktInfoLen;
const PKT_VC_HANDLE = RNDIS_PACKET_AT.vcHandle;

/** A u32 field of the rndis_packet in `buf` (a message that {@link checkRndisPacket} accepted). */
export function rndisPacketField(buf: Uint8Array, field: RndisPacketField): number {
  return readU32(buf, RNDIS_PACKET_AT[field]);
}

/** Reads a layout's fields into `out` (at 8 + 4 i); `clamp` reads a field past it as zero. */
function readFields(
  buf: Uint8Array,
  layout: RndisLayout,
  out: Record<string, unknown>,
  clamp: number = buf.length,
): Record<string, unknown> {
  for (let i = 0; i < layout.fields.length; i++) {
    const at = RNDIS_HEADER_SIZE + i * 4;
    out[layout.fields[i]!] = at + 4 > clamp ? 0 : u32OrZero(buf, at);
  }
  return out;
}

/** A message of `layout` with `values` (missing fields zero) and `extra` zeroed bytes after the struct. */
function encodeFixed(layout: RndisLayout, values: Readonly<Record<string, number>>, extra = 0): Uint8Array {
  const buf = new Uint8Array(RNDIS_HEADER_SIZE + bodySize(layout) + extra);
  writeU32(buf, 0, layout.type);
  writeU32(buf, 4, buf.length);
  for (let i = 0; i < layout.fields.length; i++) {
    const name = layout.fields[i]!;
    writeU32(buf, RNDIS_HEADER_SIZE + i * 4, checkU32(name, values[name] ?? 0));
  }
  return buf;
}

/** One PPI type rndis_filter_receive_data asks rndis_get_ppi for, with the payload size it needs. */
export interface RndisPpiLookupType {
  readonly type: number;
  readonly internal: boolean;
  /** sizeof the struct the caller reads at the payload (the ppi_size argument; 505e3f00c3f3). */
  readonly size: number;
}

/**
 * The lookups rndis_filter_receive_data makes, in its order: VLAN (ndis_pkt_8021q_info), checksum
 * (ndis_tcp_ip_checksum_info), hash (u32), then the internal RNDIS_PKTINFO_ID (rndis_pktinfo_id); each
 * payload is 4 bytes. The order matters: each lookup copies the area again (0ba35fe91ce3).
 */
export const RNDIS_PPI_LOOKUPS: readonly RndisPpiLookupType[] = Object.freeze([
  Object.freeze({ type: NDIS_PPI_TYPE.IEEE_8021Q, internal: false, size: 4 }),
  Object.freeze({ type: NDIS_PPI_TYPE.TCPIP_CHKSUM, internal: false, size: 4 }),
  Object.freeze({ type: NDIS_PPI_TYPE.NBL_HASH_VALUE, internal: false, size: 4 }),
  Object.freeze({ type: RNDIS_PKTINFO_ID, internal: true, size: 4 }),
]);

export interface RndisPpi {
  readonly type: number;
  readonly internal: boolean;
  /** Offset of the entry's payload from the start of the message buffer. */
  readonly dataStart: number;
  readonly data: Uint8Array;
}

/**
 * A malformed per-packet-info area. Kernel behaviour differs by kind: for "ppi-offset-invalid" and
 * "ppi-len-invalid" rndis_get_ppi returns NULL (the packet goes up without PPIs). For the entry-level
 * kinds the kernel's loop hits `continue` without advancing, so the NAPI poll spins (a host-triggered
 * soft lockup); "ppi-entry-truncated" reads stale bytes past the copied area. The model stops the walk,
 * keeps the entries found before the bad one, and reports the issue.
 */
export type RndisPpiIssueReason =
  | "ppi-offset-invalid"
  | "ppi-len-invalid"
  | "ppi-entry-truncated"
  | "ppi-entry-size-invalid"
  | "ppi-entry-offset-invalid"
  | "ppi-entry-too-small";

export interface RndisPpiIssue {
  readonly reason: RndisPpiIssueReason;
  /** Offset in the message buffer where the problem was found. */
  readonly at: number;
  readonly kernelHangs: boolean;
}

export type RndisMessage =
  | {
      readonly kind: "packet";
      readonly msgLen: number;
      /** Counted from the start of struct rndis_packet (byte 8), as on the wire. */
      readonly dataOffset: number;
      readonly dataLen: number;
      readonly oobDataOffset: number;
      readonly oobDataLen: number;
      readonly numOobDataElements: number;
      readonly perPktInfoOffset: number;
      readonly perPktInfoLen: number;
      readonly vcHandle: number;
      /** Absolute offset of the frame in the message buffer: 8 + dataOffset. */
      readonly dataStart: number;
      /** A view of the frame inside the (private) input buffer. */
      readonly data: Uint8Array;
      readonly ppis: readonly RndisPpi[];
      readonly ppiIssue: RndisPpiIssue | null;
    }
  | {
      readonly kind: "init";
      readonly msgLen: number;
      readonly requestId: number;
      readonly majorVersion: number;
      readonly minorVersion: number;
      readonly maxTransferSize: number;
    }
  | {
      readonly kind: "init-complete";
      readonly msgLen: number;
      readonly requestId: number;
      readonly status: number;
      readonly majorVersion: number;
      readonly minorVersion: number;
      readonly deviceFlags: number;
      readonly medium: number;
      readonly maxPacketsPerMessage: number;
      readonly maxTransferSize: number;
      readonly packetAlignmentFactor: number;
      readonly afListOffset: number;
      readonly afListSize: number;
      /** msg_len > RNDIS_MAX_RESPONSE_LEN: the kernel drops the body and reports BUFFER_OVERFLOW. */
      readonly responseOverflow: boolean;
    }
  | { readonly kind: "halt"; readonly msgLen: number; readonly requestId: number }
  | {
      readonly kind: "query" | "set";
      readonly msgLen: number;
      readonly requestId: number;
      readonly oid: number;
      readonly infoBufLen: number;
      readonly infoBufOffset: number;
      readonly deviceVcHandle: number;
      /** The information buffer when offset/length are within the message; null otherwise. */
      readonly info: Uint8Array | null;
    }
  | {
      readonly kind: "query-complete";
      readonly msgLen: number;
      readonly requestId: number;
      readonly status: number;
      readonly infoBufLen: number;
      readonly infoBufOffset: number;
      /** Validated as rndis_filter_query_device does; null when the host's offsets do not fit. */
      readonly info: Uint8Array | null;
      readonly responseOverflow: boolean;
    }
  | {
      readonly kind: "set-complete";
      readonly msgLen: number;
      readonly requestId: number;
      readonly status: number;
      readonly responseOverflow: boolean;
    }
  | { readonly kind: "reset"; readonly msgLen: number; readonly reserved: number }
  | {
      readonly kind: "reset-complete";
      readonly msgLen: number;
      readonly status: number;
      readonly addressingReset: number;
    }
  | {
      readonly kind: "indicate-status";
      readonly msgLen: number;
      readonly status: number;
      readonly statusBufLen: number;
      readonly statusBufOffset: number;
      /**
       * Validated as netvsc_linkstatus_callback does, against the range length rather than msg_len
       * (pre-Fe vSwitches left the status buffer out of msg_len); null when it does not fit.
       */
      readonly statusBuffer: Uint8Array | null;
    }
  | { readonly kind: "keepalive"; readonly msgLen: number; readonly requestId: number }
  | {
      readonly kind: "keepalive-complete";
      readonly msgLen: number;
      readonly requestId: number;
      readonly status: number;
    }
  | { readonly kind: "unknown"; readonly msgType: number; readonly msgLen: number };

export type RndisMessageKind = RndisMessage["kind"];

export type RndisRejectReason =
  | "rndis-buflen-too-small"
  | "rndis-msg-len-invalid"
  | "rndis-packet-too-small"
  | "rndis-data-offset-invalid"
  | "rndis-data-overflow"
  | "rndis-response-too-small"
  | "rndis-indicate-too-small"
  | "rndis-message-too-short"
  | "rndis-unhandled-type";

type Rejection = { readonly ok: false; readonly error: NetvscError<RndisRejectReason> };

function tooShort(kind: string, msgLen: number, need: number): Rejection {
  return reject("EINVAL", "rndis-message-too-short", `rndis ${kind} msg_len ${msgLen} < ${need}`);
}

/**
 * Decode and validate one RNDIS message from a private copy of one transfer-page range (or of a
 * guest-sent message, for the host side). `buf.length` plays the kernel's `buflen`: the header rule is
 * 8 <= msg_len <= buflen, and the data/PPI bounds of a PACKET are checked against buflen as
 * rndis_filter_receive_data does (msg_len itself is not used there). Never throws.
 */
export function decodeRndisMessage(buf: Uint8Array): NetvscResult<RndisMessage, RndisRejectReason> {
  const buflen = buf.length;
  if (buflen < RNDIS_HEADER_SIZE) {
    return reject("EINVAL", "rndis-buflen-too-small", `Invalid rndis_msg (buflen: ${buflen})`);
  }
  const msgType = readU32(buf, 0);
  const msgLen = readU32(buf, 4);
  if (msgLen < RNDIS_HEADER_SIZE || buflen < msgLen) {
    return reject(
      "EINVAL",
      "rndis-msg-len-invalid",
      `Invalid rndis_msg (buflen: ${buflen}, msg_len: ${msgLen})`,
    );
  }
  const body = msgLen - RNDIS_HEADER_SIZE;
  const T = RNDIS_MSG_TYPE;
  switch (msgType) {
    case T.PACKET:
      return decodePacket(buf, msgLen);
    case T.INIT_C:
    case T.QUERY_C:
    case T.SET_C: {
      // rndis_filter_receive_response: the request id must be inside the message.
      if (body < 4) {
        return reject("EINVAL", "rndis-response-too-small", `rndis msg_len too small: ${msgLen}`);
      }
      return ok(decodeResponse(buf, msgType, msgLen));
    }
    case T.INDICATE: {
      if (body < BODY.indicate) {
        return reject(
          "EINVAL",
          "rndis-indicate-too-small",
          `invalid rndis_indicate_status packet, len: ${msgLen}`,
        );
      }
      const m = readFields(buf, LAYOUT.indicate, { kind: "indicate-status", msgLen });
      const statusBufLen = m.statusBufLen as number;
      const statusBufOffset = m.statusBufOffset as number;
      const room = buflen - RNDIS_HEADER_SIZE;
      const fits =
        statusBufOffset >= BODY.indicate && room >= statusBufOffset && room - statusBufOffset >= statusBufLen;
      const start = RNDIS_HEADER_SIZE + statusBufOffset;
      m.statusBuffer = fits ? buf.subarray(start, start + statusBufLen) : null;
      return ok(m as RndisMessage);
    }
    case T.INIT:
      return fixedRequest(buf, msgLen, "init", LAYOUT.init, "init");
    case T.HALT:
      return fixedRequest(buf, msgLen, "halt", LAYOUT.halt, "request");
    case T.KEEPALIVE:
      return fixedRequest(buf, msgLen, "keepalive", LAYOUT.keepalive, "request");
    case T.RESET:
      return fixedRequest(buf, msgLen, "reset", LAYOUT.reset, "reset");
    case T.RESET_C:
      return fixedRequest(buf, msgLen, "reset-complete", LAYOUT.resetComplete, "reset-complete");
    case T.KEEPALIVE_C:
      return fixedRequest(buf, msgLen, "keepalive-complete", LAYOUT.keepaliveComplete, "keepalive-complete");
    case T.QUERY:
    case T.SET: {
      const isQuery = msgType === T.QUERY;
      const r = fixedRequest(
        buf,
        msgLen,
        isQuery ? "query" : "set",
        isQuery ? LAYOUT.query : LAYOUT.set,
        "query/set",
      );
      if (!r.ok) return r;
      const m = r.value as unknown as Record<string, unknown>;
      const infoBufLen = m.infoBufLen as number;
      const infoBufOffset = m.infoBufOffset as number;
      // The host side applies the same shape of check the guest applies to a query completion.
      const fits = infoBufOffset >= BODY.query && body >= infoBufOffset && body - infoBufOffset >= infoBufLen;
      const start = RNDIS_HEADER_SIZE + infoBufOffset;
      m.info = fits ? buf.subarray(start, start + infoBufLen) : null;
      return r;
    }
    default:
      return ok({ kind: "unknown", msgType, msgLen });
  }
}

/** A request (or non-response completion) whose whole struct must lie inside msg_len. */
function fixedRequest(
  buf: Uint8Array,
  msgLen: number,
  kind: RndisMessageKind,
  layout: RndisLayout,
  label: string,
): NetvscResult<RndisMessage, RndisRejectReason> {
  const need = bodySize(layout);
  if (msgLen - RNDIS_HEADER_SIZE < need) return tooShort(label, msgLen, RNDIS_HEADER_SIZE + need);
  return ok(readFields(buf, layout, { kind, msgLen }) as RndisMessage);
}

/** The kinds rndis_filter_receive dispatches; everything else is "unhandled rndis message" -> FAIL. */
const HOST_TO_GUEST_KINDS: ReadonlySet<RndisMessageKind> = new Set<RndisMessageKind>([
  "packet",
  "init-complete",
  "query-complete",
  "set-complete",
  "indicate-status",
]);

/** decodeRndisMessage plus rndis_filter_receive's dispatch: the guest's view of a host message. */
export function parseRndisFromHost(buf: Uint8Array): NetvscResult<RndisMessage, RndisRejectReason> {
  const r = decodeRndisMessage(buf);
  if (r.ok && !HOST_TO_GUEST_KINDS.has(r.value.kind)) {
    return reject(
      "EINVAL",
      "rndis-unhandled-type",
      `unhandled rndis message (type ${readU32(buf, 0)} len ${r.value.msgLen})`,
    );
  }
  return r;
}

/**
 * The checks decodeRndisMessage makes of a PACKET (the header rule, then the data bounds against buflen
 * as rndis_filter_receive_data does), without building the message: null when it would decode, else
 * the reason. For a receiver that then reads what it needs with {@link rndisPacketField}; the data is
 * buf[8 + dataOffset, + dataLen).
 */
export function checkRndisPacket(buf: Uint8Array): RndisRejectReason | null {
  const buflen = buf.length;
  if (buflen < RNDIS_HEADER_SIZE) return "rndis-buflen-too-small";
  const msgLen = readU32(buf, 4);
  if (msgLen < RNDIS_HEADER_SIZE || buflen < msgLen) return "rndis-msg-len-invalid";
  if (readU32(buf, 0) !== RNDIS_MSG_TYPE.PACKET) return "rndis-unhandled-type";
  return packetBoundsProblem(buf);
}

function packetBoundsProblem(buf: Uint8Array): RndisRejectReason | null {
  const buflen = buf.length;
  if (buflen < RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE) return "rndis-packet-too-small";
  const dataOffset = readU32(buf, PKT_DATA_OFFSET);
  // rpkt_len: the bytes from the start of struct rndis_packet to the end of the range.
  const rpktLen = buflen - RNDIS_HEADER_SIZE;
  if (dataOffset >= rpktLen) return "rndis-data-offset-invalid";
  if (rpktLen - dataOffset < readU32(buf, PKT_DATA_LEN)) return "rndis-data-overflow";
  return null;
}

function decodePacket(buf: Uint8Array, msgLen: number): NetvscResult<RndisMessage, RndisRejectReason> {
  const buflen = buf.length;
  const dataOffset = readU32(buf, PKT_DATA_OFFSET);
  const dataLen = readU32(buf, PKT_DATA_LEN);
  const rpktLen = buflen - RNDIS_HEADER_SIZE;
  const problem = packetBoundsProblem(buf);
  // The kernel's messages, built only on failure.
  if (problem === "rndis-packet-too-small")
    return reject("EINVAL", problem, `invalid rndis pkt, data_buflen too small: ${buflen}`);
  if (problem === "rndis-data-offset-invalid")
    return reject("EINVAL", problem, `invalid rndis packet offset: ${dataOffset}`);
  if (problem !== null) {
    return reject(
      "EINVAL",
      "rndis-data-overflow",
      `rndis message buffer overflow detected (got ${rpktLen - dataOffset}, min ${dataLen})`,
    );
  }
  const perPktInfoOffset = readU32(buf, PKT_PPI_OFFSET);
  const perPktInfoLen = readU32(buf, PKT_PPI_LEN);
  const { ppis, issue } = walkPpis(buf, rpktLen, perPktInfoOffset, perPktInfoLen);
  const dataStart = RNDIS_HEADER_SIZE + dataOffset;
  return ok({
    kind: "packet",
    msgLen,
    dataOffset,
    dataLen,
    oobDataOffset: readU32(buf, PKT_OOB_DATA_OFFSET),
    oobDataLen: readU32(buf, PKT_OOB_DATA_LEN),
    numOobDataElements: readU32(buf, PKT_NUM_OOB),
    perPktInfoOffset,
    perPktInfoLen,
    vcHandle: readU32(buf, PKT_VC_HANDLE),
    dataStart,
    data: buf.subarray(dataStart, dataStart + dataLen),
    ppis,
    ppiIssue: issue,
  });
}

type PpiWalk = { readonly ppis: readonly RndisPpi[]; readonly issue: RndisPpiIssue | null };

const NO_PPIS: PpiWalk = Object.freeze({ ppis: Object.freeze([]), issue: null });
const PPI_OFFSET_INVALID: PpiWalk = Object.freeze({
  ppis: Object.freeze([]),
  issue: Object.freeze({ reason: "ppi-offset-invalid", at: PKT_PPI_OFFSET, kernelHangs: false }),
});
const PPI_LEN_INVALID: PpiWalk = Object.freeze({
  ppis: Object.freeze([]),
  issue: Object.freeze({ reason: "ppi-len-invalid", at: PKT_PPI_LEN, kernelHangs: false }),
});

/**
 * rndis_get_ppi's checks of the area itself, made before it copies anything: an offset inside
 * rndis_packet or past the range (44144185951a), a length below one entry header (505e3f00c3f3) or past
 * the range. Either way the lookup returns NULL and the packet goes up without PPIs. `offset` 0 (no
 * PPIs) is the caller's: the kernel returns before these checks.
 */
export function rndisPpiAreaIssue(
  offset: number,
  len: number,
  rpktLen: number,
): "ppi-offset-invalid" | "ppi-len-invalid" | null {
  if (offset < RNDIS_PACKET_SIZE || offset > rpktLen) return "ppi-offset-invalid";
  if (len < RNDIS_PPI_HEADER_SIZE || len > rpktLen - offset) return "ppi-len-invalid";
  return null;
}

/**
 * The checks rndis_get_ppi's loop makes of the entry at `pos` with `remaining` bytes of the area left:
 * a header that does not fit (the kernel reads it from the bytes past the area), a size past the area,
 * a payload offset at or past the size (44144185951a; the kernel's `continue` spins on these two).
 */
function ppiEntryIssue(buf: Uint8Array, pos: number, remaining: number): RndisPpiIssueReason | null {
  if (remaining < RNDIS_PPI_HEADER_SIZE) return "ppi-entry-truncated";
  const size = readU32(buf, pos);
  if (size > remaining) return "ppi-entry-size-invalid";
  if (readU32(buf, pos + 8) >= size) return "ppi-entry-offset-invalid";
  return null;
}

/** Whether the entry at `pos` is of `type` (type:31 the low bits, internal:1 the top bit). */
function ppiIs(buf: Uint8Array, pos: number, type: number, internal: boolean): boolean {
  const word = readU32(buf, pos + 4);
  return (word & 0x7fff_ffff) === type && word >>> 31 === (internal ? 1 : 0);
}

/** Where {@link findRndisPpi} stopped on a malformed entry (reused by the caller: no allocation). */
export class RndisPpiLookup {
  /** The malformed entry's problem, or null when the lookup ended normally. */
  issue: RndisPpiIssueReason | null = null;
  /** Offset in the buffer of the entry the lookup stopped at. */
  at = 0;
  /** Whether the kernel's loop spins there for ever (a `continue` that does not advance). */
  kernelHangs = false;
}

/**
 * One rndis_get_ppi walk for `want` over the area buf[start, start + len) (already copied and checked
 * with {@link rndisPpiAreaIssue}): entries are checked only as far as the walk goes, and the first entry
 * of the type ends it. Returns the payload's offset in `buf`, or -1: not found, or an entry the kernel
 * would stop at, described in `out` (the kernel's loop spins, or reads past the area; the model stops).
 */
export function findRndisPpi(
  buf: Uint8Array,
  start: number,
  len: number,
  want: RndisPpiLookupType,
  out: RndisPpiLookup,
): number {
  out.issue = null;
  let pos = start;
  let remaining = len;
  while (remaining > 0) {
    let issue = ppiEntryIssue(buf, pos, remaining);
    const size = issue === null ? readU32(buf, pos) : 0;
    if (issue === null && ppiIs(buf, pos, want.type, want.internal)) {
      const payload = readU32(buf, pos + 8);
      // 505e3f00c3f3: the matching entry must hold the struct the caller reads (else `continue`).
      if (size - payload >= want.size) return pos + payload;
      issue = "ppi-entry-too-small";
    }
    if (issue !== null) {
      out.issue = issue;
      out.at = pos;
      out.kernelHangs = issue !== "ppi-entry-truncated";
      return -1;
    }
    remaining -= size;
    pos += size;
  }
  return -1;
}

/**
 * Mirrors the checks of rndis_get_ppi over the whole area at once (for a decoder that lists every
 * entry; the guest's receive path makes the kernel's four lookups instead).
 */
function walkPpis(buf: Uint8Array, rpktLen: number, offset: number, len: number): PpiWalk {
  // The area-level outcomes are the same objects every time (a packet without PPIs is the common case).
  if (offset === 0) return NO_PPIS;
  const area = rndisPpiAreaIssue(offset, len, rpktLen);
  if (area === "ppi-offset-invalid") return PPI_OFFSET_INVALID;
  if (area === "ppi-len-invalid") return PPI_LEN_INVALID;
  const ppis: RndisPpi[] = [];
  let pos = RNDIS_HEADER_SIZE + offset;
  let remaining = len;
  while (remaining > 0) {
    let reason = ppiEntryIssue(buf, pos, remaining);
    const size = reason === null ? readU32(buf, pos) : 0;
    const ppiOffset = reason === null ? readU32(buf, pos + 8) : 0;
    const typeWord = reason === null ? readU32(buf, pos + 4) : 0;
    const type = typeWord & 0x7fff_ffff;
    const internal = typeWord >>> 31 === 1;
    if (reason === null) {
      const looked = RNDIS_PPI_LOOKUPS.find((p) => p.type === type && p.internal === internal);
      if (looked !== undefined && size - ppiOffset < looked.size) reason = "ppi-entry-too-small";
    }
    if (reason !== null) {
      return { ppis, issue: { reason, at: pos, kernelHangs: reason !== "ppi-entry-truncated" } };
    }
    const dataStart = pos + ppiOffset;
    ppis.push({ type, internal, dataStart, data: buf.subarray(dataStart, pos + size) });
    remaining -= size;
    pos += size;
  }
  return { ppis, issue: null };
}

/** The first PPI of a type, as rndis_get_ppi returns it. */
export function findPpi(ppis: readonly RndisPpi[], type: number, internal = false): RndisPpi | undefined {
  return ppis.find((p) => p.type === type && p.internal === internal);
}

/** The three completions rndis_filter_receive_response copies into a waiting request. */
const RESPONSE_LAYOUT: ReadonlyMap<number, readonly [RndisMessageKind, RndisLayout]> = new Map([
  [RNDIS_MSG_TYPE.INIT_C, ["init-complete", LAYOUT.initComplete]],
  [RNDIS_MSG_TYPE.QUERY_C, ["query-complete", LAYOUT.queryComplete]],
  [RNDIS_MSG_TYPE.SET_C, ["set-complete", LAYOUT.setComplete]],
] as const);

function decodeResponse(buf: Uint8Array, msgType: number, msgLen: number): RndisMessage {
  // The kernel copies msg_len bytes into a zeroed response_msg; fields past msg_len read as zero.
  // A response longer than the request's buffer is not copied at all: only status is set (the request
  // id, read before the copy, is still the host's).
  const overflow = msgLen > RNDIS_MAX_RESPONSE_LEN;
  const [kind, layout] = RESPONSE_LAYOUT.get(msgType) ?? ["init-complete", LAYOUT.initComplete];
  const m = readFields(buf, layout, { kind, msgLen }, overflow ? 0 : msgLen);
  m.requestId = readU32(buf, rndisFieldAt(layout, "requestId"));
  if (overflow) m.status = RNDIS_STATUS.BUFFER_OVERFLOW;
  if (kind === "query-complete") {
    const infoBufLen = m.infoBufLen as number;
    const infoBufOffset = m.infoBufOffset as number;
    const body = msgLen - RNDIS_HEADER_SIZE;
    // rndis_filter_query_device: whole struct present, offset past the struct, buffer inside msg_len.
    const fits =
      !overflow &&
      body >= BODY.queryComplete &&
      infoBufOffset >= BODY.queryComplete &&
      body >= infoBufOffset &&
      body - infoBufOffset >= infoBufLen;
    const start = RNDIS_HEADER_SIZE + infoBufOffset;
    m.info = fits ? buf.subarray(start, start + infoBufLen) : null;
  }
  m.responseOverflow = overflow;
  return m as RndisMessage;
}

// ---------------------------------------------------------------------------------------------
// Encoders. Every byte is written on purpose: buffers start zeroed and reserved fields stay zero (I5).

export interface RndisPpiInput {
  readonly type: number;
  readonly internal?: boolean;
  readonly data: Uint8Array;
}

/** Bytes of header + rndis_packet + PPIs: the `rmsg_size` netvsc_send uses for partial copies. */
export function rndisPacketHeaderSize(ppis: readonly RndisPpiInput[] = []): number {
  let n = RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE;
  for (const p of ppis) n += RNDIS_PPI_HEADER_SIZE + p.data.length;
  return n;
}

/**
 * An RNDIS data message as netvsc_xmit builds it: header, rndis_packet with per_pkt_info_offset = 36,
 * PPIs of size 12 + payload with ppi_offset 12, then the frame; data_offset = 36 + PPI bytes.
 */
export function encodeRndisPacket(input: {
  readonly data: Uint8Array;
  readonly ppis?: readonly RndisPpiInput[];
}): Uint8Array {
  const ppis = input.ppis ?? [];
  const headerSize = rndisPacketHeaderSize(ppis);
  const ppiLen = headerSize - RNDIS_HEADER_SIZE - RNDIS_PACKET_SIZE;
  const buf = new Uint8Array(headerSize + input.data.length);
  writeU32(buf, 0, RNDIS_MSG_TYPE.PACKET);
  writeU32(buf, 4, checkU32("msg_len", buf.length));
  writeU32(buf, PKT_DATA_OFFSET, RNDIS_PACKET_SIZE + ppiLen);
  writeU32(buf, PKT_DATA_LEN, input.data.length);
  if (ppis.length > 0) {
    writeU32(buf, PKT_PPI_OFFSET, RNDIS_PACKET_SIZE);
    writeU32(buf, PKT_PPI_LEN, ppiLen);
  }
  let pos = RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE;
  for (const p of ppis) {
    if (!Number.isInteger(p.type) || p.type < 0 || p.type > 0x7fff_ffff)
      throw new RangeError(`PPI type ${p.type}`);
    writeU32(buf, pos, RNDIS_PPI_HEADER_SIZE + p.data.length);
    writeU32(buf, pos + 4, (p.type | (p.internal === true ? 0x8000_0000 : 0)) >>> 0);
    writeU32(buf, pos + 8, RNDIS_PPI_HEADER_SIZE);
    buf.set(p.data, pos + RNDIS_PPI_HEADER_SIZE);
    pos += RNDIS_PPI_HEADER_SIZE + p.data.length;
  }
  buf.set(input.data, pos);
  return buf;
}

/**
 * A PPI-less data header (44 bytes) written into `buf` at `at` for a frame of `frameLen` bytes that
 * follows it: msg_len, data_offset 36, data_len, and `perPktInfoOffset` (netvsc_xmit sets 36 although it
 * adds no PPIs; a host leaves 0). Every other field is zeroed. For callers that reuse one buffer.
 */
export function writeRndisDataHeader(
  buf: Uint8Array,
  at: number,
  frameLen: number,
  perPktInfoOffset = 0,
): void {
  // 44 bytes: a loop is cheaper than a fill call at this size.
  for (let i = at; i < at + RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE; i++) buf[i] = 0;
  writeU32(buf, at, RNDIS_MSG_TYPE.PACKET);
  writeU32(buf, at + 4, checkU32("msg_len", RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE + frameLen));
  writeU32(buf, at + PKT_DATA_OFFSET, RNDIS_PACKET_SIZE);
  writeU32(buf, at + PKT_DATA_LEN, frameLen);
  writeU32(buf, at + PKT_PPI_OFFSET, perPktInfoOffset);
}

/** rndis_filter_init_device's INIT: version 1.0, max_xfer_size 0x4000 unless given. */
export function encodeRndisInit(input: {
  readonly requestId: number;
  readonly majorVersion?: number;
  readonly minorVersion?: number;
  readonly maxTransferSize?: number;
}): Uint8Array {
  return encodeFixed(LAYOUT.init, {
    requestId: input.requestId,
    majorVersion: input.majorVersion ?? RNDIS_MAJOR_VERSION,
    minorVersion: input.minorVersion ?? RNDIS_MINOR_VERSION,
    maxTransferSize: input.maxTransferSize ?? RNDIS_INIT_MAX_XFER_SIZE,
  });
}

export interface RndisInitCompleteInput {
  readonly requestId: number;
  readonly status: number;
  readonly majorVersion?: number;
  readonly minorVersion?: number;
  readonly deviceFlags?: number;
  readonly medium?: number;
  readonly maxPacketsPerMessage: number;
  readonly maxTransferSize: number;
  readonly packetAlignmentFactor: number;
  readonly afListOffset?: number;
  readonly afListSize?: number;
}

/** The host's INIT_CMPLT (for the simulated netvsp and tests). */
export function encodeRndisInitComplete(input: RndisInitCompleteInput): Uint8Array {
  return encodeFixed(LAYOUT.initComplete, {
    ...input,
    majorVersion: input.majorVersion ?? RNDIS_MAJOR_VERSION,
    minorVersion: input.minorVersion ?? RNDIS_MINOR_VERSION,
  });
}

function encodeRequestWithInfo(
  layout: RndisLayout,
  input: { readonly requestId: number; readonly oid: number; readonly info?: Uint8Array },
): Uint8Array {
  const info = input.info ?? new Uint8Array(0);
  // info_buf_offset = sizeof(struct rndis_query_request) / sizeof(struct rndis_set_request) = 20,
  // set even when there is no buffer, as rndis_filter_query_device does.
  const buf = encodeFixed(
    layout,
    { requestId: input.requestId, oid: input.oid, infoBufLen: info.length, infoBufOffset: bodySize(layout) },
    info.length,
  );
  buf.set(info, RNDIS_HEADER_SIZE + bodySize(layout));
  return buf;
}

/** A QUERY request (rndis_filter_query_device). */
export function encodeRndisQuery(input: {
  readonly requestId: number;
  readonly oid: number;
  readonly info?: Uint8Array;
}): Uint8Array {
  return encodeRequestWithInfo(LAYOUT.query, input);
}

/** A SET request (rndis_filter_set_packet_filter and friends). */
export function encodeRndisSet(input: {
  readonly requestId: number;
  readonly oid: number;
  readonly info: Uint8Array;
}): Uint8Array {
  return encodeRequestWithInfo(LAYOUT.set, input);
}

/** A message whose optional trailing buffer follows its struct (offset = struct size, or 0 when empty). */
function encodeWithBuffer(
  layout: RndisLayout,
  values: Readonly<Record<string, number>>,
  lenField: string,
  offsetField: string,
  extra: Uint8Array,
): Uint8Array {
  const body = bodySize(layout);
  const buf = encodeFixed(
    layout,
    { ...values, [lenField]: extra.length, [offsetField]: extra.length > 0 ? body : 0 },
    extra.length,
  );
  buf.set(extra, RNDIS_HEADER_SIZE + body);
  return buf;
}

/** The host's QUERY_CMPLT; the information buffer follows the 16-byte struct (offset 16). */
export function encodeRndisQueryComplete(input: {
  readonly requestId: number;
  readonly status: number;
  readonly info?: Uint8Array;
}): Uint8Array {
  return encodeWithBuffer(
    LAYOUT.queryComplete,
    { requestId: input.requestId, status: input.status },
    "infoBufLen",
    "infoBufOffset",
    input.info ?? new Uint8Array(0),
  );
}

/** The host's SET_CMPLT. */
export function encodeRndisSetComplete(input: {
  readonly requestId: number;
  readonly status: number;
}): Uint8Array {
  return encodeFixed(LAYOUT.setComplete, { requestId: input.requestId, status: input.status });
}

/** The host's INDICATE_STATUS; a status buffer, if any, follows the 12-byte struct (offset 12). */
export function encodeRndisIndicateStatus(input: {
  readonly status: number;
  readonly statusBuffer?: Uint8Array;
}): Uint8Array {
  return encodeWithBuffer(
    LAYOUT.indicate,
    { status: input.status },
    "statusBufLen",
    "statusBufOffset",
    input.statusBuffer ?? new Uint8Array(0),
  );
}

/** rndis_filter_halt_device's HALT. */
export function encodeRndisHalt(input: { readonly requestId: number }): Uint8Array {
  return encodeFixed(LAYOUT.halt, { requestId: input.requestId });
}
