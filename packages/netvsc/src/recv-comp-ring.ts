// The per-channel receive completion ring (struct multi_recv_comp with its recv_comp_data slots):
// netvsc_alloc_recv_comp_ring, recv_comp_slot_avail and the ring half of enq_receive_complete /
// send_recv_completions (drivers/net/hyperv/netvsc.c).

import type { GuestMemory } from "@ivm/memory";
import { recvCompletionRing, recvCompSlotAvail } from "@ivm/netvsc-protocol";

export const RECV_COMP_RING_TAG = "netvsc-recv-comp";

/**
 * recv_section_cnt + 1 slots of 16 bytes, vzalloc'd so the allocation is measured; the slots' contents
 * (tid, status) are private and kept in typed arrays beside it.
 */
export class RecvCompRing {
  readonly entries: number;
  readonly va: number;
  readonly #tids: BigUint64Array;
  readonly #status: Uint32Array;
  #first = 0;
  #next = 0;

  private constructor(entries: number, va: number) {
    this.entries = entries;
    this.va = va;
    this.#tids = new BigUint64Array(entries);
    this.#status = new Uint32Array(entries);
  }

  /** netvsc_alloc_recv_comp_ring: null when vzalloc fails (-ENOMEM). */
  static alloc(memory: GuestMemory, recvSectionCount: number): RecvCompRing | null {
    const { entries, bytes } = recvCompletionRing(recvSectionCount);
    const va = memory.vmalloc.vzalloc(bytes, { tag: RECV_COMP_RING_TAG });
    return va === null ? null : new RecvCompRing(entries, va);
  }

  free(memory: GuestMemory): void {
    memory.vmalloc.vfree(this.va);
  }

  get pending(): number {
    return recvCompSlotAvail(this.entries, this.#first, this.#next).filled;
  }

  slotAvail(): { readonly filled: number; readonly avail: number } {
    return recvCompSlotAvail(this.entries, this.#first, this.#next);
  }

  /** Queue a completion; the caller checked avail > 0. */
  push(tid: bigint, status: number): void {
    this.#tids[this.#next] = tid;
    this.#status[this.#next] = status;
    if (++this.#next === this.entries) this.#next = 0;
  }

  /** The oldest queued completion, or undefined when the ring is empty. */
  peek(): { readonly tid: bigint; readonly status: number } | undefined {
    if (this.#first === this.#next) return undefined;
    return { tid: this.#tids[this.#first]!, status: this.#status[this.#first]! };
  }

  shift(): void {
    if (++this.#first === this.entries) this.#first = 0;
  }
}
