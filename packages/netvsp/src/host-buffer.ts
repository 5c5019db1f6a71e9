// The host's bookkeeping of the guest's buffers: bounds-checked sub-ranges of a mapped GPADL (OpenVMM's
// PagedRange::try_subrange) and the receive buffer's sub-allocation states (OpenVMM's RxBuffers in
// netvsp/src/rx_bufs.rs: one state per sub-allocation, double use rejected).

import { type NetvscResult, ok, reject } from "@ivm/netvsc-protocol";
import type { HostGpadlView } from "./ports.js";

/**
 * try_subrange: [offset, offset + len) inside the mapped GPADL. Written so nothing can wrap: both
 * inputs come from the guest (a section index times the section size, and a u32 size).
 */
export function fitsInView(view: HostGpadlView, offset: number, len: number): boolean {
  return (
    Number.isSafeInteger(offset) &&
    Number.isSafeInteger(len) &&
    offset >= 0 &&
    len >= 0 &&
    offset <= view.size &&
    len <= view.size - offset
  );
}

export type RecvSectionRejectReason =
  | "sub-allocation-out-of-range"
  | "sub-allocation-in-use"
  | "sub-allocation-not-in-use";

/**
 * The receive buffer's sub-allocations. The first `controlCount` are kept for RNDIS control responses
 * (OpenVMM reserves RX_RESERVED_CONTROL_BUFFERS the same way) so a flood of data cannot starve the
 * init handshake; the rest carry frames. Allocation is next-fit within each class, O(1) amortised
 * while most sections are free, which is the steady state of an honest guest.
 */
export class RecvSections {
  readonly count: number;
  readonly controlCount: number;
  readonly #state: Uint8Array;
  #inUseControl = 0;
  #inUseData = 0;
  #cursorControl = 0;
  #cursorData: number;

  constructor(count: number, controlCount: number) {
    if (!Number.isInteger(count) || count < 2) throw new RangeError(`receive sections ${count} < 2`);
    if (!Number.isInteger(controlCount) || controlCount < 1 || controlCount >= count) {
      throw new RangeError(`control sections ${controlCount} of ${count}`);
    }
    this.count = count;
    this.controlCount = controlCount;
    this.#state = new Uint8Array(count);
    this.#cursorData = controlCount;
  }

  get inUse(): number {
    return this.#inUseControl + this.#inUseData;
  }

  get freeData(): number {
    return this.count - this.controlCount - this.#inUseData;
  }

  get freeControl(): number {
    return this.controlCount - this.#inUseControl;
  }

  isInUse(index: number): boolean {
    return Number.isInteger(index) && index >= 0 && index < this.count && this.#state[index] === 1;
  }

  /** A free data section, marked in use; -1 when none is free. */
  allocateData(): number {
    if (this.freeData === 0) return -1;
    const lo = this.controlCount;
    const span = this.count - lo;
    let i = this.#cursorData;
    for (let n = 0; n < span; n++) {
      if (this.#state[i] === 0) {
        this.#state[i] = 1;
        this.#inUseData++;
        this.#cursorData = i + 1 < this.count ? i + 1 : lo;
        return i;
      }
      i = i + 1 < this.count ? i + 1 : lo;
    }
    return -1;
  }

  /** A free control section, marked in use; -1 when none is free. */
  allocateControl(): number {
    if (this.freeControl === 0) return -1;
    let i = this.#cursorControl;
    for (let n = 0; n < this.controlCount; n++) {
      if (this.#state[i] === 0) {
        this.#state[i] = 1;
        this.#inUseControl++;
        this.#cursorControl = i + 1 < this.controlCount ? i + 1 : 0;
        return i;
      }
      i = i + 1 < this.controlCount ? i + 1 : 0;
    }
    return -1;
  }

  /** Mark a specific section in use; a section already in use is refused (SubAllocationInUse). */
  claim(index: number): NetvscResult<number, RecvSectionRejectReason> {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      return reject("EINVAL", "sub-allocation-out-of-range", `sub-allocation ${index} >= ${this.count}`);
    }
    if (this.#state[index] === 1) {
      return reject("EINVAL", "sub-allocation-in-use", `sub-allocation ${index} is already in use`);
    }
    this.#state[index] = 1;
    if (index < this.controlCount) this.#inUseControl++;
    else this.#inUseData++;
    return ok(index);
  }

  /** Return a section; releasing one that is not in use is refused and changes nothing. */
  release(index: number): NetvscResult<number, RecvSectionRejectReason> {
    const problem = this.free(index);
    if (problem === "sub-allocation-out-of-range") {
      return reject("EINVAL", problem, `sub-allocation ${index} >= ${this.count}`);
    }
    if (problem !== null) return reject("EINVAL", problem, `sub-allocation ${index} is not in use`);
    return ok(index);
  }

  /** release() without a result object: null when the section was returned, else why it was not. */
  free(index: number): "sub-allocation-out-of-range" | "sub-allocation-not-in-use" | null {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) return "sub-allocation-out-of-range";
    if (this.#state[index] === 0) return "sub-allocation-not-in-use";
    this.#state[index] = 0;
    if (index < this.controlCount) this.#inUseControl--;
    else this.#inUseData--;
    return null;
  }
}
