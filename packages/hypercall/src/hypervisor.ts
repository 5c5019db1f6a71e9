import { type GuestMemory, PageFlag } from "@ivm/memory";
import {
  decodeControl,
  encodeStatus,
  HostVisibility,
  HV_HYP_PAGE_SIZE,
  HV_MAX_MODIFY_GPA_REP_COUNT,
  HV_PARTITION_ID_SELF,
  HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY,
  HvStatus,
  readVisibilityInput,
} from "./hv-abi.js";
import type { IsolationConfig } from "./isolation.js";

/** One hypercall as the hypervisor saw it (for timelines). */
export interface HypercallEvent {
  readonly seq: number;
  readonly code: number;
  readonly repStart: number;
  readonly repCount: number;
  readonly repsCompleted: number;
  readonly result: number;
  readonly visibility: number;
  /** Owner tag of the first page touched (who the conversion was for). */
  readonly owner: string;
}

const TWO_POW_32 = 0x1_0000_0000;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type CallFault =
  | { readonly kind: "fail"; readonly status: number }
  | { readonly kind: "partial"; readonly reps: number }
  | { readonly kind: "too-many" }
  | { readonly kind: "no-progress" };

/**
 * Deterministic fault knobs on the hypervisor. Calls are counted from when the knob is set: `failCall(1)`
 * fails the next hypercall.
 */
export class HypervisorFaults {
  readonly #plan = new Map<number, CallFault>();
  readonly #refused = new Map<number, number>();
  #seen = 0;
  #stallFrom = Number.POSITIVE_INFINITY;

  /** Hypercall number k (1-based, from now) returns `status` with no rep done. */
  failCall(k: number, status: number = HvStatus.AccessDenied): void {
    this.#plan.set(this.#seen + k, { kind: "fail", status });
  }

  /** Hypercall k completes only `reps` reps and returns success (an honest partial completion). */
  partialReps(k: number, reps: number): void {
    this.#plan.set(this.#seen + k, { kind: "partial", reps });
  }

  /** Hypercall k reports success with an impossible count: more than requested, or no progress at all. */
  impossibleCount(k: number, kind: "too-many" | "no-progress"): void {
    this.#plan.set(this.#seen + k, { kind });
  }

  /**
   * Hypercall k and every one after it report success without progress (reps completed = the rep start)
   * until `clear()`: a hypervisor that never finishes, against which hv_do_rep_hypercall spins.
   */
  stall(k: number): void {
    this.#stallFrom = this.#seen + k;
  }
  /** Any rep naming `pfn` fails with `status` (reps completed = its index). */
  refusePfn(pfn: number, status: number = HvStatus.InvalidParameter): void {
    this.#refused.set(pfn, status);
  }

  clear(): void {
    this.#plan.clear();
    this.#refused.clear();
    this.#stallFrom = Number.POSITIVE_INFINITY;
  }

  /** @internal called once per hypercall. */
  next(): CallFault | undefined {
    this.#seen++;
    const fault = this.#plan.get(this.#seen);
    this.#plan.delete(this.#seen);
    if (fault === undefined && this.#seen >= this.#stallFrom) return { kind: "no-progress" };
    return fault;
  }

  /** @internal */
  refusal(pfn: number): number | undefined {
    return this.#refused.get(pfn);
  }

  /** @internal whether any PFN is refused (the hypervisor then looks at every PFN on its own). */
  get refusesAny(): boolean {
    return this.#refused.size > 0;
  }

  /** Hypercalls seen since the hypervisor started (to enumerate every failure point of a scenario). */
  get calls(): number {
    return this.#seen;
  }
}

export interface HypervisorCounters {
  hypercalls: number;
  reps: number;
  pagesMadeVisible: number;
  pagesMadePrivate: number;
  failedCalls: number;
}

/**
 * The hypervisor's side of host visibility: it reads the guest's input page, validates it, flips
 * per-page visibility in the memory model (destroying the converted pages' contents) and answers with a
 * status word. Everything it counts is measured here, never reported by the guest.
 */
export class Hypervisor {
  readonly #memory: GuestMemory;
  readonly isolation: IsolationConfig;
  readonly faults: HypervisorFaults = new HypervisorFaults();
  readonly counters: HypervisorCounters = {
    hypercalls: 0,
    reps: 0,
    pagesMadeVisible: 0,
    pagesMadePrivate: 0,
    failedCalls: 0,
  };
  /** Pages converted, by owner tag of the page at the time (visible, private). */
  readonly byOwner: Map<string, { visible: number; private: number }> = new Map();
  readonly #listeners: ((e: HypercallEvent) => void)[] = [];
  readonly #page = new Uint8Array(HV_HYP_PAGE_SIZE);
  readonly #view = new DataView(this.#page.buffer);
  /** The input page as u32 words, for scanning runs of PFNs on a little-endian host (see #runLength). */
  readonly #words = new Uint32Array(this.#page.buffer);
  #lastOwner: string | undefined;
  #lastEntry: { visible: number; private: number } | undefined;

  constructor(memory: GuestMemory, isolation: IsolationConfig) {
    this.#memory = memory;
    this.isolation = isolation;
  }

  /** Subscribes to every hypercall (for timelines); returns an unsubscribe function. */
  onHypercall(listener: (e: HypercallEvent) => void): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /** The hypercall instruction: a control word and the input page's guest physical address. */
  hypercall(control: bigint, inputPa: number): bigint {
    this.counters.hypercalls++;
    const c = decodeControl(control);
    const fault = this.faults.next();
    let status: bigint;
    if (c.code !== HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY) {
      status = encodeStatus(HvStatus.InvalidHypercallCode, 0);
    } else if (fault?.kind === "fail") {
      status = encodeStatus(fault.status, c.repStart);
    } else {
      status = this.#modifyVisibility(c.repStart, c.repCount, inputPa, fault);
    }
    const result = Number(status & 0xffffn);
    if (result !== HvStatus.Success) this.counters.failedCalls++;
    if (this.#listeners.length > 0) {
      const first =
        c.repStart < c.repCount ? readVisibilityInput(this.#view, c.repStart, 1).pfns[0] : undefined;
      const event: HypercallEvent = {
        seq: this.counters.hypercalls,
        code: c.code,
        repStart: c.repStart,
        repCount: c.repCount,
        repsCompleted: Number((status >> 32n) & 0xfffn),
        result,
        visibility: this.#view.getUint32(8, true) & 3,
        owner:
          first !== undefined && this.#memory.phys.pfnValid(first) ? this.#memory.buddy.ownerOf(first) : "?",
      };
      for (const l of this.#listeners) l(event);
    }
    return status;
  }

  #modifyVisibility(
    repStart: number,
    repCount: number,
    inputPa: number,
    fault: CallFault | undefined,
  ): bigint {
    if (repCount > HV_MAX_MODIFY_GPA_REP_COUNT || repStart > repCount || inputPa % 8 !== 0) {
      return encodeStatus(HvStatus.InvalidHypercallInput, repStart);
    }
    if (!this.isolation.isolated) return encodeStatus(HvStatus.AccessDenied, repStart);
    if (inputPa < 0 || inputPa + HV_HYP_PAGE_SIZE > this.#memory.phys.bytes) {
      return encodeStatus(HvStatus.InvalidParameter, repStart);
    }
    this.#memory.phys.read(inputPa, this.#page);
    // The header and the PFNs are read from the input page in place (no PFN array per call).
    const view = this.#view;
    if (view.getBigUint64(0, true) !== HV_PARTITION_ID_SELF)
      return encodeStatus(HvStatus.InvalidPartitionId, repStart);
    const vis = view.getUint32(8, true) & 0x3;
    if (
      vis !== HostVisibility.NotVisible &&
      vis !== HostVisibility.ReadWrite &&
      vis !== HostVisibility.ReadOnly
    ) {
      return encodeStatus(HvStatus.InvalidParameter, repStart);
    }
    let end = repCount;
    if (fault?.kind === "partial") end = Math.min(repCount, repStart + fault.reps);
    const phys = this.#memory.phys;
    const visible = vis !== HostVisibility.NotVisible;
    // The input is read as runs of consecutive PFNs (a buffer's pages mostly are): each run is converted
    // with one range call and counted by owner once per buddy block, with the same result, counters and
    // reps-completed as a page-by-page loop. A refused PFN (a fault knob) makes every run one page long.
    const perPage = this.faults.refusesAny;
    this.#lastEntry = undefined;
    let done = repStart;
    while (done < end) {
      const pfn = view.getUint32(16 + done * 8, true) + view.getUint32(20 + done * 8, true) * TWO_POW_32;
      if (perPage) {
        const refusal = this.faults.refusal(pfn);
        if (refusal !== undefined) return encodeStatus(refusal, done);
      }
      if (!phys.pfnValid(pfn)) return encodeStatus(HvStatus.InvalidParameter, done);
      const n = perPage ? 1 : this.#runLength(pfn, done, Math.min(end, done + phys.pages - pfn));
      phys.setHostVisibleRange(pfn, n, visible);
      this.#countOwners(pfn, n, visible);
      if (visible) this.counters.pagesMadeVisible += n;
      else this.counters.pagesMadePrivate += n;
      this.counters.reps += n;
      done += n;
    }
    if (fault?.kind === "too-many") return encodeStatus(HvStatus.Success, repCount + 1);
    if (fault?.kind === "no-progress") return encodeStatus(HvStatus.Success, repStart);
    return encodeStatus(HvStatus.Success, done);
  }

  /**
   * How many PFNs from rep `from` (whose PFN is `pfn`) go on consecutively, up to rep `end`. The words
   * are compared as u32s in place where the host is little-endian like the ABI; elsewhere through the view.
   */
  #runLength(pfn: number, from: number, end: number): number {
    let n = 1;
    if (LITTLE_ENDIAN && pfn + end - from < TWO_POW_32) {
      const words = this.#words;
      for (let w = 4 + 2 * (from + 1); from + n < end && words[w] === pfn + n && words[w + 1] === 0; w += 2)
        n++;
      return n;
    }
    const view = this.#view;
    while (from + n < end) {
      const at = 16 + (from + n) * 8;
      if (view.getUint32(at, true) + view.getUint32(at + 4, true) * TWO_POW_32 !== pfn + n) break;
      n++;
    }
    return n;
  }

  /**
   * Counts the `n` converted pages from `pfn` by owner, once per buddy block. The head of an allocated
   * block carries its owner and order (phys's per-page state), so such a page is read in place with its
   * tag id compared as a number and named only when it changes; any other page asks the buddy allocator.
   */
  #countOwners(pfn: number, n: number, visible: boolean): void {
    const phys = this.#memory.phys;
    const buddy = this.#memory.buddy;
    const { flags, order, owner } = phys;
    const end = pfn + n;
    let id = -1;
    let pages = 0;
    for (let p = pfn; p < end; ) {
      if ((flags[p]! & (PageFlag.Allocated | PageFlag.Free)) === PageFlag.Allocated) {
        const runEnd = Math.min(end, p + (1 << order[p]!));
        if (owner[p] !== id) {
          if (pages > 0) this.#countOwner(phys.tags.name(id), pages, visible);
          id = owner[p]!;
          pages = 0;
        }
        pages += runEnd - p;
        p = runEnd;
        continue;
      }
      if (pages > 0) this.#countOwner(phys.tags.name(id), pages, visible);
      id = -1;
      pages = 0;
      const runEnd = Math.min(end, buddy.ownerRunEnd(p));
      this.#countOwner(buddy.ownerOf(p), runEnd - p, visible);
      p = runEnd;
    }
    if (pages > 0) this.#countOwner(phys.tags.name(id), pages, visible);
  }

  /** Adds `pages` converted pages to `owner`'s entry of byOwner (looked up once per run of them). */
  #countOwner(owner: string, pages: number, visible: boolean): void {
    if (owner !== this.#lastOwner || this.#lastEntry === undefined) {
      let entry = this.byOwner.get(owner);
      if (entry === undefined) {
        entry = { visible: 0, private: 0 };
        this.byOwner.set(owner, entry);
      }
      this.#lastOwner = owner;
      this.#lastEntry = entry;
    }
    if (visible) this.#lastEntry.visible += pages;
    else this.#lastEntry.private += pages;
  }
}
