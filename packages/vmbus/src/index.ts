export {
  type ChannelOpenOptions,
  type ChannelState,
  type CloseResult,
  REQUESTOR_TAG,
  type SendPacketOptions,
  VmbusChannel,
  type VmbusChannelCounters,
} from "./channel.js";
export {
  DEFAULT_VMBUS_DEVICES,
  HV_IDE_GUID,
  HV_NIC_GUID,
  HV_SCSI_GUID,
  type VmbusDeviceEntry,
} from "./channel-offer.js";
export {
  type ConnectionState,
  type DropReason,
  MAX_CHANNEL_RELIDS,
  type MessageEvent,
  VMBUS_VERSIONS,
  VmbusConnection,
  type VmbusConnectionCounters,
  type VmbusConnectionOptions,
} from "./connection.js";
export {
  type Result,
  type VmbusErrno,
  VmbusError,
  VmbusInvariantError,
} from "./errors.js";
export {
  type EstablishGpadlOptions,
  type Gpadl,
  type GpadlEstablishResult,
  type GpadlTeardownResult,
  type GpadlType,
  gpadlPfns,
  MSGINFO_HEADER_SIZE,
  MSGINFO_TAG,
} from "./gpadl.js";
export { MONITOR_TAGS, type MonitorPage, type MonitorPageCounters } from "./monitor-pages.js";
export { DEFAULT_KERNEL_PROFILE, KernelContext, VMBUS_FINDING } from "./profile.js";
export {
  type RequestRejectCounters,
  type RequestRejectReason,
  RequestTable,
} from "./request-table.js";
export {
  type ClampReason,
  type IncomingPacket,
  type IncomingResult,
  IncomingRing,
  type IncomingRingCounters,
  type IncomingRingOptions,
  type IndexPolicy,
  type RecvResult,
} from "./ring/incoming.js";
export {
  OutgoingRing,
  type OutgoingRingCounters,
  type OutgoingRingOptions,
  type RingWriteOk,
  type SendOptions,
} from "./ring/outgoing.js";
export { RING_TAGS } from "./ring/ring-buffer.js";
export {
  bytesToRead,
  bytesToWrite,
  checkRingIndex,
  FlatRingMem,
  initRingHeader,
  type RingMem,
} from "./ring/ring-mem.js";
export {
  type Poll,
  Scheduler,
  type SchedulerCounters,
  type SchedulerOptions,
} from "./scheduler.js";
export { closeSubChannels, type OfferPlacement, placeOffer, sameDevice } from "./subchannel.js";
export {
  HV_POST_STATUS,
  type SynicCounters,
  SynicLink,
} from "./synic.js";
export { type MessageDirection, pfnRuns, type VmbusTraceEvent, type VmbusTraceKind } from "./trace.js";
export {
  guidFromString,
  guidToString,
} from "./wire/bytes.js";
export {
  type AllOffersDeliveredMessage,
  CHANNEL_MESSAGE_HEADER_SIZE,
  CHANNEL_MESSAGE_SIZE,
  CHANNELMSG,
  type ChannelMessage,
  type ChannelMessageKind,
  type ChannelMessageType,
  type CloseChannelMessage,
  channelMessageName,
  decodeChannelMessage,
  encodeChannelMessage,
  type GpadlBodyMessage,
  type GpadlCreatedMessage,
  type GpadlHeaderMessage,
  type GpadlTeardownMessage,
  type GpadlTorndownMessage,
  type InitiateContactMessage,
  MAX_SIZE_CHANNEL_MESSAGE,
  MAX_USER_DEFINED_BYTES,
  type OfferChannelMessage,
  type OpenChannelMessage,
  type OpenChannelResultMessage,
  type RelidReleasedMessage,
  type RequestOffersMessage,
  type RescindChannelOfferMessage,
  type UnknownChannelMessage,
  type UnloadMessage,
  type UnloadResponseMessage,
  type VersionResponseMessage,
  VMBUS_CHANNEL_FLAG,
  VMBUS_VERSION,
} from "./wire/channel-message.js";
export {
  decodePfnArray,
  GPA_RANGE_HEADER_SIZE,
  GPADL_BODY_MAX_PFNS,
  GPADL_HEADER_MAX_PFNS,
  type GpadlMessages,
  type GpadlMessagesInput,
  gpadlMessageCount,
  HV_HYP_PAGE_SIZE,
} from "./wire/gpadl.js";
export {
  decodeGpaDirectPacket,
  decodeTransferPagePacket,
  encodeCompletionPacket,
  encodePageBufferDescriptor,
  encodeTransferPagePacket,
  GPA_DIRECT_HEADER_SIZE,
  type GpaDirectPacket,
  type GpaDirectRange,
  HV_PAGE_BUFFER_SIZE,
  type HvPageBuffer,
  MAX_MULTIPAGE_BUFFER_COUNT,
  MAX_PACKET_LEN,
  MAX_PAGE_BUFFER_COUNT,
  MAX_PAGE_BUFFER_PACKET,
  type MpbRange,
  mpbRangesFromPageBuffers,
  type PacketDescriptor,
  readPacketDescriptor,
  type TransferPagePacket,
  type TransferPageRange,
  VM_PKT,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMBUS_NO_RQSTOR,
  VMBUS_RQST_ERROR,
  VMBUS_RQST_ID_NO_RESPONSE,
  VMPACKET_DESCRIPTOR_SIZE,
  type VmPacketType,
  writePacketDescriptor,
  XFER_PAGE_HEADER_SIZE,
} from "./wire/packet.js";
export {
  RING_FEAT_PENDING_SEND_SZ,
  RING_HEADER,
  type RingHeaderField,
  VMBUS_DEFAULT_MAX_PKT_SIZE,
  VMBUS_PKT_TRAILER,
} from "./wire/ring-header.js";
