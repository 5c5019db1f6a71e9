import { invariant } from "../errors.js";

/** 2^32, for splitting a u64 into two little-endian u32 halves. */
const TWO_POW_32 = 0x1_0000_0000;

/** Every PFN and guest-physical address in the model is below 2^53 (a safe JS integer). */
export const MAX_SAFE_U64_NUMBER: number = Number.MAX_SAFE_INTEGER;

/**
 * Writes a guest-chosen u64 (PFN, GPA) as two u32 halves, low first. Only for values the guest
 * produces, so a value outside [0, 2^53) is a model bug and throws.
 */
export function writeU64Number(view: DataView, offset: number, value: number): void {
  // The message is built only on failure: this runs once per PFN of every GPADL.
  if (!(Number.isSafeInteger(value) && value >= 0)) {
    invariant(false, `u64 value ${value} is not a safe non-negative integer`);
  }
  view.setUint32(offset, value % TWO_POW_32, true);
  view.setUint32(offset + 4, Math.floor(value / TWO_POW_32), true);
}

/**
 * Reads a u64 written by the other side as a number. Returns -1 when the value is 2^53 or more,
 * which the caller turns into a typed error (host bytes never throw).
 */
export function readU64Number(view: DataView, offset: number): number {
  const lo = view.getUint32(offset, true);
  const hi = view.getUint32(offset + 4, true);
  // hi < 2^21 keeps hi * 2^32 + lo below 2^53.
  if (hi >= 0x20_0000) return -1;
  return hi * TWO_POW_32 + lo;
}

/** A little-endian u32 read straight from the bytes, without a DataView per call (hot paths). */
export function readU32(bytes: Uint8Array, offset: number): number {
  return (
    (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>>
    0
  );
}

export function readU16(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! | (bytes[offset + 1]! << 8);
}

export function writeU16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >>> 8) & 0xff;
}

export function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >>> 8) & 0xff;
  bytes[offset + 2] = (value >>> 16) & 0xff;
  bytes[offset + 3] = (value >>> 24) & 0xff;
}

/** writeU64Number straight into the bytes (no DataView per packet). */
export function writeU64NumberAt(bytes: Uint8Array, offset: number, value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) {
    invariant(false, `u64 value ${value} is not a safe non-negative integer`);
  }
  writeU32(bytes, offset, value % TWO_POW_32);
  writeU32(bytes, offset + 4, Math.floor(value / TWO_POW_32));
}

/** readU64Number straight from the bytes: -1 when the value is 2^53 or more. */
export function readU64NumberAt(bytes: Uint8Array, offset: number): number {
  const hi = readU32(bytes, offset + 4);
  if (hi >= 0x20_0000) return -1;
  return hi * TWO_POW_32 + readU32(bytes, offset);
}

// A u64 trans_id as a bigint without a DataView over the packet: through one bound 8-byte scratch.
const U64_SCRATCH = new Uint8Array(8);
const U64_VIEW = new DataView(U64_SCRATCH.buffer);

export function readU64BigInt(bytes: Uint8Array, offset: number): bigint {
  for (let i = 0; i < 8; i++) U64_SCRATCH[i] = bytes[offset + i]!;
  return U64_VIEW.getBigUint64(0, true);
}

export function writeU64BigInt(bytes: Uint8Array, offset: number, value: bigint): void {
  U64_VIEW.setBigUint64(0, value, true);
  for (let i = 0; i < 8; i++) bytes[offset + i] = U64_SCRATCH[i]!;
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Rounds up to a multiple of 8, as the kernel's ALIGN(x, sizeof(u64)). */
export function align8(n: number): number {
  return (n + 7) & ~7;
}

/**
 * Builds the 16-byte guid_t layout the kernel's GUID_INIT produces from the textual form
 * ("f8615163-df3e-46c5-913f-f2d2f965ed0e"): the first three groups little-endian, the rest as is.
 */
export function guidFromString(text: string): Uint8Array {
  const hex = text.replace(/[{}-]/g, "");
  invariant(/^[0-9a-fA-F]{32}$/.test(hex), `not a GUID: ${text}`);
  const out = new Uint8Array(16);
  const byteAt = (i: number): number => Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  for (let i = 0; i < 16; i++) out[i] = byteAt(order[i]!);
  return out;
}

/** Inverse of guidFromString, lower-case without braces. */
export function guidToString(guid: Uint8Array): string {
  invariant(guid.length === 16, "a guid is 16 bytes");
  const order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
  const h = order.map((i) => guid[i]!.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
