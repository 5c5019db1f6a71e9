import type { PhysAccess } from "../bounce-types.js";
import { IO_TLB_SEGSIZE } from "../sizing.js";

/** A flat byte range at `base`, the plain Uint8Array fake of the memory interface. */
export class FakePhys implements PhysAccess {
  readonly base: number;
  readonly bytes: Uint8Array;
  reads = 0;
  writes = 0;
  constructor(base: number, size: number) {
    this.base = base;
    this.bytes = new Uint8Array(size);
  }
  private range(addr: number, len: number): number {
    const off = addr - this.base;
    if (off < 0 || off + len > this.bytes.length)
      throw new RangeError(`0x${addr.toString(16)}+${len} out of range`);
    return off;
  }
  readPhys(addr: number, dst: Uint8Array): void {
    const off = this.range(addr, dst.length);
    this.reads++;
    dst.set(this.bytes.subarray(off, off + dst.length));
  }
  writePhys(addr: number, src: Uint8Array): void {
    const off = this.range(addr, src.length);
    this.writes++;
    this.bytes.set(src, off);
  }
}

/** The list[] a pool must hold for a given set of used slots. */
export function expectedList(used: Uint8Array): Uint32Array {
  const list = new Uint32Array(used.length);
  for (let i = used.length - 1; i >= 0; i--) {
    if (used[i]) continue;
    const lastInSegment = (i & (IO_TLB_SEGSIZE - 1)) === IO_TLB_SEGSIZE - 1;
    list[i] = (lastInSegment || i + 1 >= used.length ? 0 : (list[i + 1] ?? 0)) + 1;
  }
  return list;
}

/** A fresh pool's list[]. */
export function freshList(nslabs: number): Uint32Array {
  return expectedList(new Uint8Array(nslabs));
}
