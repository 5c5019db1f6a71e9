/**
 * The ring as bytes. Both sides reach a ring through RingMem: the guest over its double mapping
 * (hv_ringbuffer_init maps [hdr, d1..dn, d1..dn] so the data area appears twice back to back), the
 * host over its view of the GPADL pages. The contract mirrors what that mapping gives: any access
 * of at most dataSize bytes starting at a data offset below dataSize is one linear copy.
 */
import { invariant } from "../errors.js";
import { RING_FEAT_PENDING_SEND_SZ, RING_HEADER, type RingHeaderField } from "../wire/ring-header.js";

export interface RingMem {
  /** Size of the data area in bytes (ring size − 4096); a multiple of 8. */
  readonly dataSize: number;
  /** A u32 of the hv_ring_buffer header page, little-endian. */
  readHeaderU32(field: RingHeaderField): number;
  writeHeaderU32(field: RingHeaderField, value: number): void;
  /** Copies dst.length (≤ dataSize) bytes starting at dataOffset (< dataSize) out of the ring. */
  read(dataOffset: number, dst: Uint8Array): void;
  /** Copies src (≤ dataSize bytes) into the ring at dataOffset (< dataSize); wraps via the double map. */
  write(dataOffset: number, src: Uint8Array): void;
}

/** The access rule every RingMem enforces; a violation is a model bug. */
export function checkRingAccess(dataSize: number, dataOffset: number, length: number): void {
  // The message is built only on failure: this runs for every ring access.
  if (!(Number.isInteger(dataOffset) && dataOffset >= 0 && dataOffset < dataSize && length <= dataSize)) {
    invariant(false, `ring access of ${length} bytes at ${dataOffset} outside a ${dataSize}-byte data area`);
  }
}

/**
 * A ring in plain memory for tests and for composing the layer before @ivm/memory exists: a 4 KiB
 * header and a 2·dataSize data buffer standing in for the double mapping. Writes land in both
 * copies, so reads anywhere in the doubled buffer see what a real double mapping would show.
 */
export class FlatRingMem implements RingMem {
  readonly dataSize: number;
  /** The header page; exposed so tests (and an adversarial host) can poke any byte. */
  readonly header: Uint8Array;
  /** The doubled data area: [0, dataSize) and [dataSize, 2·dataSize) always hold the same bytes. */
  readonly doubled: Uint8Array;
  private readonly headerView: DataView;

  constructor(dataSize: number) {
    invariant(
      Number.isInteger(dataSize) && dataSize > 0 && dataSize % 8 === 0,
      "dataSize must be a positive multiple of 8",
    );
    this.dataSize = dataSize;
    this.header = new Uint8Array(RING_HEADER.SIZE);
    this.doubled = new Uint8Array(2 * dataSize);
    this.headerView = new DataView(this.header.buffer);
  }

  readHeaderU32(field: RingHeaderField): number {
    return this.headerView.getUint32(field, true);
  }

  writeHeaderU32(field: RingHeaderField, value: number): void {
    this.headerView.setUint32(field, value >>> 0, true);
  }

  read(dataOffset: number, dst: Uint8Array): void {
    checkRingAccess(this.dataSize, dataOffset, dst.length);
    dst.set(this.doubled.subarray(dataOffset, dataOffset + dst.length));
  }

  write(dataOffset: number, src: Uint8Array): void {
    const n = this.dataSize;
    checkRingAccess(n, dataOffset, src.length);
    this.doubled.set(src, dataOffset);
    const end = dataOffset + src.length;
    if (end <= n) {
      this.doubled.set(src, dataOffset + n);
    } else {
      // The tail spilled into the second copy; mirror head into the second copy, tail into the first.
      this.doubled.set(src.subarray(0, n - dataOffset), dataOffset + n);
      this.doubled.set(src.subarray(n - dataOffset), 0);
    }
  }

  /** The data area as the host's single mapping sees it (one copy). */
  dataView(): Uint8Array {
    return this.doubled.subarray(0, this.dataSize);
  }
}

/**
 * What hv_ringbuffer_init does to a fresh ring: zero the header page, indices 0, and set
 * feature_bits = 1 (feat_pending_send_sz) in both eras.
 */
export function initRingHeader(mem: RingMem): void {
  // The reserved bytes of the page are not addressable through RingMem; a real implementation zeroes
  // the whole page (memset of HV_HYP_PAGE_SIZE in 6.4+), FlatRingMem starts zeroed.
  mem.writeHeaderU32(RING_HEADER.WRITE_INDEX, 0);
  mem.writeHeaderU32(RING_HEADER.READ_INDEX, 0);
  mem.writeHeaderU32(RING_HEADER.INTERRUPT_MASK, 0);
  mem.writeHeaderU32(RING_HEADER.PENDING_SEND_SZ, 0);
  mem.writeHeaderU32(RING_HEADER.FEATURE_BITS, RING_FEAT_PENDING_SEND_SZ);
}

/**
 * hv_get_bytes_to_write with u32 arithmetic: w ≥ r ? dsize − (w − r) : r − w. Indices are whatever
 * the shared page holds; callers validate them first.
 */
export function bytesToWrite(dataSize: number, writeIndex: number, readIndex: number): number {
  return (writeIndex >= readIndex ? dataSize - (writeIndex - readIndex) : readIndex - writeIndex) >>> 0;
}

/** hv_get_bytes_to_read / hv_pkt_iter_avail: w ≥ r ? w − r : dsize − r + w (u32). */
export function bytesToRead(dataSize: number, writeIndex: number, readIndex: number): number {
  return (writeIndex >= readIndex ? writeIndex - readIndex : dataSize - readIndex + writeIndex) >>> 0;
}

/** Why a shared ring index cannot be used. */
export type RingIndexProblem = "out-of-range" | "misaligned";

/**
 * The model's check on a host-writable index before it is used as an offset. The kernel does no such
 * check (it trusts write_index/read_index); OpenVMM rejects the ring as corrupt, and so does the model
 * by default. Returns undefined when the index is usable.
 */
export function checkRingIndex(dataSize: number, index: number): RingIndexProblem | undefined {
  if (index >= dataSize) return "out-of-range";
  if (index % 8 !== 0) return "misaligned";
  return undefined;
}
