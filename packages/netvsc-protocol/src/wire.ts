// Little-endian field access for the wire formats. Internal: not exported from the package index.

export function view(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Read a u32 at `off`, or 0 when the field lies (partly) past the end. */
export function u32OrZero(dv: DataView, off: number): number {
  return off + 4 <= dv.byteLength ? dv.getUint32(off, true) : 0;
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
