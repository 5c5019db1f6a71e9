// Every reason the simulated host refuses guest input with, as one union a user can enumerate. Each
// module keeps its narrower union beside the check that raises it; this is their sum. The modules whose
// unions are summed here raise them with @ivm/netvsc-protocol's reject, checked by the narrow union of
// the result they return (importing this module's reject would make an import cycle); the others use
// the reject below.
import {
  type NetvscError,
  type NetvscErrorCode,
  type NetvscProtocolErrorReason,
  reject as rejectWithAnyReason,
} from "@ivm/netvsc-protocol";
import type { RecvSectionRejectReason } from "./host-buffer.js";
import type { RndisControlRejectReason } from "./rndis-device.js";
import type { RndisWalkRejectReason, TxGatherRejectReason } from "./tx-verifier.js";

/** The `reason` of every NetvscError the host side raises or counts. */
export type NetvspErrorReason =
  | NetvscProtocolErrorReason
  | TxGatherRejectReason
  | RndisWalkRejectReason
  | RecvSectionRejectReason
  | RndisControlRejectReason
  /** A read or write through a GPADL view the guest's memory refused (vmbus-device.ts). */
  | "gpadl-access";

/**
 * The package's `reject`: @ivm/netvsc-protocol's, with `reason` checked against NetvspErrorReason at compile
 * time, so a reason this list forgot does not build.
 */
export const reject: <R extends NetvspErrorReason>(
  code: NetvscErrorCode,
  reason: R,
  message: string,
) => { readonly ok: false; readonly error: NetvscError<R> } = rejectWithAnyReason;
