/**
 * struct hv_ring_buffer (include/linux/hyperv.h): the 4 KiB control page in front of each ring's
 * data area, shared with the host. Indices are byte offsets into the data area.
 */

/** Byte offsets of the hv_ring_buffer fields; the data area starts after SIZE bytes. */
export const RING_HEADER = {
  WRITE_INDEX: 0,
  READ_INDEX: 4,
  INTERRUPT_MASK: 8,
  PENDING_SEND_SZ: 12,
  /** reserved1[12] occupies 16..63. */
  FEATURE_BITS: 64,
  /** BUILD_BUG_ON(sizeof(struct hv_ring_buffer) != PAGE_SIZE). */
  SIZE: 4096,
} as const;

export type RingHeaderField = Exclude<(typeof RING_HEADER)[keyof typeof RING_HEADER], 4096>;

/** feature_bits.feat_pending_send_sz: the side that sets it honours pending_send_sz signalling. */
export const RING_FEAT_PENDING_SEND_SZ = 1;

/** VMBUS_PKT_TRAILER: the u64 after every packet. */
export const VMBUS_PKT_TRAILER = 8;

/** VMBUS_DEFAULT_MAX_PKT_SIZE: size of the inbound ring's private pkt_buffer. */
export const VMBUS_DEFAULT_MAX_PKT_SIZE = 4096;

/**
 * The trailer value hv_ringbuffer_write appends: (u64)write_index << 32, i.e. a zero low half and
 * the packet's start offset in the high half. Written into `dst` at `at` (8 bytes) little-endian.
 */
export function writeTrailer(dst: Uint8Array, oldWriteIndex: number, at = 0): void {
  dst[at] = 0;
  dst[at + 1] = 0;
  dst[at + 2] = 0;
  dst[at + 3] = 0;
  dst[at + 4] = oldWriteIndex & 0xff;
  dst[at + 5] = (oldWriteIndex >>> 8) & 0xff;
  dst[at + 6] = (oldWriteIndex >>> 16) & 0xff;
  dst[at + 7] = (oldWriteIndex >>> 24) & 0xff;
}
