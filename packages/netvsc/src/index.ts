// @ivm/netvsc: the netvsc guest driver (drivers/net/hyperv: netvsc.c, rndis_filter.c) over VMBus,
// swiotlb and an injected buffer strategy. The wire formats are in @ivm/netvsc-protocol; the host's
// device is @ivm/netvsp, which this package never imports.

export { NETVSC_BUFFER_TAGS, NETVSC_FINDING, RX_PRIVATE_TAG, SECTION_MAP_TAG } from "./init-buf.js";
export {
  NETVSC_MAX_PKT_SIZE,
  NETVSC_MIN_IN_MSG_SIZE,
  NETVSC_MIN_OUT_MSG_SIZE,
  NETVSC_RING_BYTES_DEFAULT,
  NetvscDevice,
  type NetvscDeviceOptions,
  netvscRqstorSize,
} from "./netvsc-device.js";
export type { NetvscServices } from "./nvdev.js";
export type {
  NetvscBufferPurpose,
  NetvscErrorReason,
  NetvscLoggedErrorReason,
  NvspRequestStep,
  RndisRequestStep,
} from "./reasons.js";
export { RECV_COMP_RING_TAG } from "./recv-comp-ring.js";
export type { RingParamState } from "./ringparam.js";
export { NETVSC_PACKET_FILTER, RNDIS_REQUEST_TAG } from "./rndis-filter.js";
export { NO_RX_PPIS, type RxPacketInfo } from "./rndis-ppi.js";
export {
  DMA_RANGE_TAG,
  RNDIS_DATA_HEADER_SIZE,
  SKB_RNDIS_HEADROOM,
  SKB_TAG,
  type XmitVerdict,
} from "./send.js";
export {
  maxCopyablePacket,
  RNDIS_MAX_PKT_DEFAULT,
  RNDIS_PKT_ALIGN_DEFAULT,
  SEND_SECTION_MAP_BITS_PER_WORD,
  type SendCopyDecision,
  type SendCopyInput,
  SendSectionMap,
  type SendSectionRejectReason,
  sendCopyDecision,
  sendPadding,
  sendSectionOffset,
} from "./send-buffer.js";
export { type NetvscStats, newNetvscStats } from "./stats.js";
