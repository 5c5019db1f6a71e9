// Knobs that turn the honest netvsp into the untrusted host of the design (adversarial mode). They are
// plain data read at the few points where the host emits bytes; with `adversary` unset the honest
// paths pay one undefined check per emitted message and nothing else.

/** What an outgoing message is, for an interceptor that wants to target one kind. */
export type NetvspOutgoingKind =
  | "init-complete"
  | "send-recv-buf-complete"
  | "send-send-buf-complete"
  | "send-rndis-pkt-complete"
  /** A completion with no payload (NDIS_VER/NDIS_CONFIG/revoke when the guest asked for one). */
  | "empty-completion"
  /** A transfer-page packet carrying data frames. */
  | "rx-data"
  /** A transfer-page packet carrying an RNDIS control response. */
  | "rx-control"
  /** The NVSP 5 SUBCHANNEL completion (status and the number of sub-channels granted). */
  | "subchannel-complete"
  /** An NVSP 5 SEND_INDIRECTION_TABLE (the host's transmit queue table; Netvsp.sendIndirectionTable). */
  | "send-indirection-table"
  | "forged-completion";

export interface NetvspOutgoing {
  readonly kind: NetvspOutgoingKind;
  readonly transId: bigint;
  /** The whole VMBus packet (descriptor first) about to go into the guest's inbound ring. */
  readonly bytes: Uint8Array;
}

/**
 * Called for every outgoing packet: return undefined to send it unchanged, null to drop it (the host's
 * state moves on as if it had been sent), or replacement bytes (zero-padded to 8 bytes, at least a
 * descriptor) to send instead.
 */
export type NetvspInterceptor = (msg: NetvspOutgoing) => Uint8Array | null | undefined;

/** Malformed SEND_RECV_BUF_COMPLETE replies netvsc_init_buf must refuse (44144185951a). */
export type RecvBufCompleteTamper =
  /** sub_alloc_size 67: one below NETVSC_MTU_MIN. */
  | "section-size-67"
  /** num_sub_allocs = ceil(2^32 / size): the u32 product wraps to a small value, the u64 one does not. */
  | "count-overflow"
  /** sections[0].offset = the section size instead of 0. */
  | "offset-nonzero"
  /** num_sections = 2. */
  | "two-sections";

/** Ranges in data transfer-page packets that netvsc_receive must fail (the sections used stay honest). */
export type XferRangeTamper =
  /** byte_offset just past the end of the receive buffer. */
  | "offset-past-buffer"
  /** byte_count one more than the receive section size. */
  | "length-past-section";

export interface NetvspAdversary {
  readonly interceptor?: NetvspInterceptor;
  readonly recvBufComplete?: RecvBufCompleteTamper;
  readonly xferRange?: XferRangeTamper;
  /** Send every SEND_RNDIS_PKT_COMPLETE twice. */
  readonly duplicateTxCompletions?: boolean;
  /**
   * Once an RX transfer-page packet is out and the host has gone idle (so the guest had its turn to
   * read the section), the next poll writes `bytes` at `offset` within that packet's first RNDIS
   * message, if the guest has not completed it yet. A guest that parses only its private copy never
   * sees the change; one that reads the shared bytes twice does.
   */
  readonly rxRewrite?: { readonly offset: number; readonly bytes: Uint8Array };
  /**
   * The sub-channel count the SUBCHANNEL completion claims, whatever was offered (more than the guest
   * asked for is refused by rndis_set_subchannel; 0 leaves the NIC on its primary).
   */
  readonly subchannelGrant?: number;
}
