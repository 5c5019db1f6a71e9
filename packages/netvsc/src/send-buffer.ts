// The send buffer's sections: the allocator (netvsc_get_next_send_section / netvsc_free_send_slot) and
// the copy decision of netvsc_send, as pure arithmetic the driver calls. drivers/net/hyperv/netvsc.c.

import { NETVSC_INVALID_INDEX, type NetvscResult, ok } from "@ivm/netvsc-protocol";
import { reject } from "./reasons.js";

/** RNDIS_MAX_PKT_DEFAULT: packets batched into one section until the host's INIT_CMPLT says otherwise. */
export const RNDIS_MAX_PKT_DEFAULT = 8;
/** RNDIS_PKT_ALIGN_DEFAULT: batched packets are padded to this; the host may change it (1 << factor). */
export const RNDIS_PKT_ALIGN_DEFAULT = 8;
/** BITS_PER_LONG on x86-64: the bitmap is an array of 64-bit longs. */
export const SEND_SECTION_MAP_BITS_PER_WORD = 64;

import type { SendSectionRejectReason } from "./reasons.js";

export type { SendSectionRejectReason };

/**
 * send_section_map: one bit per section, ceil(count / 64) longs, kcalloc'd (so all sections start free).
 * Stored as a Uint32Array of 2 halves per long (low half first, as the little-endian long lies in
 * memory); bit i of the map is bit (i % 32) of half (i / 32).
 *
 * Divergence, on purpose: netvsc_free_send_slot flips the bit (sync_change_bit) without looking, so a
 * double free would mark a free section busy again. The model refuses a free of a section that is not
 * in use, or of an index >= count, with a typed rejection, and leaves the map untouched.
 */
export class SendSectionMap {
  readonly count: number;
  readonly #words: Uint32Array;
  #inUse = 0;

  constructor(count: number) {
    if (!Number.isInteger(count) || count < 0 || count > 0xffff_ffff) {
      throw new RangeError(`send section count ${count}`);
    }
    this.count = count;
    this.#words = new Uint32Array(2 * Math.ceil(count / SEND_SECTION_MAP_BITS_PER_WORD));
  }

  /** DIV_ROUND_UP(send_section_cnt, BITS_PER_LONG): longs in the kernel bitmap (170 -> 3). */
  get mapLongs(): number {
    return this.#words.length / 2;
  }

  /** Bytes the kernel kcalloc's for the map. */
  get mapBytes(): number {
    return this.mapLongs * 8;
  }

  get inUse(): number {
    return this.#inUse;
  }

  get freeCount(): number {
    return this.count - this.#inUse;
  }

  isInUse(index: number): boolean {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) return false;
    return ((this.#words[index >>> 5]! >>> (index & 31)) & 1) === 1;
  }

  /**
   * netvsc_get_next_send_section: the lowest clear bit below count, set and returned; or
   * NETVSC_INVALID_INDEX when every section is busy (the caller counts tx_send_full).
   */
  allocate(): number {
    const words = this.#words;
    for (let w = 0; w < words.length; w++) {
      const inv = ~words[w]! >>> 0;
      if (inv === 0) continue;
      const bit = 31 - Math.clz32(inv & -inv);
      const index = w * 32 + bit;
      if (index >= this.count) return NETVSC_INVALID_INDEX;
      words[w] = (words[w]! | (1 << bit)) >>> 0;
      this.#inUse++;
      return index;
    }
    return NETVSC_INVALID_INDEX;
  }

  /** Release a section on send completion (netvsc_free_send_slot), validating the index first. */
  free(index: number): NetvscResult<number, SendSectionRejectReason> {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      return reject("EINVAL", "send-section-index-out-of-range", `send section ${index} >= ${this.count}`);
    }
    const w = index >>> 5;
    const mask = 1 << (index & 31);
    if ((this.#words[w]! & mask) === 0) {
      return reject("EINVAL", "send-section-not-in-use", `send section ${index} is not in use`);
    }
    this.#words[w] = (this.#words[w]! & ~mask) >>> 0;
    this.#inUse--;
    return ok(index);
  }

  /** A copy of the bitmap as the kernel's array of u64 longs (for inspection and tests). */
  snapshotLongs(): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < this.#words.length; i += 2) {
      out.push((BigInt(this.#words[i + 1]!) << 32n) | BigInt(this.#words[i]!));
    }
    return out;
  }
}

/** Byte offset of a section in the send buffer: send_buf + index * section_size (+ pend for batching). */
export function sendSectionOffset(index: number, sectionSize: number, pend = 0): number {
  return index * sectionSize + pend;
}

export interface SendCopyInput {
  /** total_data_buflen of the packet being sent (RNDIS header + PPIs + frame). */
  readonly pktLen: number;
  /** rmsg_size: RNDIS header + PPIs, for the partial-copy branch. */
  readonly rmsgSize: number;
  /** msd_len: bytes already batched in the channel's pending section (0 if none). */
  readonly msdLen: number;
  /** msd.count: packets already batched. */
  readonly msdCount: number;
  readonly sectionSize: number;
  /** net_device->max_pkt (RNDIS_MAX_PKT_DEFAULT until INIT_CMPLT). */
  readonly maxPkt?: number;
  /** net_device->pkt_align (RNDIS_PKT_ALIGN_DEFAULT until INIT_CMPLT). */
  readonly pktAlign?: number;
}

/**
 * Where netvsc_send puts a data packet:
 * - "batch": copy after the pending packets, into their section (msd_len + pktlen + align < size);
 * - "batch-partial": copy only the RNDIS header there (cp_partial), the frame goes as page buffers;
 * - "new-section": needs a fresh section (pktlen + align < size); if allocation fails the packet goes
 *   by page buffers and tx_send_full is counted;
 * - "direct": too big for a section; page buffers (and the pending batch is flushed first).
 * Control messages and XDP_TX never get here: they always go direct.
 */
export type SendCopyDecision = "batch" | "batch-partial" | "new-section" | "direct";

export function sendCopyDecision(input: SendCopyInput): SendCopyDecision {
  const maxPkt = input.maxPkt ?? RNDIS_MAX_PKT_DEFAULT;
  const align = input.pktAlign ?? RNDIS_PKT_ALIGN_DEFAULT;
  const tryBatch = input.msdLen > 0 && input.msdCount < maxPkt;
  if (tryBatch && input.msdLen + input.pktLen + align < input.sectionSize) return "batch";
  if (tryBatch && input.msdLen + input.rmsgSize < input.sectionSize) return "batch-partial";
  if (input.pktLen + align < input.sectionSize) return "new-section";
  return "direct";
}

/** The largest packet that still gets its own section: pktlen + align < size, so size - align - 1. */
export function maxCopyablePacket(sectionSize: number, pktAlign: number = RNDIS_PKT_ALIGN_DEFAULT): number {
  return Math.max(0, sectionSize - pktAlign - 1);
}

/**
 * netvsc_copy_to_send_buf's padding: when more packets will follow (xmit_more), the packet is padded
 * with zeros to a multiple of pkt_align and the padding is added to msg_len and total_data_buflen.
 * pkt_align is assumed a power of two, as the kernel assumes (it masks with pkt_align - 1).
 */
export function sendPadding(totalDataBuflen: number, pktAlign: number, xmitMore: boolean): number {
  const remain = totalDataBuflen & (pktAlign - 1);
  return xmitMore && remain !== 0 ? pktAlign - remain : 0;
}
