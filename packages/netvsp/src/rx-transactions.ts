// The host's table of transfer-page packets the guest has not completed yet, keyed by the trans_id the
// host gave each one (OpenVMM keeps the same per-queue map of receive ids). The ids are a counter, so
// a power-of-two table indexed by the id's low bits spreads them evenly; records are chained through
// their own `next` field, so inserting and removing allocates nothing (a Map with integer keys rehashes
// as entries come and go). The table grows only when it holds more records than it has slots.

/** One transfer-page packet the guest holds: what its completion releases. */
export interface RxTransaction {
  /** The trans_id the packet went out with (a number: the host's counter stays below 2^53). */
  tid: number;
  /** The next record in the same slot of the table. */
  next: RxTransaction | null;
  /** The queue the transfer-page packet went out on (its completion must come back on it). */
  queue: number;
  /** The receive sections it carries: the first `count` of its own array (reused with the record). */
  readonly sections: number[];
  count: number;
  frames: number;
  bytes: number;
}

const INITIAL_SLOTS = 64;

/** A fresh record (the free list's refill when no completed one is left to reuse). */
export function newRxTransaction(tid = 0): RxTransaction {
  return { tid, next: null, queue: 0, sections: [], count: 0, frames: 0, bytes: 0 };
}

export class RxTransactionTable {
  #slots: (RxTransaction | null)[] = new Array<RxTransaction | null>(INITIAL_SLOTS).fill(null);
  #mask = INITIAL_SLOTS - 1;
  #size = 0;

  /** Records in the table. */
  get size(): number {
    return this.#size;
  }

  /** The record of `tid`, if it is outstanding. */
  get(tid: number): RxTransaction | undefined {
    let t = this.#slots[tid & this.#mask] ?? null;
    while (t !== null && t.tid !== tid) t = t.next;
    return t ?? undefined;
  }

  /** Adds `t` under its tid (replacing a record of the same tid). */
  set(t: RxTransaction): void {
    this.delete(t.tid);
    if (this.#size >= this.#slots.length) this.#grow();
    const slot = t.tid & this.#mask;
    t.next = this.#slots[slot] ?? null;
    this.#slots[slot] = t;
    this.#size++;
  }

  /** Removes the record of `tid`; whether there was one. */
  delete(tid: number): boolean {
    const slot = tid & this.#mask;
    let prev: RxTransaction | null = null;
    let t = this.#slots[slot] ?? null;
    while (t !== null && t.tid !== tid) {
      prev = t;
      t = t.next;
    }
    if (t === null) return false;
    if (prev === null) this.#slots[slot] = t.next;
    else prev.next = t.next;
    t.next = null;
    this.#size--;
    return true;
  }

  clear(): void {
    this.#slots.fill(null);
    this.#size = 0;
  }

  #grow(): void {
    const old = this.#slots;
    this.#slots = new Array<RxTransaction | null>(old.length * 2).fill(null);
    this.#mask = this.#slots.length - 1;
    for (let head of old) {
      while (head !== null) {
        const t: RxTransaction = head;
        head = t.next;
        const slot = t.tid & this.#mask;
        t.next = this.#slots[slot] ?? null;
        this.#slots[slot] = t;
      }
    }
  }
}
