// The host's receive-path traffic source: a queue of frame sizes turned, in order, into RNDIS PACKET
// messages carrying deterministic lab frames (the traffic format of @ivm/netvsc-protocol) (seeded). The message layout is the one a host writes
// into a receive section: header, struct rndis_packet with data_offset 36 and no PPIs, then the frame.

import {
  LAB_FRAME_HEADER_SIZE,
  NETVSP_GUEST_MAC,
  NETVSP_HOST_MAC,
  RNDIS_HEADER_SIZE,
  RNDIS_PACKET_SIZE,
  writeLabFrame,
  writeRndisDataHeader,
} from "@ivm/netvsc-protocol";

/** Bytes of RNDIS framing in front of each received frame (8 + 36). */
export const RX_RNDIS_OVERHEAD: number = RNDIS_HEADER_SIZE + RNDIS_PACKET_SIZE;

export class RxGenerator {
  readonly seed: number;
  /** The largest frame that fits a section with its RNDIS framing. */
  readonly maxFrame: number;
  readonly #sizes: number[] = [];
  #head = 0;
  #seq = 0;
  readonly #scratch: Uint8Array;
  #message: Uint8Array = new Uint8Array(0);
  #payload: Uint8Array = new Uint8Array(0);
  /** The lab-frame input of the frame being built (one object, its seq advanced per frame). */
  readonly #frame: {
    seq: number;
    readonly seed: number;
    readonly dstMac: Uint8Array;
    readonly srcMac: Uint8Array;
  };

  constructor(seed: number, sectionSize: number) {
    this.seed = seed >>> 0;
    this.maxFrame = sectionSize - RX_RNDIS_OVERHEAD;
    if (this.maxFrame < LAB_FRAME_HEADER_SIZE)
      throw new RangeError(`section of ${sectionSize} bytes holds no frame`);
    this.#scratch = new Uint8Array(sectionSize);
    this.#frame = { seq: 0, seed: this.seed, dstMac: NETVSP_GUEST_MAC, srcMac: NETVSP_HOST_MAC };
  }

  /** Frames queued and not yet sent. */
  get pending(): number {
    return this.#sizes.length - this.#head;
  }

  /** Sequence number the next frame will carry. */
  get nextSeq(): number {
    return this.#seq;
  }

  enqueue(sizes: readonly number[]): void {
    for (const s of sizes) {
      if (!Number.isInteger(s) || s < LAB_FRAME_HEADER_SIZE || s > this.maxFrame) {
        throw new RangeError(`rx frame size ${s} outside [${LAB_FRAME_HEADER_SIZE}, ${this.maxFrame}]`);
      }
    }
    for (const s of sizes) this.#sizes.push(s);
  }

  /** Size of the k-th pending frame. */
  sizeAt(k: number): number {
    return this.#sizes[this.#head + k]!;
  }

  /**
   * The RNDIS message for the k-th pending frame, in a scratch buffer reused by the next call (the
   * caller copies it into the shared section at once). Building does not consume the frame.
   */
  build(k: number): Uint8Array {
    const size = this.sizeAt(k);
    const msgLen = RX_RNDIS_OVERHEAD + size;
    const frame = this.#frame;
    frame.seq = this.#seq + k;
    // The RNDIS header and the views of the scratch depend on the size only: made again when it
    // changes (nothing else writes the scratch).
    if (this.#message.length !== msgLen) {
      writeRndisDataHeader(this.#scratch, 0, size);
      this.#message = this.#scratch.subarray(0, msgLen);
      this.#payload = this.#scratch.subarray(RX_RNDIS_OVERHEAD, msgLen);
    }
    writeLabFrame(this.#payload, frame);
    return this.#message;
  }

  /** Consume `n` frames once they are in the ring. */
  commit(n: number): void {
    this.#head += n;
    this.#seq += n;
    if (this.#head > 4096 && this.#head * 2 > this.#sizes.length) {
      this.#sizes.splice(0, this.#head);
      this.#head = 0;
    }
  }

  clear(): void {
    this.#sizes.length = 0;
    this.#head = 0;
  }
}
