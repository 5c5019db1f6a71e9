// NVSP control messages: the channel_init_pkt / channel_init_wait pattern of netvsc_connect_vsp,
// negotiate_nvsp_ver and netvsc_init_buf (send with COMPLETION_REQUESTED, sleep until
// netvsc_send_completion copies the host's answer back), plus the one-way messages (NDIS_VER,
// NDIS_CONFIG, the revokes). drivers/net/hyperv/netvsc.c.

import {
  encodeNvspMessage,
  NetvscError,
  type NetvscResult,
  type NvspMessage,
  ok,
} from "@ivm/netvsc-protocol";
import { VM_PKT, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, type VmbusError } from "@ivm/vmbus";
import type { DriverEnv, RequestCtx } from "./nvdev.js";
import type { NetvscErrorReason, NvspRequestStep } from "./reasons.js";

/** Wraps a VMBus error in the netvsc family, keeping its errno and the VMBus error as the cause. */
export function fromVmbus(
  e: VmbusError,
  reason: NetvscErrorReason,
): { readonly ok: false; readonly error: NetvscError<NetvscErrorReason> } {
  return { ok: false, error: new NetvscError(e.code, reason, e.message, { cause: e }) };
}

/**
 * vmbus_sendpacket of a zeroed 40-byte struct nvsp_message with flags 0: the host owes no completion
 * (NDIS_VER, NDIS_CONFIG, REVOKE_*). trans_id is not a request id here.
 */
export function sendNvspOneWay(
  env: DriverEnv,
  msg: NvspMessage,
  reason: NetvscErrorReason,
): NetvscResult<void, NetvscErrorReason> {
  const r = env.channel.sendPacket(encodeNvspMessage(msg), { type: VM_PKT.DATA_INBAND, flags: 0 });
  return r.ok ? ok(undefined) : fromVmbus(r.error, reason);
}

/**
 * Send with COMPLETION_REQUESTED and wait for the completion to land in the request's context (the
 * NAPI poll does that, see napi.ts). The kernel waits forever; the model's scheduler reports a host
 * that never answers as ETIMEDOUT.
 */
export function nvspRequest(
  env: DriverEnv,
  msg: NvspMessage,
  what: NvspRequestStep,
): NetvscResult<NvspMessage, NetvscErrorReason> {
  const ctx: RequestCtx = { kind: "init", reply: undefined };
  const r = env.channel.sendPacket(encodeNvspMessage(msg), {
    type: VM_PKT.DATA_INBAND,
    flags: VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
    requestCtx: ctx,
  });
  if (!r.ok) return fromVmbus(r.error, `${what}-send-failed`);
  const w = env.scheduler.runUntil(() => ctx.reply !== undefined, what);
  if (!w.ok) return fromVmbus(w.error, `${what}-no-reply`);
  return ok(ctx.reply!);
}
