import {
  LAB_FRAME_HEADER_SIZE,
  labFrameSeq,
  NETVSP_GUEST_MAC,
  NETVSP_HOST_MAC,
  writeLabFrame,
} from "@ivm/netvsc-protocol";
import { RX_RNDIS_OVERHEAD } from "@ivm/netvsp";
import type { Nic, Vm } from "./vm.js";

export interface TrafficOptions {
  /** Frames in all, both directions together. */
  readonly packets: number;
  readonly seed?: number;
  /** Share of the frames that flow host → guest; default one half. */
  readonly rxShare?: number;
  /** Largest guest → host frame; default 64 KiB. */
  readonly maxTxFrame?: number;
  /** Fixed frame sizes to cycle through instead of the mixed distribution. */
  readonly sizes?: readonly number[];
}

export interface TrafficReport {
  readonly txFrames: number;
  readonly txBytes: number;
  readonly rxQueued: number;
  readonly rxFrames: number;
  readonly rxBytes: number;
  /** Received frames whose bytes, length and sequence all checked out. */
  readonly rxVerified: number;
  readonly rxCorrupt: number;
  /** Sends that found the queue stopped and were retried after guest and host ran. */
  readonly busyRetries: number;
  /** Frames the driver dropped, by reason. */
  readonly txDropped: number;
}

/** xorshift32: reproducible sizes for a seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

const TX_SEED = 0x7e57;

/**
 * Moves `packets` self-checking frames through a NIC: guest → host frames of 64 B to 64 KiB (three in four
 * small enough for a send section, the rest by page buffers) that the host verifies byte for byte, and
 * host → guest frames up to what one receive section holds, verified here as they arrive. Guest and host
 * run interleaved; a stopped queue is retried after they run. Counts come from the driver, the host and
 * the frames themselves.
 */
export function runTraffic(vm: Vm, nic: Nic, options: TrafficOptions): TrafficReport {
  const rand = rng(options.seed ?? 1);
  const rxShare = options.rxShare ?? 0.5;
  const maxTx = options.maxTxFrame ?? 65536;
  const maxRx = (nic.device.sections?.recvSize ?? 1728) - RX_RNDIS_OVERHEAD;
  let txFrames = 0;
  let txBytes = 0;
  let rxQueued = 0;
  let rxFrames = 0;
  let rxBytes = 0;
  let rxVerified = 0;
  let rxCorrupt = 0;
  let busyRetries = 0;
  let txDropped = 0;
  // Frames the host was asked to send, by the sequence number it gives them: with several queues they
  // arrive in the order the channels are polled, so each is matched by its own number (once). The host
  // numbers them consecutively from where it stands, so the lengths go into one array indexed from
  // the first number (length + 1; 0 is "not expected or already seen").
  const firstSeq = nic.host.rxNextSeq;
  const expected = new Int32Array(options.packets);
  const previous = nic.onFrame;
  nic.onFrame = (frame) => {
    rxFrames++;
    rxBytes += frame.length;
    const k = labFrameSeq(frame) - firstSeq;
    // A frame that fails its check has seq -1: k is then below 0 (or a number nobody expects).
    if (k >= 0 && k < expected.length && expected[k] === frame.length + 1) {
      expected[k] = 0;
      rxVerified++;
    } else rxCorrupt++;
  };
  const pending: number[] = [];
  const flushRx = (): void => {
    if (pending.length === 0) return;
    const base = nic.host.rxNextSeq - firstSeq;
    if (base < 0 || base + pending.length > expected.length) {
      throw new Error(
        `runTraffic: the host numbered frames from ${base + firstSeq}, expected ${firstSeq} on`,
      );
    }
    for (let k = 0; k < pending.length; k++) expected[base + k] = pending[k]! + 1;
    nic.host.queueRx(pending);
    rxQueued += pending.length;
    pending.length = 0;
  };
  const pick = (small: number, large: number): number => {
    if (options.sizes) return options.sizes[(txFrames + rxQueued + pending.length) % options.sizes.length]!;
    return rand() < 0.75
      ? 64 + Math.floor(rand() * (small - 63))
      : small + Math.floor(rand() * (large - small + 1));
  };
  // Directions are drawn first so the last guest → host frame is known: the stack never leaves a frame
  // announced with xmit_more without a final one that flushes the batch.
  const toGuest = Array.from({ length: options.packets }, () => rand() < rxShare);
  const lastTx = toGuest.lastIndexOf(false);
  let txScratch = new Uint8Array(0);
  let frame = txScratch;
  // One lab-frame input per use and one send option per xmitMore value, reused for every frame.
  const frameInput = { seq: 0, seed: TX_SEED, dstMac: NETVSP_HOST_MAC, srcMac: NETVSP_GUEST_MAC };
  const nextInput = { seq: 0, seed: TX_SEED, dstMac: NETVSP_HOST_MAC, srcMac: NETVSP_GUEST_MAC };
  const MORE = { xmitMore: true } as const;
  const LAST = { xmitMore: false } as const;
  // xmit_more is per transmit queue (the qdisc hands a batch of one queue to ndo_start_xmit): a frame
  // announces more only if the next guest → host frame goes to the same queue. Lab frames hash on
  // their MACs and sequence number, so the next frame's header tells its queue.
  const nextHeader = new Uint8Array(LAB_FRAME_HEADER_SIZE);
  const nextOnSameQueue = (frame: Uint8Array): boolean => {
    // With one channel (or none attached) every frame goes to queue 0: no header to build.
    const channels = nic.device.channelCount;
    if (channels === undefined || channels.combined < 2) return true;
    nextInput.seq = txFrames + 1;
    writeLabFrame(nextHeader, nextInput);
    return nic.device.queueFor(nextHeader) === nic.device.queueFor(frame);
  };
  try {
    for (let i = 0; i < options.packets; i++) {
      if (toGuest[i]) {
        pending.push(Math.min(pick(Math.min(1500, maxRx), maxRx), maxRx));
        if (pending.length >= 64) flushRx();
        continue;
      }
      const len = Math.min(pick(6091, maxTx), maxTx);
      // netvsc_xmit copies the frame into its skb before it returns, so one buffer serves every frame.
      // A new view only when the size changes (fixed-size runs reuse one).
      if (len > txScratch.length) {
        txScratch = new Uint8Array(len);
        frame = txScratch;
      }
      if (frame.length !== len) frame = txScratch.subarray(0, len);
      frameInput.seq = txFrames;
      writeLabFrame(frame, frameInput);
      for (;;) {
        const xmitMore = (i & 7) !== 7 && i !== lastTx && nextOnSameQueue(frame);
        const verdict = nic.device.send(frame, xmitMore ? MORE : LAST);
        if (verdict === "sent") break;
        if (verdict === "dropped") {
          txDropped++;
          break;
        }
        busyRetries++;
        vm.runIdle();
      }
      txFrames++;
      txBytes += len;
      if ((i & 63) === 63) {
        flushRx();
        vm.runIdle();
      }
    }
    flushRx();
    vm.runIdle();
  } finally {
    nic.onFrame = previous;
  }
  return { txFrames, txBytes, rxQueued, rxFrames, rxBytes, rxVerified, rxCorrupt, busyRetries, txDropped };
}
