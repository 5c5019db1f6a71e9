// NVSP: the netvsc protocol messages carried in VMBus packets. Layouts mirror `struct nvsp_message`
// and its unions in drivers/net/hyperv/hyperv_net.h (all __packed, little-endian).

import { type NetvscResult, ok, reject } from "./errors.js";
import { checkU16, checkU32, checkU64, view } from "./wire.js";

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

/** Packed body sizes of the structs each kind maps onto (after the 4-byte header). */
const BODY_SIZE: { readonly [K in Exclude<NvspMessageKind, "other">]: number } = {
  init: 8,
  "init-complete": 12,
  "send-ndis-version": 8,
  "send-recv-buf": 6,
  "send-recv-buf-complete": 24,
  "revoke-recv-buf": 2,
  "send-send-buf": 6,
  "send-send-buf-complete": 8,
  "revoke-send-buf": 2,
  "send-rndis-pkt": 12,
  "send-rndis-pkt-complete": 4,
  "send-ndis-config": 16,
  "send-vf-association": 8,
  "switch-data-path": 4,
  "subchannel-request": 8,
  "subchannel-complete": 8,
  "send-indirection-table": 8,
};

function kindOf(msgType: number, direction: NvspDirection): Exclude<NvspMessageKind, "other"> | null {
  switch (msgType) {
    case T.INIT:
      return "init";
    case T.INIT_COMPLETE:
      return "init-complete";
    case T.SEND_NDIS_VER:
      return "send-ndis-version";
    case T.SEND_RECV_BUF:
      return "send-recv-buf";
    case T.SEND_RECV_BUF_COMPLETE:
      return "send-recv-buf-complete";
    case T.REVOKE_RECV_BUF:
      return "revoke-recv-buf";
    case T.SEND_SEND_BUF:
      return "send-send-buf";
    case T.SEND_SEND_BUF_COMPLETE:
      return "send-send-buf-complete";
    case T.REVOKE_SEND_BUF:
      return "revoke-send-buf";
    case T.SEND_RNDIS_PKT:
      return "send-rndis-pkt";
    case T.SEND_RNDIS_PKT_COMPLETE:
      return "send-rndis-pkt-complete";
    case T.SEND_NDIS_CONFIG:
      return "send-ndis-config";
    case T.SEND_VF_ASSOCIATION:
      return "send-vf-association";
    case T.SWITCH_DATA_PATH:
      return "switch-data-path";
    case T.SUBCHANNEL:
      return direction === "guest-to-host" ? "subchannel-request" : "subchannel-complete";
    case T.SEND_INDIRECTION_TABLE:
      return "send-indirection-table";
    default:
      return null;
  }
}

const TYPE_OF: { readonly [K in Exclude<NvspMessageKind, "other">]: number } = {
  init: T.INIT,
  "init-complete": T.INIT_COMPLETE,
  "send-ndis-version": T.SEND_NDIS_VER,
  "send-recv-buf": T.SEND_RECV_BUF,
  "send-recv-buf-complete": T.SEND_RECV_BUF_COMPLETE,
  "revoke-recv-buf": T.REVOKE_RECV_BUF,
  "send-send-buf": T.SEND_SEND_BUF,
  "send-send-buf-complete": T.SEND_SEND_BUF_COMPLETE,
  "revoke-send-buf": T.REVOKE_SEND_BUF,
  "send-rndis-pkt": T.SEND_RNDIS_PKT,
  "send-rndis-pkt-complete": T.SEND_RNDIS_PKT_COMPLETE,
  "send-ndis-config": T.SEND_NDIS_CONFIG,
  "send-vf-association": T.SEND_VF_ASSOCIATION,
  "switch-data-path": T.SWITCH_DATA_PATH,
  "subchannel-request": T.SUBCHANNEL,
  "subchannel-complete": T.SUBCHANNEL,
  "send-indirection-table": T.SEND_INDIRECTION_TABLE,
};

/** The wire type number of a message. */
export function nvspMsgType(msg: NvspMessage): number {
  return msg.kind === "other" ? msg.msgType : TYPE_OF[msg.kind];
}

/**
 * Minimum length the guest accepts for a host message of this type, as netvsc_send_completion,
 * netvsc_send_vf and netvsc_send_table check it. The switch in netvsc_send_completion falls through,
 * so INIT_COMPLETE must also pass the SEND_RECV_BUF_COMPLETE check: 4 + 24 = 28 bytes, not 16.
 * SEND_RNDIS_PKT_COMPLETE is only checked for the header. Types the kernel does not read from the host
 * need their full struct here (the model's choice: it decodes every field it reports).
 */
function hostMinLength(kind: Exclude<NvspMessageKind, "other">): number {
  switch (kind) {
    case "init-complete":
    case "send-recv-buf-complete":
      return NVSP_HEADER_SIZE + 24;
    case "send-send-buf-complete":
      return NVSP_HEADER_SIZE + 8;
    case "subchannel-complete":
      return NVSP_HEADER_SIZE + 8;
    case "send-rndis-pkt-complete":
      return NVSP_HEADER_SIZE;
    default:
      return NVSP_HEADER_SIZE + BODY_SIZE[kind];
  }
}

/**
 * Encode a message the way the driver sends it: a zeroed 40-byte `struct nvsp_message` (memset, then
 * the fields), so the union padding goes out as zeros (invariant I5). The receive completion is the
 * one 8-byte exception: use {@link encodeNvspRecvCompletion}.
 */
export function encodeNvspMessage(msg: NvspMessage): Uint8Array {
  const buf = new Uint8Array(NVSP_MESSAGE_SIZE);
  const dv = view(buf);
  dv.setUint32(0, checkU32("msgType", nvspMsgType(msg)), true);
  const w32 = (off: number, name: string, v: number): void => dv.setUint32(4 + off, checkU32(name, v), true);
  const w16 = (off: number, name: string, v: number): void => dv.setUint16(4 + off, checkU16(name, v), true);
  switch (msg.kind) {
    case "init":
      w32(0, "minProtocolVersion", msg.minProtocolVersion);
      w32(4, "maxProtocolVersion", msg.maxProtocolVersion);
      break;
    case "init-complete":
      w32(0, "negotiatedProtocolVersion", msg.negotiatedProtocolVersion);
      w32(4, "maxMdlChainLength", msg.maxMdlChainLength);
      w32(8, "status", msg.status);
      break;
    case "send-ndis-version":
      w32(0, "ndisMajor", msg.ndisMajor);
      w32(4, "ndisMinor", msg.ndisMinor);
      break;
    case "send-recv-buf":
    case "send-send-buf":
      w32(0, "gpadlHandle", msg.gpadlHandle);
      w16(4, "id", msg.id);
      break;
    case "send-recv-buf-complete":
      w32(0, "status", msg.status);
      w32(4, "numSections", msg.numSections);
      w32(8, "section.offset", msg.section.offset);
      w32(12, "section.subAllocSize", msg.section.subAllocSize);
      w32(16, "section.numSubAllocs", msg.section.numSubAllocs);
      w32(20, "section.endOffset", msg.section.endOffset);
      break;
    case "revoke-recv-buf":
    case "revoke-send-buf":
      w16(0, "id", msg.id);
      break;
    case "send-send-buf-complete":
      w32(0, "status", msg.status);
      w32(4, "sectionSize", msg.sectionSize);
      break;
    case "send-rndis-pkt":
      w32(0, "channelType", msg.channelType);
      w32(4, "sendBufSectionIndex", msg.sendBufSectionIndex);
      w32(8, "sendBufSectionSize", msg.sendBufSectionSize);
      break;
    case "send-rndis-pkt-complete":
      w32(0, "status", msg.status ?? 0);
      break;
    case "send-ndis-config":
      w32(0, "mtu", msg.mtu);
      // reserved u32 at +4 stays zero
      dv.setBigUint64(4 + 8, checkU64("capabilities", msg.capabilities), true);
      break;
    case "send-vf-association":
      w32(0, "allocated", msg.allocated);
      w32(4, "serial", msg.serial);
      break;
    case "switch-data-path":
      w32(0, "activeDatapath", msg.activeDatapath);
      break;
    case "subchannel-request":
      w32(0, "operation", msg.operation);
      w32(4, "numSubchannels", msg.numSubchannels);
      break;
    case "subchannel-complete":
      w32(0, "status", msg.status);
      w32(4, "numSubchannels", msg.numSubchannels);
      break;
    case "send-indirection-table":
      w32(0, "count", msg.count);
      w32(4, "offset", msg.offset);
      break;
    case "other":
      if (msg.body.length > NVSP_MESSAGE_SIZE - NVSP_HEADER_SIZE) {
        throw new RangeError(`NVSP body of ${msg.body.length} bytes does not fit struct nvsp_message`);
      }
      buf.set(msg.body, NVSP_HEADER_SIZE);
      break;
  }
  return buf;
}

/** The 8-byte RNDIS-packet completion the guest queues per transfer-page packet (send_recv_completions). */
export function encodeNvspRecvCompletion(status: number): Uint8Array {
  // Written byte by byte: a DataView for 8 bytes costs more than the message (one per received packet).
  const buf = new Uint8Array(NVSP_RECV_COMPLETION_SIZE);
  const type = NVSP_MSG_TYPE.SEND_RNDIS_PKT_COMPLETE;
  const st = checkU32("status", status);
  for (let i = 0; i < 4; i++) {
    buf[i] = (type >>> (8 * i)) & 0xff;
    buf[4 + i] = (st >>> (8 * i)) & 0xff;
  }
  return buf;
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
  const dv = view(bytes);
  const msgType = dv.getUint32(0, true);
  const kind = kindOf(msgType, direction);
  if (kind === null) {
    return ok({ kind: "other", msgType, body: bytes.slice(NVSP_HEADER_SIZE) });
  }
  const min = direction === "host-to-guest" ? hostMinLength(kind) : NVSP_HEADER_SIZE + BODY_SIZE[kind];
  if (bytes.length < min) {
    return reject("EINVAL", "nvsp-message-too-short", `nvsp type ${msgType} length ${bytes.length} < ${min}`);
  }
  const r32 = (off: number): number => dv.getUint32(4 + off, true);
  const r16 = (off: number): number => dv.getUint16(4 + off, true);
  switch (kind) {
    case "init":
      return ok({ kind, minProtocolVersion: r32(0), maxProtocolVersion: r32(4) });
    case "init-complete":
      return ok({ kind, negotiatedProtocolVersion: r32(0), maxMdlChainLength: r32(4), status: r32(8) });
    case "send-ndis-version":
      return ok({ kind, ndisMajor: r32(0), ndisMinor: r32(4) });
    case "send-recv-buf":
    case "send-send-buf":
      return ok({ kind, gpadlHandle: r32(0), id: r16(4) });
    case "send-recv-buf-complete":
      return ok({
        kind,
        status: r32(0),
        numSections: r32(4),
        section: { offset: r32(8), subAllocSize: r32(12), numSubAllocs: r32(16), endOffset: r32(20) },
      });
    case "revoke-recv-buf":
    case "revoke-send-buf":
      return ok({ kind, id: r16(0) });
    case "send-send-buf-complete":
      return ok({ kind, status: r32(0), sectionSize: r32(4) });
    case "send-rndis-pkt":
      return ok({ kind, channelType: r32(0), sendBufSectionIndex: r32(4), sendBufSectionSize: r32(8) });
    case "send-rndis-pkt-complete":
      return ok({ kind, status: bytes.length >= NVSP_HEADER_SIZE + 4 ? r32(0) : null });
    case "send-ndis-config":
      return ok({ kind, mtu: r32(0), capabilities: dv.getBigUint64(4 + 8, true) });
    case "send-vf-association":
      return ok({ kind, allocated: r32(0), serial: r32(4) });
    case "switch-data-path":
      return ok({ kind, activeDatapath: r32(0) });
    case "subchannel-request":
      return ok({ kind, operation: r32(0), numSubchannels: r32(4) });
    case "subchannel-complete":
      return ok({ kind, status: r32(0), numSubchannels: r32(4) });
    case "send-indirection-table":
      return ok({ kind, count: r32(0), offset: r32(4) });
  }
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
 * Mirrors netvsc_send_table: parse the host's send indirection table (SEND_INDIRECTION_TABLE, 134)
 * from a private copy of the whole NVSP message. Hosts speaking <= v6 put the table right after the v6
 * union whatever offset they claim, so the offset is replaced by 40 when the message is long enough.
 *
 * Divergence, on purpose: the kernel's bound `offset > msglen - count * sizeof(u32)` is computed in
 * unsigned 64-bit, so a message shorter than 64 bytes wraps and passes, and the table is read from
 * stale bytes past the message. The model rejects that case as "send-table-offset-too-big".
 */
export function parseSendIndirectionTable(
  bytes: Uint8Array,
  nvspVersion: number,
): NetvscResult<Uint32Array, SendTableRejectReason> {
  const msglen = bytes.length;
  if (msglen < NVSP_HEADER_SIZE + 8) {
    return reject("EINVAL", "nvsp-message-too-short", `nvsp_v5_msg length too small: ${msglen}`);
  }
  const dv = view(bytes);
  const count = dv.getUint32(4, true);
  let offset = dv.getUint32(8, true);
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
  for (let i = 0; i < count; i++) table[i] = dv.getUint32(offset + i * 4, true);
  return ok(table);
}
