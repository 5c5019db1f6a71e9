// @ivm/netvsp: the simulated host network device, the untrusted host's end of a netvsc channel. It
// sees guest memory only through the visibility-gated host view and imports nothing from the guest
// driver (@ivm/netvsc): the wire formats come from @ivm/netvsc-protocol.

export type {
  NetvspAdversary,
  NetvspInterceptor,
  NetvspOutgoing,
  NetvspOutgoingKind,
  RecvBufCompleteTamper,
  XferRangeTamper,
} from "./adversary.js";
export { fitsInView, type RecvSectionRejectReason, RecvSections } from "./host-buffer.js";
export {
  Netvsp,
  type NetvspCounters,
  type NetvspOptions,
  type NetvspPhase,
  type NetvspQueueCounters,
  type SubchannelOrder,
} from "./netvsp.js";
export type {
  GpadlLookup,
  HostGpadlView,
  HostGuestMemory,
  NetvspPorts,
  NetvspRing,
} from "./ports.js";
export type { NetvspErrorReason } from "./reasons.js";
export type { RndisControlRejectReason, RndisDeviceState } from "./rndis-device.js";
export { type RssSource, RssTable } from "./rss.js";
export { RX_RNDIS_OVERHEAD } from "./rx-generator.js";
export type { RndisWalkRejectReason, TxGatherRejectReason } from "./tx-verifier.js";
export { netvspVmbusDevice } from "./vmbus-device.js";
