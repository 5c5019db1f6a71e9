import { labFrameSeq, NETVSP_GUEST_MAC, NETVSP_HOST_MAC, writeLabFrame } from "@ivm/netvsc-protocol";
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
  let expectedSeq = -1; // the host numbers its frames; the first one seen sets the base
  // The lengths queued host → guest, in order; rxFrames indexes the next one expected.
  const expectedLengths: number[] = [];
  const previous = nic.onFrame;
  nic.onFrame = (frame) => {
    const want = rxFrames < expectedLengths.length ? expectedLengths[rxFrames] : undefined;
    rxFrames++;
    rxBytes += frame.length;
    const seq = labFrameSeq(frame);
    if (seq >= 0 && expectedSeq < 0) expectedSeq = seq;
    if (seq >= 0 && seq === expectedSeq && frame.length === want) rxVerified++;
    else rxCorrupt++;
    expectedSeq++;
  };
  const pending: number[] = [];
  const flushRx = (): void => {
    if (pending.length === 0) return;
    nic.host.queueRx(pending);
    for (const p of pending) expectedLengths.push(p);
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
  // One lab-frame input and one send option per xmitMore value, reused for every frame.
  const frameInput = { seq: 0, seed: TX_SEED, dstMac: NETVSP_HOST_MAC, srcMac: NETVSP_GUEST_MAC };
  const MORE = { xmitMore: true } as const;
  const LAST = { xmitMore: false } as const;
  try {
    for (let i = 0; i < options.packets; i++) {
      if (toGuest[i]) {
        pending.push(Math.min(pick(Math.min(1500, maxRx), maxRx), maxRx));
        if (pending.length >= 64) flushRx();
        continue;
      }
      const len = Math.min(pick(6091, maxTx), maxTx);
      // netvsc_xmit copies the frame into its skb before it returns, so one buffer serves every frame.
      if (len > txScratch.length) txScratch = new Uint8Array(len);
      // A new view only when the size changes (fixed-size runs reuse one).
      if (frame.length !== len || frame.buffer !== txScratch.buffer) frame = txScratch.subarray(0, len);
      frameInput.seq = txFrames;
      writeLabFrame(frame, frameInput);
      const sendOptions = (i & 7) !== 7 && i !== lastTx ? MORE : LAST;
      for (;;) {
        const verdict = nic.device.send(frame, sendOptions);
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
