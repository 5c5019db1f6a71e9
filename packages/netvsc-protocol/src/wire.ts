// Little-endian field access for the wire formats. Internal: not exported from the package index.

// Little-endian fields straight from the bytes: no DataView per message (these run once per packet).

export function readU32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

export function readU16(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8);
}

// A u64 as a bigint through one bound 8-byte scratch, not a DataView over each message.
const U64_SCRATCH = new Uint8Array(8);
const U64_VIEW = new DataView(U64_SCRATCH.buffer);

export function readU64(b: Uint8Array, off: number): bigint {
  for (let i = 0; i < 8; i++) U64_SCRATCH[i] = b[off + i]!;
  return U64_VIEW.getBigUint64(0, true);
}

export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

export function writeU16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
}

/** Read a u32 at `off`, or 0 when the field lies (partly) past the end. */
export function u32OrZero(b: Uint8Array, off: number): number {
  return off + 4 <= b.length ? readU32(b, off) : 0;
}

/** Throws a RangeError for values the C field could not hold: a bug in the caller, not host input. */
export function checkU32(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`${name} is not a u32: ${v}`);
  return v;
}

export function checkU16(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${name} is not a u16: ${v}`);
  return v;
}

export function checkU64(name: string, v: bigint): bigint {
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`${name} is not a u64: ${v}`);
  return v;
}
