import {
  HostVisibility,
  HV_MAX_MODIFY_GPA_REP_COUNT,
  HvStatus,
  type HypercallEvent,
  type HypervLayer,
} from "@ivm/hypercall";
import type { GuestMemory } from "@ivm/memory";

/**
 * Named faults: what goes wrong, said the way a kernel engineer says it, built from the knobs the layers
 * already have (the hypervisor's `failCall`, the memory model's `failCall`). Each is armed on a VM and
 * fires at most once, during the NIC lifecycle phase it names; `vm.faultReport()` says whether it fired.
 */
/** The names a VM knows. */
export type FaultName = "decrypt-fail" | "reencrypt-fail" | "gpadl-msginfo-nomem";

/** One named fault: the NIC lifecycle phase it fires in, and what happens, in a sentence. */
export interface FaultSpec {
  readonly phase: "add" | "remove";
  readonly summary: string;
}

export const VM_FAULTS: { readonly [F in FaultName]: FaultSpec } = {
  "decrypt-fail": {
    phase: "add",
    summary:
      "the hypervisor refuses the second host-visibility batch of the NIC's receive buffer at add (the first 510 pages did change)",
  },
  "reencrypt-fail": {
    phase: "remove",
    summary:
      "the hypervisor refuses the second host-visibility batch of the NIC's receive buffer at remove (the first 510 pages are private again)",
  },
  "gpadl-msginfo-nomem": {
    phase: "add",
    summary:
      "create_gpadl_header's kzalloc of the receive buffer's GPADL messages fails (the -ENOMEM path of __vmbus_establish_gpadl)",
  },
};

export const FAULT_NAMES: readonly FaultName[] = Object.keys(VM_FAULTS) as FaultName[];

export function isFaultName(name: string): name is FaultName {
  return Object.hasOwn(VM_FAULTS, name);
}

/** Whether an armed fault fired, and if not, why (a buffer small enough for one batch, a pre-shared pool). */
export interface FaultReport {
  readonly name: FaultName;
  readonly fired: boolean;
  /** Where it fired ("hypercall 12: netvsc-rx, reps 510..1019 of 4096 pages"), or why it did not. */
  readonly detail: string;
}

/** Whether `error` or an error in its `cause` chain has the typed `reason`. */
function causedBy(error: unknown, reason: string): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    if ((e as { reason?: unknown }).reason === reason) return true;
  }
  return false;
}

/**
 * One armed fault on one VM. The hypercall faults watch the hypervisor's call stream: after the
 * (batch − 1)-th visibility call over the target buffer in the target direction, the next call is made
 * to fail with `failCall(1)` — that is the batch hv_mark_gpa_visibility issues next, since it converts
 * one buffer's batches back to back. The fault then checks that the call it failed was the one meant.
 */
export class ArmedFault {
  readonly name: FaultName;
  #report: FaultReport;
  #active = false;
  #done = false;
  #seen = 0;
  #expectFailure = false;
  /** Pages of the target buffer, once allocated. */
  #pages = 0;
  readonly #off: () => void;
  readonly #hyperv: HypervLayer;
  readonly #memory: GuestMemory;

  constructor(name: FaultName, hyperv: HypervLayer, memory: GuestMemory) {
    this.name = name;
    this.#hyperv = hyperv;
    this.#memory = memory;
    this.#report = { name, fired: false, detail: `no NIC ${VM_FAULTS[name].phase} reached it yet` };
    this.#off = hyperv.hypervisor.onHypercall((e) => this.#onHypercall(e));
  }

  get phase(): "add" | "remove" {
    return VM_FAULTS[this.name].phase;
  }

  get report(): FaultReport {
    return this.#report;
  }

  /** Called by the VM around the phase the fault belongs to. */
  begin(phase: "add" | "remove"): void {
    if (this.#done || phase !== this.phase) return;
    this.#active = true;
    this.#seen = 0;
    if (this.name === "gpadl-msginfo-nomem") this.#expectFailure = false;
  }

  /** Called when the phase ends; `error` is the add's error, if it failed. */
  end(phase: "add" | "remove", error?: Error): void {
    if (!this.#active || phase !== this.phase) return;
    this.#active = false;
    if (this.name === "gpadl-msginfo-nomem" && this.#expectFailure) {
      const hit = causedBy(error, "msginfo");
      this.#done = true;
      this.#report = {
        name: this.name,
        fired: hit,
        detail: hit
          ? `the receive buffer's GPADL could not allocate its messages: ${error?.message}`
          : `a kmalloc failed during the add, but not create_gpadl_header's (${error?.message ?? "the add succeeded"})`,
      };
      return;
    }
    if (!this.#done) {
      const target = this.#target();
      this.#report = {
        name: this.name,
        fired: false,
        detail:
          this.#seen === 0
            ? `no host-visibility call over ${target.owner} during the ${phase} (a pre-shared buffer, or an unisolated guest)`
            : `${target.owner} (${this.#pages} pages) took ${this.#seen} batch(es) of at most ${HV_MAX_MODIFY_GPA_REP_COUNT} pages; batch ${target.batch} never came`,
      };
    }
  }

  /**
   * Told of every buffer a strategy allocates: remembers the target buffer's size (a batch fault arms
   * only when that batch exists), and arms the memory knob for the msginfo fault once the receive buffer
   * is allocated (netvsc's next kmallocs are its GPADL's messages).
   */
  bufferAllocated(purpose: string, pages: number): void {
    if (purpose === this.#target().owner) this.#pages = pages;
    if (!this.#active || this.#done || this.name !== "gpadl-msginfo-nomem" || purpose !== "netvsc-rx") return;
    this.#memory.faults.failCall("kmalloc", 1);
    this.#expectFailure = true;
  }

  dispose(): void {
    this.#off();
  }

  #target(): { owner: string; visible: boolean; batch: number } {
    switch (this.name) {
      case "decrypt-fail":
        return { owner: "netvsc-rx", visible: true, batch: 2 };
      default:
        return { owner: "netvsc-rx", visible: false, batch: 2 };
    }
  }

  #onHypercall(e: HypercallEvent): void {
    if (!this.#active || this.#done || this.name === "gpadl-msginfo-nomem") return;
    const target = this.#target();
    if (this.#expectFailure) {
      this.#expectFailure = false;
      this.#done = true;
      const hit = e.owner === target.owner && e.result !== 0;
      this.#report = {
        name: this.name,
        fired: hit,
        detail: hit
          ? `hypercall ${e.seq} over ${e.owner} refused (status ${e.result}) after ${this.#seen} batch(es) had converted`
          : `the call after batch ${this.#seen} was over ${e.owner}, not ${target.owner}: the fault missed`,
      };
      return;
    }
    // the previous visibility call over the target: a new batch begins at repStart 0
    const visible = e.visibility !== HostVisibility.NotVisible;
    if (e.owner !== target.owner || visible !== target.visible || e.repStart !== 0) return;
    this.#seen++;
    // hv_mark_gpa_visibility converts a buffer in batches of up to 510 pages, back to back: the next
    // call is the target's own batch only if the buffer has one
    if (this.#seen === target.batch - 1 && this.#pages > this.#seen * HV_MAX_MODIFY_GPA_REP_COUNT) {
      this.#hyperv.hypervisor.faults.failCall(1, HvStatus.AccessDenied);
      this.#expectFailure = true;
    }
  }
}
