// RNDIS: the network messages inside NVSP SEND_RNDIS_PKT. Layouts mirror include/linux/rndis.h and the
// rndis_* structs in drivers/net/hyperv/hyperv_net.h; validation mirrors rndis_filter_receive,
// rndis_filter_receive_data, rndis_get_ppi, rndis_filter_receive_response, rndis_filter_query_device and
// netvsc_linkstatus_callback after the 2020-21 hardening (44144185951a, 0ba35fe91ce3 and follow-ups).

import { type NetvscError, type NetvscResult, ok, reject } from "./errors.js";
import { checkU32, u32OrZero, view } from "./wire.js";

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
  readonly OFFLOAD: 0xa7;
} = { DEFAULT: 0x80, RSS_CAPABILITIES: 0x88, OFFLOAD: 0xa7 } as const;

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

/** Body sizes (after the 8-byte header) of the request/response structs. */
const BODY = {
  init: 16,
  initComplete: 44,
  halt: 4,
  query: 20,
  queryComplete: 16,
  set: 20,
  setComplete: 8,
  reset: 4,
  resetComplete: 8,
  indicate: 12,
  keepalive: 4,
  keepaliveComplete: 8,
} as const;

/** The PPI types rndis_filter_receive_data looks up, with the payload size each needs (all 4 bytes). */
const LOOKED_UP_PPIS: readonly {
  readonly type: number;
  readonly internal: boolean;
  readonly size: number;
}[] = [
  { type: NDIS_PPI_TYPE.IEEE_8021Q, internal: false, size: 4 },
  { type: NDIS_PPI_TYPE.TCPIP_CHKSUM, internal: false, size: 4 },
  { type: NDIS_PPI_TYPE.NBL_HASH_VALUE, internal: false, size: 4 },
  { type: RNDIS_PKTINFO_ID, internal: true, size: 4 },
];

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
  const dv = view(buf);
  const msgType = dv.getUint32(0, true);
  const msgLen = dv.getUint32(4, true);
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
      return decodePacket(buf, dv, msgLen);
    case T.INIT_C:
    case T.QUERY_C:
    case T.SET_C: {
      // rndis_filter_receive_response: the request id must be inside the message.
      if (body < 4) {
        return reject("EINVAL", "rndis-response-too-small", `rndis msg_len too small: ${msgLen}`);
      }
      return ok(decodeResponse(buf, dv, msgType, msgLen));
    }
    case T.INDICATE: {
      if (body < BODY.indicate) {
        return reject(
          "EINVAL",
          "rndis-indicate-too-small",
          `invalid rndis_indicate_status packet, len: ${msgLen}`,
        );
      }
      const status = dv.getUint32(8, true);
      const statusBufLen = dv.getUint32(12, true);
      const statusBufOffset = dv.getUint32(16, true);
      const room = buflen - RNDIS_HEADER_SIZE;
      const fits =
        statusBufOffset >= BODY.indicate && room >= statusBufOffset && room - statusBufOffset >= statusBufLen;
      const start = RNDIS_HEADER_SIZE + statusBufOffset;
      return ok({
        kind: "indicate-status",
        msgLen,
        status,
        statusBufLen,
        statusBufOffset,
        statusBuffer: fits ? buf.subarray(start, start + statusBufLen) : null,
      });
    }
    case T.INIT:
      if (body < BODY.init) return tooShort("init", msgLen, RNDIS_HEADER_SIZE + BODY.init);
      return ok({
        kind: "init",
        msgLen,
        requestId: dv.getUint32(8, true),
        majorVersion: dv.getUint32(12, true),
        minorVersion: dv.getUint32(16, true),
        maxTransferSize: dv.getUint32(20, true),
      });
    case T.HALT:
    case T.KEEPALIVE:
      if (body < 4) return tooShort("request", msgLen, RNDIS_HEADER_SIZE + 4);
      return ok({
        kind: msgType === T.HALT ? "halt" : "keepalive",
        msgLen,
        requestId: dv.getUint32(8, true),
      });
    case T.RESET:
      if (body < BODY.reset) return tooShort("reset", msgLen, RNDIS_HEADER_SIZE + BODY.reset);
      return ok({ kind: "reset", msgLen, reserved: dv.getUint32(8, true) });
    case T.RESET_C:
      if (body < BODY.resetComplete) return tooShort("reset-complete", msgLen, RNDIS_HEADER_SIZE + 8);
      return ok({
        kind: "reset-complete",
        msgLen,
        status: dv.getUint32(8, true),
        addressingReset: dv.getUint32(12, true),
      });
    case T.KEEPALIVE_C:
      if (body < BODY.keepaliveComplete) return tooShort("keepalive-complete", msgLen, RNDIS_HEADER_SIZE + 8);
      return ok({
        kind: "keepalive-complete",
        msgLen,
        requestId: dv.getUint32(8, true),
        status: dv.getUint32(12, true),
      });
    case T.QUERY:
    case T.SET: {
      if (body < BODY.query) return tooShort("query/set", msgLen, RNDIS_HEADER_SIZE + BODY.query);
      const infoBufLen = dv.getUint32(16, true);
      const infoBufOffset = dv.getUint32(20, true);
      // The host side applies the same shape of check the guest applies to a query completion.
      const fits = infoBufOffset >= BODY.query && body >= infoBufOffset && body - infoBufOffset >= infoBufLen;
      const start = RNDIS_HEADER_SIZE + infoBufOffset;
      return ok({
        kind: msgType === T.QUERY ? "query" : "set",
        msgLen,
        requestId: dv.getUint32(8, true),
        oid: dv.getUint32(12, true),
        infoBufLen,
        infoBufOffset,
        deviceVcHandle: dv.getUint32(24, true),
        info: fits ? buf.subarray(start, start + infoBufLen) : null,
      });
    }
    default:
      return ok({ kind: "unknown", msgType, msgLen });
  }
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
    const dv = view(buf);
    return reject(
      "EINVAL",
      "rndis-unhandled-type",
      `unhandled rndis message (type ${dv.getUint32(0, true)} len ${r.value.msgLen})`,
    );
  }
  return r;
}

function decodePacket(
  buf: Uint8Array,
  dv: DataView,
  msgLen: number,
): NetvscResult<RndisMessage, RndisRejectReason> {
  const buflen = buf.length;
  if (buflen < RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE) {
    return reject("EINVAL", "rndis-packet-too-small", `invalid rndis pkt, data_buflen too small: ${buflen}`);
  }
  const r = (i: number): number => dv.getUint32(RNDIS_HEADER_SIZE + i * 4, true);
  const dataOffset = r(0);
  const dataLen = r(1);
  // rpkt_len: the bytes from the start of struct rndis_packet to the end of the range.
  const rpktLen = buflen - RNDIS_HEADER_SIZE;
  if (dataOffset >= rpktLen) {
    return reject("EINVAL", "rndis-data-offset-invalid", `invalid rndis packet offset: ${dataOffset}`);
  }
  const room = rpktLen - dataOffset;
  if (room < dataLen) {
    return reject(
      "EINVAL",
      "rndis-data-overflow",
      `rndis message buffer overflow detected (got ${room}, min ${dataLen})`,
    );
  }
  const perPktInfoOffset = r(5);
  const perPktInfoLen = r(6);
  const { ppis, issue } = walkPpis(buf, dv, rpktLen, perPktInfoOffset, perPktInfoLen);
  const dataStart = RNDIS_HEADER_SIZE + dataOffset;
  return ok({
    kind: "packet",
    msgLen,
    dataOffset,
    dataLen,
    oobDataOffset: r(2),
    oobDataLen: r(3),
    numOobDataElements: r(4),
    perPktInfoOffset,
    perPktInfoLen,
    vcHandle: r(7),
    dataStart,
    data: buf.subarray(dataStart, dataStart + dataLen),
    ppis,
    ppiIssue: issue,
  });
}

/** Mirrors the checks of rndis_get_ppi, done once over the whole area instead of once per type. */
function walkPpis(
  buf: Uint8Array,
  dv: DataView,
  rpktLen: number,
  offset: number,
  len: number,
): { ppis: readonly RndisPpi[]; issue: RndisPpiIssue | null } {
  const ppis: RndisPpi[] = [];
  if (offset === 0) return { ppis, issue: null };
  if (offset < RNDIS_PACKET_SIZE || offset > rpktLen) {
    return { ppis, issue: { reason: "ppi-offset-invalid", at: RNDIS_HEADER_SIZE + 20, kernelHangs: false } };
  }
  if (len < RNDIS_PPI_HEADER_SIZE || len > rpktLen - offset) {
    return { ppis, issue: { reason: "ppi-len-invalid", at: RNDIS_HEADER_SIZE + 24, kernelHangs: false } };
  }
  let pos = RNDIS_HEADER_SIZE + offset;
  let remaining = len;
  while (remaining > 0) {
    if (remaining < RNDIS_PPI_HEADER_SIZE) {
      return { ppis, issue: { reason: "ppi-entry-truncated", at: pos, kernelHangs: false } };
    }
    const size = dv.getUint32(pos, true);
    const typeWord = dv.getUint32(pos + 4, true);
    const ppiOffset = dv.getUint32(pos + 8, true);
    if (size > remaining) {
      return { ppis, issue: { reason: "ppi-entry-size-invalid", at: pos, kernelHangs: true } };
    }
    if (ppiOffset >= size) {
      return { ppis, issue: { reason: "ppi-entry-offset-invalid", at: pos, kernelHangs: true } };
    }
    // type:31 is the low 31 bits, internal:1 the top bit (GCC's little-endian bitfield order).
    const type = typeWord & 0x7fff_ffff;
    const internal = typeWord >>> 31 === 1;
    const looked = LOOKED_UP_PPIS.find((p) => p.type === type && p.internal === internal);
    if (looked !== undefined && size - ppiOffset < looked.size) {
      return { ppis, issue: { reason: "ppi-entry-too-small", at: pos, kernelHangs: true } };
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

function decodeResponse(buf: Uint8Array, dv: DataView, msgType: number, msgLen: number): RndisMessage {
  // The kernel copies msg_len bytes into a zeroed response_msg; fields past msg_len read as zero.
  // A response longer than the request's buffer is not copied at all: only status is set.
  const requestId = dv.getUint32(8, true);
  const overflow = msgLen > RNDIS_MAX_RESPONSE_LEN;
  const f = (off: number): number => (overflow || off + 4 > msgLen ? 0 : u32OrZero(dv, off));
  const status = overflow ? RNDIS_STATUS.BUFFER_OVERFLOW : f(12);
  if (msgType === RNDIS_MSG_TYPE.SET_C) {
    return { kind: "set-complete", msgLen, requestId, status, responseOverflow: overflow };
  }
  if (msgType === RNDIS_MSG_TYPE.QUERY_C) {
    const infoBufLen = f(16);
    const infoBufOffset = f(20);
    const body = msgLen - RNDIS_HEADER_SIZE;
    // rndis_filter_query_device: whole struct present, offset past the struct, buffer inside msg_len.
    const fits =
      !overflow &&
      body >= BODY.queryComplete &&
      infoBufOffset >= BODY.queryComplete &&
      body >= infoBufOffset &&
      body - infoBufOffset >= infoBufLen;
    const start = RNDIS_HEADER_SIZE + infoBufOffset;
    return {
      kind: "query-complete",
      msgLen,
      requestId,
      status,
      infoBufLen,
      infoBufOffset,
      info: fits ? buf.subarray(start, start + infoBufLen) : null,
      responseOverflow: overflow,
    };
  }
  return {
    kind: "init-complete",
    msgLen,
    requestId,
    status,
    majorVersion: f(16),
    minorVersion: f(20),
    deviceFlags: f(24),
    medium: f(28),
    maxPacketsPerMessage: f(32),
    maxTransferSize: f(36),
    packetAlignmentFactor: f(40),
    afListOffset: f(44),
    afListSize: f(48),
    responseOverflow: overflow,
  };
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
  const dv = view(buf);
  dv.setUint32(0, RNDIS_MSG_TYPE.PACKET, true);
  dv.setUint32(4, checkU32("msg_len", buf.length), true);
  dv.setUint32(8, RNDIS_PACKET_SIZE + ppiLen, true); // data_offset
  dv.setUint32(12, input.data.length, true); // data_len
  if (ppis.length > 0) {
    dv.setUint32(28, RNDIS_PACKET_SIZE, true); // per_pkt_info_offset
    dv.setUint32(32, ppiLen, true); // per_pkt_info_len
  }
  let pos = RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE;
  for (const p of ppis) {
    if (!Number.isInteger(p.type) || p.type < 0 || p.type > 0x7fff_ffff)
      throw new RangeError(`PPI type ${p.type}`);
    dv.setUint32(pos, RNDIS_PPI_HEADER_SIZE + p.data.length, true);
    dv.setUint32(pos + 4, (p.type | (p.internal === true ? 0x8000_0000 : 0)) >>> 0, true);
    dv.setUint32(pos + 8, RNDIS_PPI_HEADER_SIZE, true);
    buf.set(p.data, pos + RNDIS_PPI_HEADER_SIZE);
    pos += RNDIS_PPI_HEADER_SIZE + p.data.length;
  }
  buf.set(input.data, pos);
  return buf;
}

function fixed(msgType: number, body: number, extra = 0): { buf: Uint8Array; dv: DataView } {
  const buf = new Uint8Array(RNDIS_HEADER_SIZE + body + extra);
  const dv = view(buf);
  dv.setUint32(0, msgType, true);
  dv.setUint32(4, buf.length, true);
  return { buf, dv };
}

/** rndis_filter_init_device's INIT: version 1.0, max_xfer_size 0x4000 unless given. */
export function encodeRndisInit(input: {
  readonly requestId: number;
  readonly majorVersion?: number;
  readonly minorVersion?: number;
  readonly maxTransferSize?: number;
}): Uint8Array {
  const { buf, dv } = fixed(RNDIS_MSG_TYPE.INIT, BODY.init);
  dv.setUint32(8, checkU32("requestId", input.requestId), true);
  dv.setUint32(12, checkU32("majorVersion", input.majorVersion ?? RNDIS_MAJOR_VERSION), true);
  dv.setUint32(16, checkU32("minorVersion", input.minorVersion ?? RNDIS_MINOR_VERSION), true);
  dv.setUint32(20, checkU32("maxTransferSize", input.maxTransferSize ?? RNDIS_INIT_MAX_XFER_SIZE), true);
  return buf;
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
  const { buf, dv } = fixed(RNDIS_MSG_TYPE.INIT_C, BODY.initComplete);
  const fields = [
    input.requestId,
    input.status,
    input.majorVersion ?? RNDIS_MAJOR_VERSION,
    input.minorVersion ?? RNDIS_MINOR_VERSION,
    input.deviceFlags ?? 0,
    input.medium ?? 0,
    input.maxPacketsPerMessage,
    input.maxTransferSize,
    input.packetAlignmentFactor,
    input.afListOffset ?? 0,
    input.afListSize ?? 0,
  ];
  for (const [i, v] of fields.entries()) dv.setUint32(8 + i * 4, checkU32("init_complete field", v), true);
  return buf;
}

function encodeRequestWithInfo(
  msgType: number,
  input: { readonly requestId: number; readonly oid: number; readonly info?: Uint8Array },
): Uint8Array {
  const info = input.info ?? new Uint8Array(0);
  const { buf, dv } = fixed(msgType, BODY.query, info.length);
  dv.setUint32(8, checkU32("requestId", input.requestId), true);
  dv.setUint32(12, checkU32("oid", input.oid), true);
  dv.setUint32(16, info.length, true);
  // info_buf_offset = sizeof(struct rndis_query_request) / sizeof(struct rndis_set_request) = 20,
  // set even when there is no buffer, as rndis_filter_query_device does.
  dv.setUint32(20, BODY.query, true);
  buf.set(info, RNDIS_HEADER_SIZE + BODY.query);
  return buf;
}

/** A QUERY request (rndis_filter_query_device). */
export function encodeRndisQuery(input: {
  readonly requestId: number;
  readonly oid: number;
  readonly info?: Uint8Array;
}): Uint8Array {
  return encodeRequestWithInfo(RNDIS_MSG_TYPE.QUERY, input);
}

/** A SET request (rndis_filter_set_packet_filter and friends). */
export function encodeRndisSet(input: {
  readonly requestId: number;
  readonly oid: number;
  readonly info: Uint8Array;
}): Uint8Array {
  return encodeRequestWithInfo(RNDIS_MSG_TYPE.SET, input);
}

/** The host's QUERY_CMPLT; the information buffer follows the 16-byte struct (offset 16). */
export function encodeRndisQueryComplete(input: {
  readonly requestId: number;
  readonly status: number;
  readonly info?: Uint8Array;
}): Uint8Array {
  const info = input.info ?? new Uint8Array(0);
  const { buf, dv } = fixed(RNDIS_MSG_TYPE.QUERY_C, BODY.queryComplete, info.length);
  dv.setUint32(8, checkU32("requestId", input.requestId), true);
  dv.setUint32(12, checkU32("status", input.status), true);
  dv.setUint32(16, info.length, true);
  dv.setUint32(20, info.length > 0 ? BODY.queryComplete : 0, true);
  buf.set(info, RNDIS_HEADER_SIZE + BODY.queryComplete);
  return buf;
}

/** The host's SET_CMPLT. */
export function encodeRndisSetComplete(input: {
  readonly requestId: number;
  readonly status: number;
}): Uint8Array {
  const { buf, dv } = fixed(RNDIS_MSG_TYPE.SET_C, BODY.setComplete);
  dv.setUint32(8, checkU32("requestId", input.requestId), true);
  dv.setUint32(12, checkU32("status", input.status), true);
  return buf;
}

/** The host's INDICATE_STATUS; a status buffer, if any, follows the 12-byte struct (offset 12). */
export function encodeRndisIndicateStatus(input: {
  readonly status: number;
  readonly statusBuffer?: Uint8Array;
}): Uint8Array {
  const sb = input.statusBuffer ?? new Uint8Array(0);
  const { buf, dv } = fixed(RNDIS_MSG_TYPE.INDICATE, BODY.indicate, sb.length);
  dv.setUint32(8, checkU32("status", input.status), true);
  dv.setUint32(12, sb.length, true);
  dv.setUint32(16, sb.length > 0 ? BODY.indicate : 0, true);
  buf.set(sb, RNDIS_HEADER_SIZE + BODY.indicate);
  return buf;
}

/** rndis_filter_halt_device's HALT. */
export function encodeRndisHalt(input: { readonly requestId: number }): Uint8Array {
  const { buf, dv } = fixed(RNDIS_MSG_TYPE.HALT, BODY.halt);
  dv.setUint32(8, checkU32("requestId", input.requestId), true);
  return buf;
}
