// Self-checking Ethernet frames for the traffic the model generates: the simulated host sends them on
// the receive path and verifies them on the send path, and a guest (or an app) can build and check the
// same frames without sharing any state with the host. The format is the model's own, not a protocol:
//
//   0  dst MAC (6)   6  src MAC (6)   12  EtherType 0x88b5 (big-endian, IEEE "local experimental")
//   14 seq (u32 LE)  18 frame length (u32 LE)  22 seed (u32 LE)
//   26 payload: bytes cut from the seed's stream (a xorshift32 stream seeded from the seed, 128 KiB of
//      little-endian words), starting at an offset mixed from the seed, the MACs and the seq (so a
//      corrupted byte of any of them moves the payload), wrapping at the stream's end
//
// Built for speed with the guarantees of a checksum and more: the payload is one copy out of a stream
// computed once per seed, and the receiver compares every payload byte against the stream (a flipped
// byte, a double fetch that saw other bytes, a wrong seed or a truncated frame all fail). The generator
// is written out here (rather than taken from pure-rand) because it is part of the format: anything that
// wants to reproduce a payload byte for byte needs exactly this stream.

import { type NativeCompare, nativeCompare } from "./byte-compare.js";
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

/** A seed's stream, its word views (made once, with the stream) and its native compare slot. */
interface Stream {
  readonly seed: number;
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
  readonly doubles: Float64Array;
  readonly slot: number;
}

/** The streams of the seeds seen last (a handful: traffic uses one seed per direction). */
const streams = new Map<number, Stream>();
const MAX_STREAMS = 8;

/**
 * The streams' copies for the native compare (one slot per cached stream), made on the first stream;
 * null where WebAssembly cannot run, and then every payload is compared by sameBytes.
 */
let native: NativeCompare | null | undefined;
/** Payload pieces shorter than this are compared in JavaScript (cheaper than copying them out). */
const NATIVE_MIN_BYTES = 192;

/** The seed's payload stream: xorshift32 from payloadState(seed, -1), little-endian words. */
export function labFrameStream(seed: number): Uint8Array {
  return streamOf(seed >>> 0).bytes;
}

/** The stream asked for last: one frame after another uses the same seed. */
let last: Stream | undefined;

function streamOf(key: number): Stream {
  if (last !== undefined && last.seed === key) return last;
  let hit = streams.get(key);
  if (hit === undefined) {
    const bytes = new Uint8Array(LAB_FRAME_STREAM_BYTES);
    const dv = new DataView(bytes.buffer);
    let s = payloadState(key, -1);
    for (let i = 0; i < LAB_FRAME_STREAM_BYTES; i += 4) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      dv.setUint32(i, s >>> 0, true);
    }
    // The oldest stream makes room, and leaves its native slot to the new one.
    let slot = streams.size;
    if (streams.size >= MAX_STREAMS) {
      const oldest = streams.keys().next().value!;
      slot = streams.get(oldest)!.slot;
      streams.delete(oldest);
    }
    hit = {
      seed: key,
      bytes,
      words: new Int32Array(bytes.buffer),
      doubles: new Float64Array(bytes.buffer),
      slot,
    };
    if (native === undefined) native = nativeCompare(MAX_STREAMS, LAB_FRAME_STREAM_BYTES);
    native?.install(slot, bytes);
    streams.set(key, hit);
  }
  last = hit;
  return hit;
}

/** Word offsets a payload can start at: 2^15 (the stream's 2^17 bytes in 4-byte steps). */
const START_BITS = 15;
const START_MASK = (1 << START_BITS) - 1;

/**
 * Fold byte j of the sixteen with value b: b rotated left by 8·j (mod 15) within the 15-bit word index,
 * at FOLD[j·256 + b] (one table load per byte instead of a rotation; 8 KiB, made once).
 */
const FOLD: Uint16Array = (() => {
  const t = new Uint16Array(16 * 256);
  for (let j = 0; j < 16; j++) {
    const r = (8 * j) % START_BITS;
    for (let b = 0; b < 256; b++) t[(j << 8) | b] = ((b << r) | (b >>> (START_BITS - r))) & START_MASK;
  }
  return t;
})();

/**
 * Where the payload of the frame at buf[base, base + 26) starts in the seed's stream: the seed's mix
 * XOR a fold of the sixteen header bytes the compare does not check directly (the two MACs and the
 * seq). Byte j of them is rotated by 8·j (mod 15) within the 15-bit word index, so any change to any
 * one of those bytes — all its 8 bits land on distinct positions — moves the payload's start, and the
 * payload compare then fails: every byte of a frame is covered, the EtherType and length by their own
 * checks, the seed by its stream. Always ≡ 2 (mod 4), as the payload's own offset 26 is: a frame that
 * starts on a 4-byte boundary is then compared word by word.
 */
function payloadStart(buf: Uint8Array, base: number, seed: number): number {
  let fold = payloadState(seed, 0) & START_MASK;
  // Bytes 0–11 (the MACs), then 14–17 (the seq): FOLD's rows are header bytes 0..15 of the fold.
  for (let j = 0; j < 12; j++) fold ^= FOLD[(j << 8) | buf[base + j]!]!;
  for (let j = 12; j < 16; j++) fold ^= FOLD[(j << 8) | buf[base + j + 2]!]!;
  return (fold << 2) | 2;
}

/**
 * The array a frame was compared in last, where it starts in its buffer, and that buffer: a receiver
 * compares in the same scratch frame after frame, and a typed array's byteOffset and buffer are getters
 * that cost more than this check.
 */
let compared: Uint8Array | undefined;
let comparedOffset = 0;
let comparedBuffer: ArrayBufferLike = new ArrayBuffer(0);

/** Word views of the buffer a frame was compared in last (a receiver's scratch): made once per buffer. */
let frameBuffer: ArrayBufferLike | undefined;
let frameWords: Int32Array = new Int32Array(0);
let frameDoubles: Float64Array = new Float64Array(0);

/**
 * Whether buf[at, at + n) equals the stream's bytes [from, from + n) (from + n within the stream),
 * bit for bit. The middle goes by 8-byte words when the two are equally aligned modulo 8, else by
 * 4-byte words when they are modulo 4, else byte by byte.
 */
function sameBytes(buf: Uint8Array, at: number, stream: Stream, from: number, n: number): boolean {
  const sb = stream.bytes;
  let i = 0;
  if (buf !== compared) {
    compared = buf;
    comparedOffset = buf.byteOffset;
    comparedBuffer = buf.buffer;
  }
  const abs = comparedOffset + at;
  // Bytes until the frame reaches a 4-byte boundary.
  while (i < n && ((abs + i) & 3) !== 0) {
    if (buf[at + i] !== sb[from + i]) return false;
    i++;
  }
  if (n - i >= 16 && ((from + i) & 3) === 0) {
    const b = comparedBuffer;
    if (b !== frameBuffer) {
      frameBuffer = b;
      frameWords = new Int32Array(b, 0, b.byteLength >>> 2);
      frameDoubles = new Float64Array(b, 0, b.byteLength >>> 3);
    }
    const fw = frameWords;
    const sw = stream.words;
    if ((((abs + i) ^ (from + i)) & 7) === 0) {
      // Equally aligned modulo 8: at most one 4-byte word to an 8-byte boundary, then doubles.
      if (((abs + i) & 7) !== 0) {
        if (fw[(abs + i) >>> 2] !== sw[(from + i) >>> 2]) return false;
        i += 4;
      }
      const d = (n - i) >>> 3;
      const fd = frameDoubles;
      const sd = stream.doubles;
      const f0 = (abs + i) >>> 3;
      const s0 = (from + i) >>> 3;
      for (let k = 0; k < d; k++) {
        const x = fd[f0 + k]!;
        const y = sd[s0 + k]!;
        // Equal doubles have equal bits except +0 and -0 (told apart by 1 / x); NaNs are never equal,
        // so a NaN pattern is compared as its two 4-byte words.
        if (x === y) {
          if (x === 0 && 1 / x !== 1 / y) return false;
        } else {
          const w = (f0 + k) << 1;
          const v = (s0 + k) << 1;
          if (fw[w] !== sw[v] || fw[w + 1] !== sw[v + 1]) return false;
        }
      }
      i += d << 3;
    }
    const words = (n - i) >>> 2;
    const f0 = (abs + i) >>> 2;
    const s0 = (from + i) >>> 2;
    for (let w = 0; w < words; w++) if (fw[f0 + w] !== sw[s0 + w]) return false;
    i += words << 2;
  }
  for (; i < n; i++) if (buf[at + i] !== sb[from + i]) return false;
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
  // Six bytes each: byte stores beat a typed-array set this small.
  const dstMac = input.dstMac ?? NETVSP_GUEST_MAC;
  const srcMac = input.srcMac ?? NETVSP_HOST_MAC;
  for (let i = 0; i < 6; i++) {
    dst[i] = dstMac[i]!;
    dst[6 + i] = srcMac[i]!;
  }
  dst[12] = LAB_FRAME_ETHERTYPE >>> 8;
  dst[13] = LAB_FRAME_ETHERTYPE & 0xff;
  const seed = input.seed >>> 0;
  const seq = input.seq >>> 0;
  writeU32(dst, 14, seq);
  writeU32(dst, 18, length);
  writeU32(dst, 22, seed);
  const stream = streamOf(seed).bytes;
  let from = payloadStart(dst, 0, seed);
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
  const r = checkFrame(frame, 0, frame.length);
  return r >= 0 ? { ok: true, seq: r } : FAILURES[-1 - r]!;
}

/**
 * The sequence number of a valid lab frame (the checks of {@link verifyLabFrame}), or -1: for
 * receivers that check every frame and need no reason, without a result object per frame.
 */
export function labFrameSeq(frame: Uint8Array): number {
  const r = checkFrame(frame, 0, frame.length);
  return r >= 0 ? r : -1;
}

/**
 * {@link labFrameSeq} of the frame at bytes[offset, offset + length) (within `bytes`), without a view
 * of it: for a receiver that finds the frame inside a larger message.
 */
export function labFrameSeqAt(bytes: Uint8Array, offset: number, length: number): number {
  if (!(offset >= 0 && length >= 0 && offset + length <= bytes.length)) {
    throw new RangeError(`lab frame [${offset}, +${length}) outside ${bytes.length} bytes`);
  }
  const r = checkFrame(bytes, offset, length);
  return r >= 0 ? r : -1;
}

const FAILURES: readonly LabFrameCheck[] = [TOO_SHORT, ETHERTYPE_WRONG, LENGTH_MISMATCH, PAYLOAD_MISMATCH];

/** seq (>= 0) of the frame at buf[base, base + length), or -1 - the index of the failure in FAILURES. */
function checkFrame(buf: Uint8Array, base: number, length: number): number {
  if (length < LAB_FRAME_HEADER_SIZE) return -1;
  if (((buf[base + 12]! << 8) | buf[base + 13]!) !== LAB_FRAME_ETHERTYPE) return -2;
  if (readU32(buf, base + 18) !== length) return -3;
  const seq = readU32(buf, base + 14);
  const seed = readU32(buf, base + 22);
  const stream = streamOf(seed);
  let from = payloadStart(buf, base, seed);
  for (let at = LAB_FRAME_HEADER_SIZE; at < length; ) {
    const n = Math.min(length - at, LAB_FRAME_STREAM_BYTES - from);
    const same =
      n >= NATIVE_MIN_BYTES && native !== null && native !== undefined
        ? native.equal(buf, base + at, stream.slot, from, n)
        : sameBytes(buf, base + at, stream, from, n);
    if (!same) return -4;
    at += n;
    from = 0;
  }
  return seq;
}
