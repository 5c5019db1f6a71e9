// Every reason the guest driver fails or counts an error with, as one union a user can enumerate.
// Reasons built from a step name are template-literal types over that step's name, so they are
// enumerable too.
import {
  type NetvscError,
  type NetvscErrorCode,
  type NetvscProtocolErrorReason,
  type NvspMessageKind,
  reject as rejectWithAnyReason,
  type SendTableRejectReason,
} from "@ivm/netvsc-protocol";
import type { VmbusErrorReason } from "@ivm/vmbus";

/** A send-section index the host completed that the driver cannot free (netvsc_free_send_slot). */
export type SendSectionRejectReason = "send-section-index-out-of-range" | "send-section-not-in-use";

/** The two buffers netvsc shares (the strategy's `purpose`). */
export type NetvscBufferPurpose = "netvsc-rx" | "netvsc-tx";

/** NVSP requests the driver sends with COMPLETION_REQUESTED and waits on (netvsc_connect_vsp, netvsc_init_buf, the sub-channel request). */
export type NvspRequestStep =
  | "nvsp-init"
  | "nvsp-send-recv-buf-complete"
  | "nvsp-send-send-buf-complete"
  | "nvsp-subchannel";

/** RNDIS requests the driver waits on (rndis_filter_init_device, _query_device, _set_*: the OID in hex). */
export type RndisRequestStep = "rndis-init" | `rndis-query-0x${string}` | `rndis-set-0x${string}`;

/**
 * What `stats.errors` counts: the errors above when the driver logs one and carries on, and the
 * failures it only logs (a teardown, a close, a restore, an ignored offer; an unsolicited NVSP message
 * by its kind).
 */
export type NetvscLoggedErrorReason =
  | NetvscErrorReason
  | "tx-completion-status-fail"
  | "tx-abandoned-at-remove"
  | "channel-close-failed"
  | "restoring-channels-failed"
  | "restoring-ringparam-failed"
  | "recv-gpadl-teardown-failed"
  | "send-gpadl-teardown-failed"
  | "rndis-pkt-alignment-invalid"
  | "drain-timed-out"
  | "subchannel-index-ignored"
  | "subchannel-open-failed"
  | "rss-param-set-failed"
  | `inband-${NvspMessageKind}`
  | SendTableRejectReason;

/** The `reason` of every NetvscError the driver returns. */
export type NetvscErrorReason =
  | NetvscProtocolErrorReason
  | SendSectionRejectReason
  // device add and options (netvsc_probe, ethtool -L)
  | "bad-option"
  | "bad-channel-count"
  | "bad-rxfh"
  | "no-device"
  | "channel-open-failed"
  | "ring-not-empty"
  // NVSP negotiation and buffers (netvsc_connect_vsp, netvsc_init_buf, netvsc_revoke_*)
  | "nvsp-no-common-version"
  | "nvsp-version-isolated"
  | "nvsp-unexpected-reply"
  | "nvsp-ndis-config-send-failed"
  | "nvsp-ndis-version-send-failed"
  | `${NvspRequestStep}-send-failed`
  | `${NvspRequestStep}-no-reply`
  | `${NetvscBufferPurpose}-alloc-failed`
  | `${NetvscBufferPurpose}-gpadl-failed`
  | `${NetvscBufferPurpose}-map-failed`
  | `${NetvscBufferPurpose}-rebase-failed`
  | "revoke-recv-buf-failed"
  | "revoke-send-buf-failed"
  | "recv-comp-ring-alloc-failed"
  | "send-section-map-alloc-failed"
  | "rx-private-alloc-failed"
  // RNDIS (rndis_filter_device_add)
  | `${RndisRequestStep}-no-response`
  | "rndis-request-alloc-failed"
  | "rndis-init-failed"
  | "rndis-query-response-invalid"
  | "rndis-set-failed"
  | "rndis-hwcaps-invalid"
  | "rndis-mac-invalid"
  // vRSS sub-channels (rndis_set_subchannel, netvsc_sc_open)
  | "subchannel-count-invalid"
  | "subchannel-request-failed"
  | "subchannel-open-timed-out"
  // transmit (netvsc_send, netvsc_send_pkt)
  | "tx-no-device"
  | "channel-rescinded"
  | "dma-map-failed"
  | `tx-${VmbusErrorReason}`;

/**
 * The package's `reject`: @ivm/netvsc-protocol's, with `reason` checked against NetvscErrorReason at compile
 * time, so a reason this list forgot does not build.
 */
export const reject: <R extends NetvscErrorReason>(
  code: NetvscErrorCode,
  reason: R,
  message: string,
) => { readonly ok: false; readonly error: NetvscError<R> } = rejectWithAnyReason;
