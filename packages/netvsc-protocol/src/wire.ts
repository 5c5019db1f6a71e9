// Little-endian field access for the wire formats. Internal: not exported from the package index.

// The little-endian reads and writes are VMBus's (one copy for every wire format of the model).
import { readU32 } from "@ivm/vmbus";

export { readU16, readU32, readU64BigInt as readU64, writeU16, writeU32 } from "@ivm/vmbus";

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
