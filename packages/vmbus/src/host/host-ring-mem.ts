/**
 * The host's RingMem: the ring's pages as the GPADL named them, reached through the host view of guest
 * memory (visibility-gated: a page the guest has not made host-visible is refused, invariant I2). The
 * host has no double mapping, so an access that runs past the end of the data area is split in two
 * copies, and an access that spans pages is split at every break in the PFN list.
 */
import type { HostView } from "@ivm/hypercall";
import { invariant } from "../errors.js";
import { checkRingAccess, type RingMem } from "../ring/ring-mem.js";
import { HV_HYP_PAGE_SIZE } from "../wire/gpadl.js";
import type { RingHeaderField } from "../wire/ring-header.js";

/**
 * What the host needs of its view of guest memory (HostView, or a wrapper an adversarial host adds).
 * The word accessors are optional: without them a header field is a read or write of four bytes.
 */
export type HostMemoryAccess = Pick<HostView, "read" | "write"> &
  Partial<Pick<HostView, "readU32" | "writeU32">>;

export class HostRingMem implements RingMem {
  readonly dataSize: number;
  private readonly view: HostMemoryAccess;
  /** PFNs of the ring: [header, data 0 .. n−2]. */
  private readonly pfns: Float64Array;
  /** The header page's guest-physical address. */
  private readonly headerGpa: number;
  private readonly u32 = new Uint8Array(4);
  private readonly u32View = new DataView(this.u32.buffer);

  constructor(view: HostMemoryAccess, pfns: Float64Array) {
    invariant(pfns.length >= 2, "a ring needs a header page and a data page");
    this.view = view;
    this.pfns = pfns;
    this.dataSize = (pfns.length - 1) * HV_HYP_PAGE_SIZE;
    this.headerGpa = pfns[0]! * HV_HYP_PAGE_SIZE;
  }

  readHeaderU32(field: RingHeaderField): number {
    if (this.view.readU32 !== undefined) return this.view.readU32(this.headerGpa + field);
    this.view.read(this.headerGpa + field, this.u32);
    return this.u32View.getUint32(0, true);
  }

  writeHeaderU32(field: RingHeaderField, value: number): void {
    if (this.view.writeU32 !== undefined) {
      this.view.writeU32(this.headerGpa + field, value >>> 0);
      return;
    }
    this.u32View.setUint32(0, value >>> 0, true);
    this.view.write(this.headerGpa + field, this.u32);
  }

  read(dataOffset: number, dst: Uint8Array): void {
    checkRingAccess(this.dataSize, dataOffset, dst.length);
    const first = Math.min(dst.length, this.dataSize - dataOffset);
    // Views only for the pieces of a wrapping access (most accesses are one piece).
    this.span(dataOffset, first === dst.length ? dst : dst.subarray(0, first), false);
    if (first < dst.length) this.span(0, dst.subarray(first), false);
  }

  write(dataOffset: number, src: Uint8Array): void {
    checkRingAccess(this.dataSize, dataOffset, src.length);
    const first = Math.min(src.length, this.dataSize - dataOffset);
    this.span(dataOffset, first === src.length ? src : src.subarray(0, first), true);
    if (first < src.length) this.span(0, src.subarray(first), true);
  }

  /** One copy per run of consecutive PFNs inside [offset, offset + buf.length) of the data area. */
  private span(offset: number, buf: Uint8Array, write: boolean): void {
    let done = 0;
    while (done < buf.length) {
      const at = offset + done;
      let page = Math.floor(at / HV_HYP_PAGE_SIZE);
      const startPfn = this.pfns[1 + page]!;
      let end = (page + 1) * HV_HYP_PAGE_SIZE;
      // Extend over physically consecutive pages: one host copy for a contiguous ring.
      while (end < offset + buf.length && this.pfns[2 + page] === this.pfns[1 + page]! + 1) {
        page++;
        end += HV_HYP_PAGE_SIZE;
      }
      const n = Math.min(end, offset + buf.length) - at;
      const gpa = startPfn * HV_HYP_PAGE_SIZE + (at % HV_HYP_PAGE_SIZE);
      const part = done === 0 && n === buf.length ? buf : buf.subarray(done, done + n);
      if (write) this.view.write(gpa, part);
      else this.view.read(gpa, part);
      done += n;
    }
  }
}
