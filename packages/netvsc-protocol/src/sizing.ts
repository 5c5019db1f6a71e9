// Buffer and ring sizing: the constants of drivers/net/hyperv/hyperv_net.h and the arithmetic of
// netvsc_init_buf, __netvsc_get_ringparam / netvsc_set_ringparam, netvsc_alloc_recv_comp_ring and the
// queue stop/wake hysteresis of netvsc_send_pkt / netvsc_send_tx_complete.

import { HV_HYP_PAGE_SIZE } from "@ivm/vmbus";
import { type NetvscResult, ok, reject } from "./errors.js";
import { NVSP_PROTOCOL_VERSION, NVSP_STATUS, type RecvBufSection } from "./nvsp.js";

/** The page unit of buffer sizes, GPA ranges and PFNs on the wire: VMBus's HV_HYP_PAGE_SIZE, not declared again. */
export const PAGE_SIZE: typeof HV_HYP_PAGE_SIZE = HV_HYP_PAGE_SIZE;
const MiB = 1024 * 1024;

/** NETVSC_RECEIVE_BUFFER_SIZE: the most a host accepts (31 MiB). */
export const NETVSC_RECEIVE_BUFFER_SIZE: number = 31 * MiB;
/** NETVSC_RECEIVE_BUFFER_SIZE_LEGACY: cap for hosts at NVSP <= v2 (15 MiB). */
export const NETVSC_RECEIVE_BUFFER_SIZE_LEGACY: number = 15 * MiB;
export const NETVSC_RECEIVE_BUFFER_DEFAULT: number = 16 * MiB;
export const NETVSC_SEND_BUFFER_SIZE: number = 15 * MiB;
export const NETVSC_SEND_BUFFER_DEFAULT: number = 1 * MiB;
export const NETVSC_SEND_SECTION_SIZE = 6144;
export const NETVSC_RECV_SECTION_SIZE = 1728;
export const NETVSC_MIN_TX_SECTIONS = 10;
export const NETVSC_MIN_RX_SECTIONS = 10;
/** NETVSC_DEFAULT_TX = 1 MiB / 6144 = 170 (integer division). */
export const NETVSC_DEFAULT_TX: number = Math.floor(NETVSC_SEND_BUFFER_DEFAULT / NETVSC_SEND_SECTION_SIZE);
/** NETVSC_DEFAULT_RX = 16 MiB / 1728 = 9709 (integer division). */
export const NETVSC_DEFAULT_RX: number = Math.floor(NETVSC_RECEIVE_BUFFER_DEFAULT / NETVSC_RECV_SECTION_SIZE);
export const NETVSC_RECEIVE_BUFFER_ID = 0xcafe;
export const NETVSC_SEND_BUFFER_ID = 0;
export const ETH_HLEN = 14;
/** NETVSC_MTU_MIN = ETH_MIN_MTU: also the smallest section size netvsc_init_buf accepts from the host. */
export const NETVSC_MTU_MIN = 68;
export const NETVSC_MTU = 65535;
export const VRSS_CHANNEL_MAX = 64;
export const VRSS_CHANNEL_DEFAULT = 8;
/** sizeof(struct recv_comp_data): u64 tid + u32 status, padded to 8. */
export const RECV_COMP_DATA_SIZE = 16;
/** NAPI_POLL_WEIGHT: completions are flushed early once more than this many are queued. */
export const NAPI_POLL_WEIGHT = 64;
/** RING_AVAIL_PERCENT_HIWATER / LOWATER (netvsc.c). */
export const RING_AVAIL_PERCENT_HIWATER = 20;
export const RING_AVAIL_PERCENT_LOWATER = 10;

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * netvsc_init_buf's receive buffer size: roundup(sections * section_size, PAGE_SIZE), capped at 15 MiB
 * when the negotiated NVSP version is <= v2. Defaults: 9709 * 1728 = 16,777,152 -> 16,777,216.
 */
export function recvBufferBytes(sections: number, sectionSize: number, nvspVersion: number): number {
  const size = roundUp(sections * sectionSize, PAGE_SIZE);
  return nvspVersion <= NVSP_PROTOCOL_VERSION.V2 ? Math.min(size, NETVSC_RECEIVE_BUFFER_SIZE_LEGACY) : size;
}

/** The send buffer: round_up(sections * section_size, PAGE_SIZE). Defaults: 170 * 6144 = 1,044,480. */
export function sendBufferBytes(sections: number, sectionSize: number): number {
  return roundUp(sections * sectionSize, PAGE_SIZE);
}

export type BufferSetupRejectReason =
  | "recv-buf-status-not-success"
  | "recv-buf-section-count-invalid"
  | "recv-buf-section-offset-invalid"
  | "recv-section-size-too-small"
  | "recv-sections-exceed-buffer"
  | "send-buf-status-not-success"
  | "send-section-size-too-small";

export interface BufferLayout {
  readonly sectionSize: number;
  readonly sectionCount: number;
}

/**
 * netvsc_init_buf's checks of SEND_RECV_BUF_COMPLETE ("hv_netvsc: Add validation for untrusted Hyper-V
 * values", 44144185951a): status SUCCESS, exactly one section at offset 0, sub_alloc_size >=
 * NETVSC_MTU_MIN (68), and size * count <= buf_size computed in 64 bits so it cannot wrap. Every
 * failure is -EINVAL and leads to the cleanup path (revoke, teardown).
 */
export function validateRecvBufComplete(
  msg: { readonly status: number; readonly numSections: number; readonly section: RecvBufSection },
  recvBufSize: number,
): NetvscResult<BufferLayout, BufferSetupRejectReason> {
  if (msg.status !== NVSP_STATUS.SUCCESS) {
    return reject("EINVAL", "recv-buf-status-not-success", `receive buffer status ${msg.status}`);
  }
  if (msg.numSections !== 1) {
    return reject("EINVAL", "recv-buf-section-count-invalid", `${msg.numSections} receive sections`);
  }
  if (msg.section.offset !== 0) {
    return reject(
      "EINVAL",
      "recv-buf-section-offset-invalid",
      `receive section offset ${msg.section.offset}`,
    );
  }
  const sectionSize = msg.section.subAllocSize;
  const sectionCount = msg.section.numSubAllocs;
  if (sectionSize < NETVSC_MTU_MIN) {
    return reject("EINVAL", "recv-section-size-too-small", `invalid recv_section_size ${sectionSize}`);
  }
  // Two u32s multiplied as u64 in the kernel; exact in bigint here (the product can exceed 2^53).
  if (BigInt(sectionSize) * BigInt(sectionCount) > BigInt(recvBufSize)) {
    return reject(
      "EINVAL",
      "recv-sections-exceed-buffer",
      `${sectionCount} x ${sectionSize} > ${recvBufSize}`,
    );
  }
  return ok({ sectionSize, sectionCount });
}

/**
 * netvsc_init_buf's checks of SEND_SEND_BUF_COMPLETE: status SUCCESS and section_size >= 68; the guest
 * then derives count = buf_size / section_size (integer division; the remainder is unused).
 */
export function validateSendBufComplete(
  msg: { readonly status: number; readonly sectionSize: number },
  sendBufSize: number,
): NetvscResult<BufferLayout, BufferSetupRejectReason> {
  if (msg.status !== NVSP_STATUS.SUCCESS) {
    return reject("EINVAL", "send-buf-status-not-success", `send buffer status ${msg.status}`);
  }
  if (msg.sectionSize < NETVSC_MTU_MIN) {
    return reject("EINVAL", "send-section-size-too-small", `invalid send_section_size ${msg.sectionSize}`);
  }
  return ok({ sectionSize: msg.sectionSize, sectionCount: Math.floor(sendBufSize / msg.sectionSize) });
}

/**
 * The per-channel receive completion ring (multi_recv_comp): recv_section_cnt + 1 entries, one always
 * empty, of 16 bytes each; vzalloc'd per open channel. Defaults: 9710 entries, 155,360 bytes.
 */
export function recvCompletionRing(recvSectionCount: number): {
  readonly entries: number;
  readonly bytes: number;
} {
  const entries = recvSectionCount + 1;
  return { entries, bytes: entries * RECV_COMP_DATA_SIZE };
}

/** recv_comp_slot_avail: how many completions are queued and how many more fit (one slot stays empty). */
export function recvCompSlotAvail(
  entries: number,
  first: number,
  next: number,
): { readonly filled: number; readonly avail: number } {
  const filled = recvCompSlotsFilled(entries, first, next);
  return { filled, avail: entries - filled - 1 };
}

/** recv_comp_slot_avail's `filled` alone (the free count is entries − filled − 1), without an object. */
export function recvCompSlotsFilled(entries: number, first: number, next: number): number {
  return next >= first ? next - first : entries - first + next;
}

export interface RingParam {
  readonly rxMaxPending: number;
  readonly txMaxPending: number;
}

/**
 * __netvsc_get_ringparam: the ethtool maxima, from the negotiated section sizes (host values). With
 * the default sizes: rx 31 MiB / 1728 = 18,811 (15 MiB / 1728 = 9102 at NVSP <= v2), tx 15 MiB / 6144 =
 * 2560.
 */
export function ringParamMax(
  nvspVersion: number,
  recvSectionSize: number,
  sendSectionSize: number,
): RingParam {
  const maxBuf =
    nvspVersion <= NVSP_PROTOCOL_VERSION.V2 ? NETVSC_RECEIVE_BUFFER_SIZE_LEGACY : NETVSC_RECEIVE_BUFFER_SIZE;
  return {
    rxMaxPending: Math.floor(maxBuf / recvSectionSize),
    txMaxPending: Math.floor(NETVSC_SEND_BUFFER_SIZE / sendSectionSize),
  };
}

/**
 * netvsc_set_ringparam's clamp_t(u32, requested, 10, max). clamp is min(max(v, lo), hi), so when a host
 * section size makes max < 10 the result is max.
 */
export function clampRingParam(requested: number, max: number, min: number = NETVSC_MIN_RX_SECTIONS): number {
  return Math.min(Math.max(requested, min), max);
}

/** netvsc_send_pkt stops the queue after a send when less than 10 % of the ring is free. */
export function shouldStopQueue(ringAvailPercent: number): boolean {
  return ringAvailPercent < RING_AVAIL_PERCENT_LOWATER;
}

/** netvsc_send_tx_complete wakes a stopped queue above 20 % free, or when nothing is outstanding. */
export function shouldWakeQueue(ringAvailPercent: number, queueSends: number): boolean {
  return ringAvailPercent > RING_AVAIL_PERCENT_HIWATER || queueSends < 1;
}
