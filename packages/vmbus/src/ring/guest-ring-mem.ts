/**
 * The guest's RingMem: every access goes through the MMU at the ring's double-mapped virtual address
 * (hv_ringbuffer_init maps [hdr, d1..dn−1, d1..dn−1]), so a packet that wraps the ring end is one
 * linear copy, exactly as the kernel's memcpy sees it, and the MMU's alias rules apply to every byte
 * (a ring mapped through the wrong alias faults instead of silently working).
 */
import type { Mmu } from "@ivm/memory";
import { invariant } from "../errors.js";
import { RING_HEADER, type RingHeaderField } from "../wire/ring-header.js";
import { checkRingAccess, type RingMem } from "./ring-mem.js";

export class GuestRingMem implements RingMem {
  readonly dataSize: number;
  /** Start of the 2n−1 page mapping (the header page). */
  readonly va: number;
  private readonly mmu: Mmu;

  /** `pages` is n, the ring's size in pages including the header page. */
  constructor(mmu: Mmu, va: number, pages: number) {
    invariant(Number.isInteger(pages) && pages >= 2, "a ring needs a header page and a data page");
    this.mmu = mmu;
    this.va = va;
    this.dataSize = (pages - 1) * RING_HEADER.SIZE;
  }

  // One translation and no copy per header word (the MMU's u32 access; same alias rules and faults).
  readHeaderU32(field: RingHeaderField): number {
    return this.mmu.readU32(this.va + field);
  }

  writeHeaderU32(field: RingHeaderField, value: number): void {
    this.mmu.writeU32(this.va + field, value >>> 0);
  }

  read(dataOffset: number, dst: Uint8Array): void {
    checkRingAccess(this.dataSize, dataOffset, dst.length);
    this.mmu.read(this.va + RING_HEADER.SIZE + dataOffset, dst);
  }

  write(dataOffset: number, src: Uint8Array): void {
    checkRingAccess(this.dataSize, dataOffset, src.length);
    this.mmu.write(this.va + RING_HEADER.SIZE + dataOffset, src);
  }
}
