/**
 * VMBus channel messages: the payloads of the SynIC messages exchanged on the VMBus message
 * connection, laid out as `struct vmbus_channel_*` in include/linux/hyperv.h (all __packed,
 * little-endian). Encoders produce exactly the bytes the kernel posts (msgsize, not padded to 240);
 * the decoder reads each field once from a private copy and never throws on host bytes.
 */
import { err, invariant, ok, type Result } from "../errors.js";
import { readU16, readU32, readU64Number, viewOf, writeU64Number } from "./bytes.js";

/** enum vmbus_channel_message_type. Values 18..20 are unused by Linux; >= 25 is unknown. */
export const CHANNELMSG = {
  INVALID: 0,
  OFFERCHANNEL: 1,
  RESCIND_CHANNELOFFER: 2,
  REQUESTOFFERS: 3,
  ALLOFFERS_DELIVERED: 4,
  OPENCHANNEL: 5,
  OPENCHANNEL_RESULT: 6,
  CLOSECHANNEL: 7,
  GPADL_HEADER: 8,
  GPADL_BODY: 9,
  GPADL_CREATED: 10,
  GPADL_TEARDOWN: 11,
  GPADL_TORNDOWN: 12,
  RELID_RELEASED: 13,
  INITIATE_CONTACT: 14,
  VERSION_RESPONSE: 15,
  UNLOAD: 16,
  UNLOAD_RESPONSE: 17,
  TL_CONNECT_REQUEST: 21,
  MODIFYCHANNEL: 22,
  TL_CONNECT_RESULT: 23,
  MODIFYCHANNEL_RESPONSE: 24,
  COUNT: 25,
} as const;
export type ChannelMessageType = (typeof CHANNELMSG)[keyof typeof CHANNELMSG];

/** What each message type is called in timelines and traces (the one name table). */
const CHANNEL_MESSAGE_NAMES: Readonly<Record<number, string>> = {
  [CHANNELMSG.OFFERCHANNEL]: "offer",
  [CHANNELMSG.RESCIND_CHANNELOFFER]: "rescind",
  [CHANNELMSG.REQUESTOFFERS]: "request offers",
  [CHANNELMSG.ALLOFFERS_DELIVERED]: "all offers delivered",
  [CHANNELMSG.OPENCHANNEL]: "open channel",
  [CHANNELMSG.OPENCHANNEL_RESULT]: "open result",
  [CHANNELMSG.CLOSECHANNEL]: "close channel",
  [CHANNELMSG.GPADL_HEADER]: "GPADL header",
  [CHANNELMSG.GPADL_BODY]: "GPADL body",
  [CHANNELMSG.GPADL_CREATED]: "GPADL created",
  [CHANNELMSG.GPADL_TEARDOWN]: "GPADL teardown",
  [CHANNELMSG.GPADL_TORNDOWN]: "GPADL torndown",
  [CHANNELMSG.RELID_RELEASED]: "relid released",
  [CHANNELMSG.INITIATE_CONTACT]: "initiate contact",
  [CHANNELMSG.VERSION_RESPONSE]: "version response",
  [CHANNELMSG.UNLOAD]: "unload",
  [CHANNELMSG.UNLOAD_RESPONSE]: "unload response",
  [CHANNELMSG.TL_CONNECT_REQUEST]: "tl connect request",
  [CHANNELMSG.MODIFYCHANNEL]: "modify channel",
  [CHANNELMSG.TL_CONNECT_RESULT]: "tl connect result",
  [CHANNELMSG.MODIFYCHANNEL_RESPONSE]: "modify channel response",
};

/** The message's name, or `type N` for a type the guest does not know (a host may send any u32). */
export function channelMessageName(type: number): string {
  return CHANNEL_MESSAGE_NAMES[type] ?? `type ${type}`;
}

/** HV_MESSAGE_PAYLOAD_BYTE_COUNT (drivers/hv/hyperv_vmbus.h MAX_SIZE_CHANNEL_MESSAGE). */
export const MAX_SIZE_CHANNEL_MESSAGE = 240;
/** struct vmbus_channel_message_header: msgtype u32 + padding u32. */
export const CHANNEL_MESSAGE_HEADER_SIZE = 8;

/** Struct sizes, sizeof(struct vmbus_channel_*). */
export const CHANNEL_MESSAGE_SIZE = {
  OFFERCHANNEL: 196,
  RESCIND_CHANNELOFFER: 12,
  REQUESTOFFERS: 8,
  ALLOFFERS_DELIVERED: 8,
  OPENCHANNEL: 148,
  OPENCHANNEL_RESULT: 20,
  CLOSECHANNEL: 12,
  GPADL_HEADER: 20,
  GPADL_BODY: 16,
  GPADL_CREATED: 20,
  GPADL_TEARDOWN: 16,
  GPADL_TORNDOWN: 12,
  RELID_RELEASED: 12,
  INITIATE_CONTACT: 40,
  VERSION_RESPONSE: 16,
  UNLOAD: 8,
  UNLOAD_RESPONSE: 8,
} as const;

/** MAX_USER_DEFINED_BYTES: the offer's and the open message's user data area. */
export const MAX_USER_DEFINED_BYTES = 120;

/** VMBus protocol versions, major << 16 | minor (include/linux/hyperv.h VERSION_*). */
export const VMBUS_VERSION = {
  WS2008: 0x0000000d,
  WIN7: 0x00010001,
  WIN8: 0x00020004,
  WIN8_1: 0x00030000,
  WIN10: 0x00040000,
  WIN10_V4_1: 0x00040001,
  WIN10_V5: 0x00050000,
  WIN10_V5_1: 0x00050001,
  WIN10_V5_2: 0x00050002,
  WIN10_V5_3: 0x00050003,
} as const;

/** vmbus_channel_offer.chn_flags bits (the 2025 Confidential VMBus series reused 0x2 and 0x4). */
export const VMBUS_CHANNEL_FLAG = {
  ENUMERATE_DEVICE_INTERFACE: 0x0001,
  CONFIDENTIAL_RING_BUFFER: 0x0002,
  CONFIDENTIAL_EXTERNAL_MEMORY: 0x0004,
  NAMED_PIPE_MODE: 0x0010,
  LOOPBACK_OFFER: 0x0100,
  PARENT_OFFER: 0x0200,
  REQUEST_MONITORED_NOTIFICATION: 0x0400,
  TLNPI_PROVIDER_OFFER: 0x2000,
} as const;

/** CHANNELMSG_OFFERCHANNEL: struct vmbus_channel_offer_channel (196 bytes). */
export interface OfferChannelMessage {
  readonly kind: "offer-channel";
  /** offer.if_type, guid_t bytes (16). */
  readonly interfaceType: Uint8Array;
  /** offer.if_instance, guid_t bytes (16). */
  readonly interfaceInstance: Uint8Array;
  readonly chnFlags: number;
  readonly mmioMegabytes: number;
  /** offer.u: user_def (or pipe_mode + user_def for pipes), raw 120 bytes. */
  readonly userDefined: Uint8Array;
  readonly subChannelIndex: number;
  readonly childRelid: number;
  readonly monitorId: number;
  readonly monitorAllocated: boolean;
  readonly isDedicatedInterrupt: boolean;
  readonly connectionId: number;
}

export interface RescindChannelOfferMessage {
  readonly kind: "rescind-channel-offer";
  readonly childRelid: number;
}
export interface RequestOffersMessage {
  readonly kind: "request-offers";
}
export interface AllOffersDeliveredMessage {
  readonly kind: "all-offers-delivered";
}
/** CHANNELMSG_OPENCHANNEL: struct vmbus_channel_open_channel (148 bytes). */
export interface OpenChannelMessage {
  readonly kind: "open-channel";
  readonly childRelid: number;
  readonly openId: number;
  readonly ringBufferGpadlHandle: number;
  readonly targetVp: number;
  /** Page offset of the host→guest (inbound) ring inside the ring GPADL. */
  readonly downstreamRingBufferPageOffset: number;
  /** 120 bytes; shorter input is zero-padded when encoding. */
  readonly userData: Uint8Array;
}
export interface OpenChannelResultMessage {
  readonly kind: "open-channel-result";
  readonly childRelid: number;
  readonly openId: number;
  readonly status: number;
}
export interface CloseChannelMessage {
  readonly kind: "close-channel";
  readonly childRelid: number;
}
/**
 * CHANNELMSG_GPADL_HEADER: struct vmbus_channel_gpadl_header. `rangeData` is everything after the
 * 20-byte fixed part (gpa_range structs); the host-side GpadlAssembler parses it.
 */
export interface GpadlHeaderMessage {
  readonly kind: "gpadl-header";
  readonly childRelid: number;
  readonly gpadl: number;
  readonly rangeBufLen: number;
  readonly rangeCount: number;
  readonly rangeData: Uint8Array;
}
/** CHANNELMSG_GPADL_BODY: struct vmbus_channel_gpadl_body; `data` is the u64 pfn[] bytes. */
export interface GpadlBodyMessage {
  readonly kind: "gpadl-body";
  readonly msgNumber: number;
  readonly gpadl: number;
  readonly data: Uint8Array;
}
export interface GpadlCreatedMessage {
  readonly kind: "gpadl-created";
  readonly childRelid: number;
  readonly gpadl: number;
  readonly creationStatus: number;
}
export interface GpadlTeardownMessage {
  readonly kind: "gpadl-teardown";
  readonly childRelid: number;
  readonly gpadl: number;
}
export interface GpadlTorndownMessage {
  readonly kind: "gpadl-torndown";
  readonly gpadl: number;
}
export interface RelidReleasedMessage {
  readonly kind: "relid-released";
  readonly childRelid: number;
}
/**
 * CHANNELMSG_INITIATE_CONTACT: struct vmbus_channel_initiate_contact (40 bytes). The 8 bytes at
 * offset 16 are a union: interrupt_page (u64, protocols < 5.0) or msg_sint/msg_vtl/feature_flags
 * (5.0+; feature_flags since 6.0). Isolated guests require >= 5.2, so the model uses the newer view.
 */
export interface InitiateContactMessage {
  readonly kind: "initiate-contact";
  readonly versionRequested: number;
  readonly targetVcpu: number;
  readonly msgSint: number;
  readonly msgVtl: number;
  readonly featureFlags: number;
  /** GPAs handed to the host; in an IVM they carry the vTOM bit (| in 6.4+, + in 5.16). */
  readonly monitorPage1: number;
  readonly monitorPage2: number;
}
export interface VersionResponseMessage {
  readonly kind: "version-response";
  readonly versionSupported: number;
  readonly connectionState: number;
  readonly msgConnId: number;
}
export interface UnloadMessage {
  readonly kind: "unload";
}
export interface UnloadResponseMessage {
  readonly kind: "unload-response";
}
/** Any message type the model does not decode (the host may send it); bytes kept as received. */
export interface UnknownChannelMessage {
  readonly kind: "unknown";
  readonly msgtype: number;
  readonly bytes: Uint8Array;
}

export type ChannelMessage =
  | OfferChannelMessage
  | RescindChannelOfferMessage
  | RequestOffersMessage
  | AllOffersDeliveredMessage
  | OpenChannelMessage
  | OpenChannelResultMessage
  | CloseChannelMessage
  | GpadlHeaderMessage
  | GpadlBodyMessage
  | GpadlCreatedMessage
  | GpadlTeardownMessage
  | GpadlTorndownMessage
  | RelidReleasedMessage
  | InitiateContactMessage
  | VersionResponseMessage
  | UnloadMessage
  | UnloadResponseMessage
  | UnknownChannelMessage;

export type ChannelMessageKind = ChannelMessage["kind"];

function fixedSizeOf(msg: ChannelMessage): number {
  switch (msg.kind) {
    case "offer-channel":
      return CHANNEL_MESSAGE_SIZE.OFFERCHANNEL;
    case "rescind-channel-offer":
      return CHANNEL_MESSAGE_SIZE.RESCIND_CHANNELOFFER;
    case "request-offers":
      return CHANNEL_MESSAGE_SIZE.REQUESTOFFERS;
    case "all-offers-delivered":
      return CHANNEL_MESSAGE_SIZE.ALLOFFERS_DELIVERED;
    case "open-channel":
      return CHANNEL_MESSAGE_SIZE.OPENCHANNEL;
    case "open-channel-result":
      return CHANNEL_MESSAGE_SIZE.OPENCHANNEL_RESULT;
    case "close-channel":
      return CHANNEL_MESSAGE_SIZE.CLOSECHANNEL;
    case "gpadl-header":
      return CHANNEL_MESSAGE_SIZE.GPADL_HEADER + msg.rangeData.length;
    case "gpadl-body":
      return CHANNEL_MESSAGE_SIZE.GPADL_BODY + msg.data.length;
    case "gpadl-created":
      return CHANNEL_MESSAGE_SIZE.GPADL_CREATED;
    case "gpadl-teardown":
      return CHANNEL_MESSAGE_SIZE.GPADL_TEARDOWN;
    case "gpadl-torndown":
      return CHANNEL_MESSAGE_SIZE.GPADL_TORNDOWN;
    case "relid-released":
      return CHANNEL_MESSAGE_SIZE.RELID_RELEASED;
    case "initiate-contact":
      return CHANNEL_MESSAGE_SIZE.INITIATE_CONTACT;
    case "version-response":
      return CHANNEL_MESSAGE_SIZE.VERSION_RESPONSE;
    case "unload":
      return CHANNEL_MESSAGE_SIZE.UNLOAD;
    case "unload-response":
      return CHANNEL_MESSAGE_SIZE.UNLOAD_RESPONSE;
    case "unknown":
      return msg.bytes.length;
  }
}

const KIND_TO_TYPE: Readonly<Record<Exclude<ChannelMessageKind, "unknown">, number>> = {
  "offer-channel": CHANNELMSG.OFFERCHANNEL,
  "rescind-channel-offer": CHANNELMSG.RESCIND_CHANNELOFFER,
  "request-offers": CHANNELMSG.REQUESTOFFERS,
  "all-offers-delivered": CHANNELMSG.ALLOFFERS_DELIVERED,
  "open-channel": CHANNELMSG.OPENCHANNEL,
  "open-channel-result": CHANNELMSG.OPENCHANNEL_RESULT,
  "close-channel": CHANNELMSG.CLOSECHANNEL,
  "gpadl-header": CHANNELMSG.GPADL_HEADER,
  "gpadl-body": CHANNELMSG.GPADL_BODY,
  "gpadl-created": CHANNELMSG.GPADL_CREATED,
  "gpadl-teardown": CHANNELMSG.GPADL_TEARDOWN,
  "gpadl-torndown": CHANNELMSG.GPADL_TORNDOWN,
  "relid-released": CHANNELMSG.RELID_RELEASED,
  "initiate-contact": CHANNELMSG.INITIATE_CONTACT,
  "version-response": CHANNELMSG.VERSION_RESPONSE,
  unload: CHANNELMSG.UNLOAD,
  "unload-response": CHANNELMSG.UNLOAD_RESPONSE,
};

function putBytes(dst: Uint8Array, offset: number, src: Uint8Array, max: number, what: string): void {
  if (src.length > max) invariant(false, `${what} is ${src.length} bytes, at most ${max}`);
  dst.set(src, offset);
}

/**
 * Encodes a message the way the kernel fills its msginfo: a zeroed buffer (padding and reserved
 * fields stay zero, invariant I5) of exactly the struct size. Throws on a model bug (a field out of
 * range, a message over 240 bytes); never used on host bytes.
 */
export function encodeChannelMessage(msg: ChannelMessage): Uint8Array {
  const size = fixedSizeOf(msg);
  if (size > MAX_SIZE_CHANNEL_MESSAGE) invariant(false, `channel message of ${size} bytes exceeds 240`);
  invariant(size >= CHANNEL_MESSAGE_HEADER_SIZE, "channel message shorter than its header");
  const out = new Uint8Array(size);
  const v = viewOf(out);
  if (msg.kind === "unknown") {
    out.set(msg.bytes);
    v.setUint32(0, msg.msgtype >>> 0, true);
    return out;
  }
  v.setUint32(0, KIND_TO_TYPE[msg.kind], true);
  switch (msg.kind) {
    case "offer-channel":
      putBytes(out, 8, msg.interfaceType, 16, "if_type");
      putBytes(out, 24, msg.interfaceInstance, 16, "if_instance");
      // reserved1 @40 and reserved2 @48 stay zero.
      v.setUint16(56, msg.chnFlags, true);
      v.setUint16(58, msg.mmioMegabytes, true);
      putBytes(out, 60, msg.userDefined, MAX_USER_DEFINED_BYTES, "user_def");
      v.setUint16(180, msg.subChannelIndex, true);
      v.setUint32(184, msg.childRelid, true);
      v.setUint8(188, msg.monitorId);
      v.setUint8(189, msg.monitorAllocated ? 1 : 0);
      v.setUint16(190, msg.isDedicatedInterrupt ? 1 : 0, true);
      v.setUint32(192, msg.connectionId, true);
      break;
    case "rescind-channel-offer":
    case "close-channel":
    case "relid-released":
      v.setUint32(8, msg.childRelid, true);
      break;
    case "open-channel":
      v.setUint32(8, msg.childRelid, true);
      v.setUint32(12, msg.openId, true);
      v.setUint32(16, msg.ringBufferGpadlHandle, true);
      v.setUint32(20, msg.targetVp, true);
      v.setUint32(24, msg.downstreamRingBufferPageOffset, true);
      putBytes(out, 28, msg.userData, MAX_USER_DEFINED_BYTES, "userdata");
      break;
    case "open-channel-result":
      v.setUint32(8, msg.childRelid, true);
      v.setUint32(12, msg.openId, true);
      v.setUint32(16, msg.status, true);
      break;
    case "gpadl-header":
      v.setUint32(8, msg.childRelid, true);
      v.setUint32(12, msg.gpadl, true);
      v.setUint16(16, msg.rangeBufLen, true);
      v.setUint16(18, msg.rangeCount, true);
      out.set(msg.rangeData, 20);
      break;
    case "gpadl-body":
      v.setUint32(8, msg.msgNumber, true);
      v.setUint32(12, msg.gpadl, true);
      out.set(msg.data, 16);
      break;
    case "gpadl-created":
      v.setUint32(8, msg.childRelid, true);
      v.setUint32(12, msg.gpadl, true);
      v.setUint32(16, msg.creationStatus, true);
      break;
    case "gpadl-teardown":
      v.setUint32(8, msg.childRelid, true);
      v.setUint32(12, msg.gpadl, true);
      break;
    case "gpadl-torndown":
      v.setUint32(8, msg.gpadl, true);
      break;
    case "initiate-contact":
      v.setUint32(8, msg.versionRequested, true);
      v.setUint32(12, msg.targetVcpu, true);
      v.setUint8(16, msg.msgSint);
      v.setUint8(17, msg.msgVtl);
      v.setUint32(20, msg.featureFlags, true);
      writeU64Number(v, 24, msg.monitorPage1);
      writeU64Number(v, 32, msg.monitorPage2);
      break;
    case "version-response":
      v.setUint8(8, msg.versionSupported);
      v.setUint8(9, msg.connectionState);
      v.setUint32(12, msg.msgConnId, true);
      break;
    case "request-offers":
    case "all-offers-delivered":
    case "unload":
    case "unload-response":
      break;
  }
  return out;
}

/** Minimum payload length per known type (the kernel's channel_message_table min_payload_len). */
const MIN_SIZE: ReadonlyMap<number, number> = new Map<number, number>([
  [CHANNELMSG.OFFERCHANNEL, CHANNEL_MESSAGE_SIZE.OFFERCHANNEL],
  [CHANNELMSG.RESCIND_CHANNELOFFER, CHANNEL_MESSAGE_SIZE.RESCIND_CHANNELOFFER],
  [CHANNELMSG.REQUESTOFFERS, CHANNEL_MESSAGE_SIZE.REQUESTOFFERS],
  [CHANNELMSG.ALLOFFERS_DELIVERED, CHANNEL_MESSAGE_SIZE.ALLOFFERS_DELIVERED],
  [CHANNELMSG.OPENCHANNEL, CHANNEL_MESSAGE_SIZE.OPENCHANNEL],
  [CHANNELMSG.OPENCHANNEL_RESULT, CHANNEL_MESSAGE_SIZE.OPENCHANNEL_RESULT],
  [CHANNELMSG.CLOSECHANNEL, CHANNEL_MESSAGE_SIZE.CLOSECHANNEL],
  [CHANNELMSG.GPADL_HEADER, CHANNEL_MESSAGE_SIZE.GPADL_HEADER],
  [CHANNELMSG.GPADL_BODY, CHANNEL_MESSAGE_SIZE.GPADL_BODY],
  [CHANNELMSG.GPADL_CREATED, CHANNEL_MESSAGE_SIZE.GPADL_CREATED],
  [CHANNELMSG.GPADL_TEARDOWN, CHANNEL_MESSAGE_SIZE.GPADL_TEARDOWN],
  [CHANNELMSG.GPADL_TORNDOWN, CHANNEL_MESSAGE_SIZE.GPADL_TORNDOWN],
  [CHANNELMSG.RELID_RELEASED, CHANNEL_MESSAGE_SIZE.RELID_RELEASED],
  [CHANNELMSG.INITIATE_CONTACT, CHANNEL_MESSAGE_SIZE.INITIATE_CONTACT],
  [CHANNELMSG.VERSION_RESPONSE, CHANNEL_MESSAGE_SIZE.VERSION_RESPONSE],
  [CHANNELMSG.UNLOAD, CHANNEL_MESSAGE_SIZE.UNLOAD],
  [CHANNELMSG.UNLOAD_RESPONSE, CHANNEL_MESSAGE_SIZE.UNLOAD_RESPONSE],
]);

export interface DecodeChannelMessageOptions {
  /**
   * The bytes are the caller's own private copy (what the SynIC hands each side: a copy made when the
   * message was posted), which nobody else can write: they are read in place instead of copied again.
   * The decoded message's byte fields may then be views of `input`.
   */
  readonly owned?: boolean;
}

/**
 * Decodes a channel message payload (the SynIC payload_size bytes). Works on a private copy, so the
 * sender cannot change a field after it was checked. Unknown or unmodelled types come back as the
 * "unknown" variant; a payload shorter than its struct, or longer than 240 bytes, is an EPROTO
 * result (the kernel drops such messages in vmbus_on_msg_dpc). Never throws.
 */
export function decodeChannelMessage(
  input: Uint8Array,
  options: DecodeChannelMessageOptions = {},
): Result<ChannelMessage> {
  if (input.length > MAX_SIZE_CHANNEL_MESSAGE) {
    return err("EPROTO", "oversize-message", `channel message of ${input.length} bytes exceeds 240`);
  }
  if (input.length < CHANNEL_MESSAGE_HEADER_SIZE) {
    return err("EPROTO", "short-message", `channel message of ${input.length} bytes has no header`);
  }
  const b = options.owned === true ? input : input.slice();
  // Fields are read straight from the bytes: no DataView or closure per message (a GPADL's bodies
  // come by the hundred); only the u64 fields of INITIATE_CONTACT go through a view.
  const msgtype = readU32(b, 0);
  const min = MIN_SIZE.get(msgtype);
  if (min === undefined) return ok({ kind: "unknown", msgtype, bytes: b });
  if (b.length < min) {
    return err("EPROTO", "short-message", `message type ${msgtype} needs ${min} bytes, got ${b.length}`);
  }
  switch (msgtype) {
    case CHANNELMSG.OFFERCHANNEL:
      return ok({
        kind: "offer-channel",
        interfaceType: b.slice(8, 24),
        interfaceInstance: b.slice(24, 40),
        chnFlags: readU16(b, 56),
        mmioMegabytes: readU16(b, 58),
        userDefined: b.slice(60, 180),
        subChannelIndex: readU16(b, 180),
        childRelid: readU32(b, 184),
        monitorId: b[188]!,
        // Bit fields: only bit 0 is meaningful; reserved bits are ignored, as the kernel does.
        monitorAllocated: (b[189]! & 1) === 1,
        isDedicatedInterrupt: (readU16(b, 190) & 1) === 1,
        connectionId: readU32(b, 192),
      });
    case CHANNELMSG.RESCIND_CHANNELOFFER:
      return ok({ kind: "rescind-channel-offer", childRelid: readU32(b, 8) });
    case CHANNELMSG.REQUESTOFFERS:
      return ok({ kind: "request-offers" });
    case CHANNELMSG.ALLOFFERS_DELIVERED:
      return ok({ kind: "all-offers-delivered" });
    case CHANNELMSG.OPENCHANNEL:
      return ok({
        kind: "open-channel",
        childRelid: readU32(b, 8),
        openId: readU32(b, 12),
        ringBufferGpadlHandle: readU32(b, 16),
        targetVp: readU32(b, 20),
        downstreamRingBufferPageOffset: readU32(b, 24),
        userData: b.slice(28, 148),
      });
    case CHANNELMSG.OPENCHANNEL_RESULT:
      return ok({
        kind: "open-channel-result",
        childRelid: readU32(b, 8),
        openId: readU32(b, 12),
        status: readU32(b, 16),
      });
    case CHANNELMSG.CLOSECHANNEL:
      return ok({ kind: "close-channel", childRelid: readU32(b, 8) });
    case CHANNELMSG.GPADL_HEADER:
      return ok({
        kind: "gpadl-header",
        childRelid: readU32(b, 8),
        gpadl: readU32(b, 12),
        rangeBufLen: readU16(b, 16),
        rangeCount: readU16(b, 18),
        rangeData: b.subarray(20),
      });
    case CHANNELMSG.GPADL_BODY:
      return ok({
        kind: "gpadl-body",
        msgNumber: readU32(b, 8),
        gpadl: readU32(b, 12),
        data: b.subarray(16),
      });
    case CHANNELMSG.GPADL_CREATED:
      return ok({
        kind: "gpadl-created",
        childRelid: readU32(b, 8),
        gpadl: readU32(b, 12),
        creationStatus: readU32(b, 16),
      });
    case CHANNELMSG.GPADL_TEARDOWN:
      return ok({ kind: "gpadl-teardown", childRelid: readU32(b, 8), gpadl: readU32(b, 12) });
    case CHANNELMSG.GPADL_TORNDOWN:
      return ok({ kind: "gpadl-torndown", gpadl: readU32(b, 8) });
    case CHANNELMSG.RELID_RELEASED:
      return ok({ kind: "relid-released", childRelid: readU32(b, 8) });
    case CHANNELMSG.INITIATE_CONTACT: {
      const v = viewOf(b);
      const monitorPage1 = readU64Number(v, 24);
      const monitorPage2 = readU64Number(v, 32);
      if (monitorPage1 < 0 || monitorPage2 < 0) {
        return err("EPROTO", "u64-out-of-range", "monitor page address is 2^53 or more");
      }
      return ok({
        kind: "initiate-contact",
        versionRequested: readU32(b, 8),
        targetVcpu: readU32(b, 12),
        msgSint: b[16]!,
        msgVtl: b[17]!,
        featureFlags: readU32(b, 20),
        monitorPage1,
        monitorPage2,
      });
    }
    case CHANNELMSG.VERSION_RESPONSE:
      return ok({
        kind: "version-response",
        versionSupported: b[8]!,
        connectionState: b[9]!,
        msgConnId: readU32(b, 12),
      });
    case CHANNELMSG.UNLOAD:
      return ok({ kind: "unload" });
    case CHANNELMSG.UNLOAD_RESPONSE:
      return ok({ kind: "unload-response" });
    default:
      return ok({ kind: "unknown", msgtype, bytes: b });
  }
}
