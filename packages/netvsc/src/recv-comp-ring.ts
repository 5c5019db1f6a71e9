// The per-channel receive completion ring (struct multi_recv_comp with its recv_comp_data slots):
// netvsc_alloc_recv_comp_ring, recv_comp_slot_avail and the ring half of enq_receive_complete /
// send_recv_completions (drivers/net/hyperv/netvsc.c).

import type { GuestMemory } from "@ivm/memory";
import { recvCompletionRing, recvCompSlotAvail, recvCompSlotsFilled } from "@ivm/netvsc-protocol";

export const RECV_COMP_RING_TAG = "netvsc-recv-comp";

/**
 * recv_section_cnt + 1 slots of 16 bytes, vzalloc'd so the allocation is measured; the slots' contents
 * (tid, status) are private and kept in typed arrays beside it. A tid below 2^53 is kept as a number
 * (no BigInt per completion); a larger one, which only a hostile host sends, beside it as a bigint.
 */
export class RecvCompRing {
  readonly entries: number;
  readonly va: number;
  /** The slot's tid, or −1 when it is in #bigTids. */
  readonly #tids: Float64Array;
  readonly #bigTids: (bigint | undefined)[] = [];
  readonly #status: Uint32Array;
  #first = 0;
  #next = 0;

  private constructor(entries: number, va: number) {
    this.entries = entries;
    this.va = va;
    this.#tids = new Float64Array(entries);
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
    return recvCompSlotsFilled(this.entries, this.#first, this.#next);
  }

  slotAvail(): { readonly filled: number; readonly avail: number } {
    return recvCompSlotAvail(this.entries, this.#first, this.#next);
  }

  /** slotAvail().avail without the object: the slots still free (one always stays empty). */
  get slotsFree(): number {
    return this.entries - recvCompSlotsFilled(this.entries, this.#first, this.#next) - 1;
  }

  /** Queue a completion; the caller checked avail > 0. `tid` is a number below 2^53 or a bigint. */
  push(tid: bigint | number, status: number): void {
    const slot = this.#next;
    if (typeof tid === "number") {
      this.#tids[slot] = tid;
    } else {
      this.#tids[slot] = -1;
      this.#bigTids[slot] = tid;
    }
    this.#status[slot] = status;
    if (++this.#next === this.entries) this.#next = 0;
  }

  /** The oldest queued completion, or undefined when the ring is empty. */
  peek(): { readonly tid: bigint; readonly status: number } | undefined {
    if (this.empty) return undefined;
    const tid = this.firstTid;
    return { tid: typeof tid === "bigint" ? tid : BigInt(tid), status: this.firstStatus };
  }

  get empty(): boolean {
    return this.#first === this.#next;
  }

  /** The oldest completion's tid (the ring must not be empty): a number below 2^53, else a bigint. */
  get firstTid(): number | bigint {
    const t = this.#tids[this.#first]!;
    return t >= 0 ? t : this.#bigTids[this.#first]!;
  }

  /** The oldest completion's status (the ring must not be empty). */
  get firstStatus(): number {
    return this.#status[this.#first]!;
  }

  shift(): void {
    this.#bigTids[this.#first] = undefined;
    if (++this.#first === this.entries) this.#first = 0;
  }
}
