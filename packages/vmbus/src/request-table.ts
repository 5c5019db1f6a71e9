/**
 * The guest-owned request-id table: mirrors struct vmbus_requestor with vmbus_next_request_id and
 * __vmbus_request_addr_match (drivers/hv/channel.c). Ids are slot + 1 (0 is what Hyper-V uses for
 * unsolicited messages), free slots form a LIFO list threaded through the slot array, and a
 * completion is honoured only for an id that is outstanding (invariant I6). Everything else is a
 * VMBUS_RQST_ERROR: rejected, counted, never thrown.
 */
import { err, invariant, ok, type RequestRejectReason, type Result } from "./errors.js";

export type RequestRejectCounters = Record<RequestRejectReason, number>;

const ZERO_ID = -1;
const OUT_OF_RANGE = -2;

export class RequestTable<T> {
  readonly size: number;
  /** Completions rejected, by reason; their sum is the number of VMBUS_RQST_ERROR results. */
  readonly rejected: RequestRejectCounters = {
    "zero-id": 0,
    "out-of-range": 0,
    "not-outstanding": 0,
    mismatch: 0,
  };
  /** Allocation attempts refused because every slot was in use. */
  fullCount = 0;
  /**
   * req_arr, stored as `next ^ (slot + 1)`: a zero-filled array reads as the kernel's initial chain
   * (slot i → i + 1), so opening a channel with a 42k-entry table costs no loop over it.
   */
  private readonly nextFree: Uint32Array;
  private readonly inUse: Uint8Array;
  /** Grows as slots are first used (ids are handed out lowest first), so it stays a packed array. */
  private readonly contexts: (T | undefined)[] = [];
  private head = 0;
  private live = 0;

  constructor(size: number) {
    invariant(
      Number.isInteger(size) && size > 0 && size < 0xffff_ffff,
      "request table size must be a positive u32",
    );
    this.size = size;
    // vmbus_alloc_requestor: req_arr[i] = i + 1, the last pointing past the end (= full); see nextFree.
    this.nextFree = new Uint32Array(size);
    this.inUse = new Uint8Array(size);
  }

  get outstanding(): number {
    return this.live;
  }

  /** vmbus_next_request_id: the id (slot + 1) for `ctx`, or undefined when the table is full. */
  allocate(ctx: T): number | undefined {
    const slot = this.head;
    if (slot >= this.size) {
      this.fullCount++;
      return undefined;
    }
    this.head = (this.nextFree[slot]! ^ (slot + 1)) >>> 0;
    this.inUse[slot] = 1;
    this.contexts[slot] = ctx;
    this.live++;
    return slot + 1;
  }

  /**
   * __vmbus_request_addr_match: releases the id and returns its context. With `expected`, a slot
   * holding another context is reported as a mismatch and stays outstanding, as in the kernel.
   * `transId` is the host's u64: a bigint, or a number when it is below 2^53 (a safe non-negative
   * integer; the per-packet path passes numbers so that no BigInt is made).
   */
  complete(transId: bigint | number, ...expected: [] | [T]): Result<T> {
    const slot = this.slotOf(transId);
    if (slot < 0) return this.reject(slot === ZERO_ID ? "zero-id" : "out-of-range", transId);
    if (this.inUse[slot] !== 1) return this.reject("not-outstanding", transId);
    const ctx = this.contexts[slot] as T;
    if (expected.length === 1 && expected[0] !== ctx) return this.reject("mismatch", transId);
    this.inUse[slot] = 0;
    this.contexts[slot] = undefined;
    this.nextFree[slot] = this.head ^ (slot + 1);
    this.head = slot;
    this.live--;
    return ok(ctx);
  }

  /** Whether `transId` names an outstanding request (no side effects, not counted). */
  isOutstanding(transId: bigint | number): boolean {
    const slot = this.slotOf(transId);
    return slot >= 0 && this.inUse[slot] === 1;
  }

  /** The slot of an id (id − 1), ZERO_ID for 0, OUT_OF_RANGE past the table. */
  private slotOf(transId: bigint | number): number {
    if (typeof transId === "number") {
      if (!(Number.isSafeInteger(transId) && transId >= 0)) {
        invariant(false, `trans_id ${transId} is not a safe non-negative integer (pass a bigint)`);
      }
      if (transId === 0) return ZERO_ID;
      return transId > this.size ? OUT_OF_RANGE : transId - 1;
    }
    if (transId === 0n) return ZERO_ID;
    return transId > BigInt(this.size) ? OUT_OF_RANGE : Number(transId) - 1;
  }

  private reject(reason: RequestRejectReason, transId: bigint | number): Result<T> {
    this.rejected[reason]++;
    return err("EINVAL", reason, `completion for trans_id ${transId} rejected (VMBUS_RQST_ERROR)`);
  }
}
