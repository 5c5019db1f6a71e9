// Self-checking Ethernet frames for the traffic the model generates: the simulated host sends them on
// the receive path and verifies them on the send path, and a guest (or an app) can build and check the
// same frames without sharing any state with the host. The format is the model's own, not a protocol:
//
//   0  dst MAC (6)   6  src MAC (6)   12  EtherType 0x88b5 (big-endian, IEEE "local experimental")
//   14 seq (u32 LE)  18 frame length (u32 LE)  22 checksum of bytes [26, length) (u32 LE)
//   26 payload: a xorshift32 stream seeded from (seed, seq), little-endian words, cut to length
//
// The generator is written out here (rather than taken from pure-rand) because it is part of the
// format: anything that wants to reproduce a payload byte for byte needs exactly this stream.

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
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  dv.setUint16(12, LAB_FRAME_ETHERTYPE, false);
  dv.setUint32(14, input.seq >>> 0, true);
  dv.setUint32(18, length, true);
  let s = payloadState(input.seed, input.seq);
  const end = length - ((length - LAB_FRAME_HEADER_SIZE) & 3);
  let i = LAB_FRAME_HEADER_SIZE;
  for (; i < end; i += 4) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    dv.setUint32(i, s >>> 0, true);
  }
  if (i < length) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    for (let b = 0; i < length; i++, b += 8) dst[i] = (s >>> b) & 0xff;
  }
  dv.setUint32(22, labFrameChecksum(dst.subarray(LAB_FRAME_HEADER_SIZE)), true);
}

export function encodeLabFrame(input: LabFrameInput & { readonly length: number }): Uint8Array {
  const buf = new Uint8Array(input.length);
  writeLabFrame(buf, input);
  return buf;
}

/** Check a frame built by {@link writeLabFrame}: EtherType, embedded length and checksum. */
export function verifyLabFrame(frame: Uint8Array): LabFrameCheck {
  if (frame.length < LAB_FRAME_HEADER_SIZE) return { ok: false, reason: "frame-too-short" };
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (dv.getUint16(12, false) !== LAB_FRAME_ETHERTYPE) return { ok: false, reason: "frame-ethertype-wrong" };
  if (dv.getUint32(18, true) !== frame.length) return { ok: false, reason: "frame-length-mismatch" };
  if (dv.getUint32(22, true) !== labFrameChecksum(frame.subarray(LAB_FRAME_HEADER_SIZE))) {
    return { ok: false, reason: "frame-checksum-mismatch" };
  }
  return { ok: true, seq: dv.getUint32(14, true) };
}
