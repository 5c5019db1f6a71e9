// Self-checking Ethernet frames for the traffic the model generates: the simulated host sends them on
// the receive path and verifies them on the send path, and a guest (or an app) can build and check the
// same frames without sharing any state with the host. The format is the model's own, not a protocol:
//
//   0  dst MAC (6)   6  src MAC (6)   12  EtherType 0x88b5 (big-endian, IEEE "local experimental")
//   14 seq (u32 LE)  18 frame length (u32 LE)  22 seed (u32 LE)
//   26 payload: bytes cut from the seed's stream (a xorshift32 stream seeded from the seed, 128 KiB of
//      little-endian words), starting at an offset mixed from (seed, seq), wrapping at the stream's end
//
// Built for speed with the guarantees of a checksum and more: the payload is one copy out of a stream
// computed once per seed, and the receiver compares every payload byte against the stream (a flipped
// byte, a double fetch that saw other bytes, a wrong seed or a truncated frame all fail). The generator
// is written out here (rather than taken from pure-rand) because it is part of the format: anything that
// wants to reproduce a payload byte for byte needs exactly this stream.

import { readU32, writeU32 } from "./wire.js";

export const LAB_FRAME_ETHERTYPE = 0x88b5;
export const LAB_FRAME_HEADER_SIZE = 26;

/** The MACs the model uses: 00:15:5d (Microsoft's Hyper-V prefix), host and guest. */
export const NETVSP_HOST_MAC: Uint8Array = Uint8Array.of(0x00, 0x15, 0x5d, 0x00, 0x00, 0x01);
export const NETVSP_GUEST_MAC: Uint8Array = Uint8Array.of(0x00, 0x15, 0x5d, 0x00, 0x00, 0x02);

export interface LabFrameInput {
  readonly seq: number;
  readonly seed: number;
  readonly dstMac?: Uint8Array;
  readonly srcMac?: Uint8Array;
}

export type LabFrameRejectReason =
  | "frame-too-short"
  | "frame-ethertype-wrong"
  | "frame-length-mismatch"
  | "frame-checksum-mismatch";

export type LabFrameCheck =
  | { readonly ok: true; readonly seq: number }
  | { readonly ok: false; readonly reason: LabFrameRejectReason };

function payloadState(seed: number, seq: number): number {
  const s = (Math.imul(seed ^ 0x9e37_79b9, 0x85eb_ca6b) ^ Math.imul((seq + 1) | 0, 0xc2b2_ae35)) >>> 0;
  return s === 0 ? 1 : s;
}

/** Length of each seed's payload stream (a power of two: offsets are masked into it). */
export const LAB_FRAME_STREAM_BYTES: number = 1 << 17;

/** The streams of the seeds seen last (a handful: traffic uses one seed per direction). */
const streams = new Map<number, Uint8Array>();
const MAX_STREAMS = 8;

/** The seed's payload stream: xorshift32 from payloadState(seed, -1), little-endian words. */
export function labFrameStream(seed: number): Uint8Array {
  const key = seed >>> 0;
  if (key === lastSeed && lastStream !== undefined) return lastStream;
  const hit = streams.get(key);
  if (hit !== undefined) {
    lastSeed = key;
    lastStream = hit;
  }
  if (hit !== undefined) return hit;
  const bytes = new Uint8Array(LAB_FRAME_STREAM_BYTES);
  const dv = new DataView(bytes.buffer);
  let s = payloadState(key, -1);
  for (let i = 0; i < LAB_FRAME_STREAM_BYTES; i += 4) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    dv.setUint32(i, s >>> 0, true);
  }
  if (streams.size >= MAX_STREAMS) streams.delete(streams.keys().next().value!);
  streams.set(key, bytes);
  lastSeed = key;
  lastStream = bytes;
  return bytes;
}

/** The stream asked for last: one frame after another uses the same seed. */
let lastSeed = -1;
let lastStream: Uint8Array | undefined;

/** Where frame `seq`'s payload starts in the seed's stream. */
function streamOffset(seed: number, seq: number): number {
  // ≡ 2 (mod 4), as the payload's own offset 26 is: a frame that starts on a 4-byte boundary is then
  // compared word by word.
  return (payloadState(seed >>> 0, seq >>> 0) & (LAB_FRAME_STREAM_BYTES - 1) & ~3) | 2;
}

/** The 32-bit words of the buffers compared last (a stream, a receiver's scratch): views made once. */
let wordsOfStream: Int32Array | undefined;
let wordsOfFrame: Int32Array | undefined;

function wordsOf(cached: Int32Array | undefined, bytes: Uint8Array): Int32Array {
  if (cached !== undefined && cached.buffer === bytes.buffer) return cached;
  return new Int32Array(bytes.buffer, 0, bytes.buffer.byteLength >>> 2);
}

/** Whether frame[at, at + n) equals stream[from, from + n) (from + n within the stream). */
function sameBytes(frame: Uint8Array, at: number, stream: Uint8Array, from: number, n: number): boolean {
  let i = 0;
  // Bytes until the frame reaches a word boundary; if the stream does too, the middle goes by words.
  while (i < n && ((frame.byteOffset + at + i) & 3) !== 0) {
    if (frame[at + i] !== stream[from + i]) return false;
    i++;
  }
  const words = (n - i) >>> 2;
  if (words > 4 && ((stream.byteOffset + from + i) & 3) === 0) {
    const sw = wordsOf(wordsOfStream, stream);
    const fw = wordsOf(wordsOfFrame, frame);
    wordsOfStream = sw;
    wordsOfFrame = fw;
    const f0 = (frame.byteOffset + at + i) >>> 2;
    const s0 = (stream.byteOffset + from + i) >>> 2;
    for (let w = 0; w < words; w++) if (fw[f0 + w] !== sw[s0 + w]) return false;
    i += words * 4;
  }
  for (; i < n; i++) if (frame[at + i] !== stream[from + i]) return false;
  return true;
}

/** FNV-1a over little-endian 32-bit words, then the tail bytes; seeded with the length. */
export function labFrameChecksum(bytes: Uint8Array): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let h = (0x811c_9dc5 ^ bytes.length) >>> 0;
  const words = bytes.length & ~3;
  for (let i = 0; i < words; i += 4) h = Math.imul(h ^ dv.getUint32(i, true), 0x0100_0193);
  for (let i = words; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x0100_0193);
  return h >>> 0;
}

/** Fill all of `dst` with the lab frame (seq, seed); dst.length is the frame length (>= 26). */
export function writeLabFrame(dst: Uint8Array, input: LabFrameInput): void {
  const length = dst.length;
  if (length < LAB_FRAME_HEADER_SIZE) throw new RangeError(`lab frame of ${length} bytes is too short`);
  dst.set(input.dstMac ?? NETVSP_GUEST_MAC, 0);
  dst.set(input.srcMac ?? NETVSP_HOST_MAC, 6);
  dst[12] = LAB_FRAME_ETHERTYPE >>> 8;
  dst[13] = LAB_FRAME_ETHERTYPE & 0xff;
  const seed = input.seed >>> 0;
  const seq = input.seq >>> 0;
  writeU32(dst, 14, seq);
  writeU32(dst, 18, length);
  writeU32(dst, 22, seed);
  const stream = labFrameStream(seed);
  let from = streamOffset(seed, seq);
  // One copy out of the stream per wrap (a frame longer than the stream wraps more than once).
  for (let at = LAB_FRAME_HEADER_SIZE; at < length; ) {
    const n = Math.min(length - at, LAB_FRAME_STREAM_BYTES - from);
    if (n <= 64) for (let i = 0; i < n; i++) dst[at + i] = stream[from + i]!;
    else dst.set(stream.subarray(from, from + n), at);
    at += n;
    from = 0;
  }
}

export function encodeLabFrame(input: LabFrameInput & { readonly length: number }): Uint8Array {
  const buf = new Uint8Array(input.length);
  writeLabFrame(buf, input);
  return buf;
}

const TOO_SHORT: LabFrameCheck = Object.freeze({ ok: false, reason: "frame-too-short" });
const ETHERTYPE_WRONG: LabFrameCheck = Object.freeze({ ok: false, reason: "frame-ethertype-wrong" });
const LENGTH_MISMATCH: LabFrameCheck = Object.freeze({ ok: false, reason: "frame-length-mismatch" });
const PAYLOAD_MISMATCH: LabFrameCheck = Object.freeze({ ok: false, reason: "frame-checksum-mismatch" });

/**
 * Check a frame built by {@link writeLabFrame}: EtherType, embedded length, and every payload byte
 * against the stream of the seed in its header (a mismatch is reported as "frame-checksum-mismatch").
 */
export function verifyLabFrame(frame: Uint8Array): LabFrameCheck {
  const r = checkFrame(frame);
  return r >= 0 ? { ok: true, seq: r } : FAILURES[-1 - r]!;
}

/**
 * The sequence number of a valid lab frame (the checks of {@link verifyLabFrame}), or -1: for
 * receivers that check every frame and need no reason, without a result object per frame.
 */
export function labFrameSeq(frame: Uint8Array): number {
  const r = checkFrame(frame);
  return r >= 0 ? r : -1;
}

const FAILURES: readonly LabFrameCheck[] = [TOO_SHORT, ETHERTYPE_WRONG, LENGTH_MISMATCH, PAYLOAD_MISMATCH];

/** seq (>= 0), or -1 - the index of the failure in FAILURES. */
function checkFrame(frame: Uint8Array): number {
  const length = frame.length;
  if (length < LAB_FRAME_HEADER_SIZE) return -1;
  if (((frame[12]! << 8) | frame[13]!) !== LAB_FRAME_ETHERTYPE) return -2;
  if (readU32(frame, 18) !== length) return -3;
  const seq = readU32(frame, 14);
  const seed = readU32(frame, 22);
  const stream = labFrameStream(seed);
  let from = streamOffset(seed, seq);
  for (let at = LAB_FRAME_HEADER_SIZE; at < length; ) {
    const n = Math.min(length - at, LAB_FRAME_STREAM_BYTES - from);
    if (!sameBytes(frame, at, stream, from, n)) return -4;
    at += n;
    from = 0;
  }
  return seq;
}
