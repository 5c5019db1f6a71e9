// Every reason a decoder of this package rejects host bytes with, as one union a user can enumerate
// (switch over it, key a counter table by it). Each module keeps its own narrower union beside the
// check that raises it; this is their sum.
import type { NvspRejectReason, SendTableRejectReason } from "./nvsp.js";
import type { RndisRejectReason } from "./rndis.js";
import type { RssParamRejectReason } from "./rss-param.js";
import type { BufferSetupRejectReason } from "./sizing.js";
import type { XferPacketRejectReason, XferRangeRejectReason } from "./xfer-page.js";

/** The `reason` of every NetvscError this package's decoders return. */
export type NetvscProtocolErrorReason =
  | NvspRejectReason
  | SendTableRejectReason
  | RndisRejectReason
  | RssParamRejectReason
  | BufferSetupRejectReason
  | XferPacketRejectReason
  | XferRangeRejectReason;
