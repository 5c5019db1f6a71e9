// @ivm/vmbus: the guest's side of VMBus — what a user composes (the connection, channels, GPADLs, the
// scheduler and SynIC, offers, errors, owner tags, trace events, the kernel context), plus, deliberately,
// the wire facts the layers above read and write through it (channel-message and packet codecs, ring
// header layout and index arithmetic) for @ivm/netvsc-protocol, @ivm/netvsc, @ivm/netvsp and the
// lab's decoders. The host's side is @ivm/vmbus/host; test worlds are @ivm/vmbus/testing.

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
  isPerfChannel,
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
  type GpadlRejectReason,
  type RequestRejectReason,
  type Result,
  type VmbusErrno,
  VmbusError,
  type VmbusErrorReason,
  VmbusInvariantError,
} from "./errors.js";
export {
  type EstablishGpadlOptions,
  type Gpadl,
  type GpadlEstablishResult,
  type GpadlTeardownResult,
  type GpadlType,
  gpadlPfns,
  MSGINFO_TAG,
} from "./gpadl.js";
export {
  MONITOR_TAGS,
  type MonitorPage,
  type MonitorPageCounters,
} from "./monitor-pages.js";
export {
  DEFAULT_KERNEL_PROFILE,
  KernelContext,
  VMBUS_FINDING,
} from "./profile.js";
export { RequestTable } from "./request-table.js";
export {
  type IncomingPacket,
  type IncomingResult,
  IncomingRing,
  type RecvResult,
} from "./ring/incoming.js";
export {
  OutgoingRing,
  type RingWriteOk,
  type TransIdValue,
  writeTransId,
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
export type {
  MessageDirection,
  VmbusTraceEvent,
  VmbusTraceKind,
} from "./trace.js";
export {
  type CpuTopology,
  checkTopology,
  cpuToVp,
  VMBUS_CONNECT_CPU,
  VmbusCpuAllocator,
  type VpIndexChannel,
  type VpIndexChoice,
  type VpIndexRequest,
} from "./vp-index.js";

// Little-endian field access straight from the bytes (no DataView per message): the one copy the
// NVSP/RNDIS codecs of @ivm/netvsc-protocol use too.
export {
  readU16,
  readU32,
  readU64BigInt,
  readU64NumberAt,
  writeU16,
  writeU32,
  writeU64NumberAt,
} from "./wire/bytes.js";
export {
  CHANNELMSG,
  type ChannelMessage,
  channelMessageName,
  decodeChannelMessage,
  encodeChannelMessage,
  type OfferChannelMessage,
  VMBUS_CHANNEL_FLAG,
  VMBUS_VERSION,
} from "./wire/channel-message.js";
export {
  decodePfnArray,
  gpadlMessageCount,
  HV_HYP_PAGE_SIZE,
} from "./wire/gpadl.js";
export {
  decodeGpaDirectPacket,
  decodeTransferPagePacket,
  encodeCompletionPacket,
  encodeInbandPacket,
  encodePageBufferDescriptor,
  encodeTransferPagePacket,
  type GpaDirectRange,
  GpaDirectReader,
  type HvPageBuffer,
  MAX_PAGE_BUFFER_COUNT,
  mpbRangesFromPageBuffers,
  PacketDescriptorReader,
  pageBufferDescriptorSize,
  readPacketDescriptor,
  type TransferPagePacket,
  transferPagePacketSize,
  VM_PKT,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMBUS_RQST_ERROR,
  VMPACKET_DESCRIPTOR_SIZE,
  writePacketDescriptor,
  writePageBufferDescriptor,
  writeTransferPagePacket,
  writeTransferPageRange,
  XFER_PAGE_HEADER_SIZE,
} from "./wire/packet.js";
export {
  RING_HEADER,
  VMBUS_DEFAULT_MAX_PKT_SIZE,
} from "./wire/ring-header.js";
