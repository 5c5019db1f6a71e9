import type { GuestMemory } from "@ivm/memory";
import { GuestHypercalls } from "./guest-hypercall.js";
import { HostView } from "./host-view.js";
import { Hypervisor } from "./hypervisor.js";
import type { IsolationConfig } from "./isolation.js";
import { SetMemory } from "./set-memory.js";

/** Everything a guest gets from the hypervisor layer, wired together. */
export interface HypervLayer {
  readonly isolation: IsolationConfig;
  readonly hypervisor: Hypervisor;
  readonly hypercalls: GuestHypercalls;
  readonly setMemory: SetMemory;
  readonly hostView: HostView;
}

/**
 * Assembles the hypervisor, the guest's hypercall plumbing, set_memory_* for the memory's era and the
 * host view over one guest memory. The memory must have been built with this isolation's boundary.
 */
export function createHyperv(memory: GuestMemory, isolation: IsolationConfig): HypervLayer {
  if (memory.vtomPfn * 4096 !== isolation.sharedGpaBoundary) {
    throw new Error("guest memory was built with a different shared_gpa_boundary than the isolation config");
  }
  const hypervisor = new Hypervisor(memory, isolation);
  const hypercalls = new GuestHypercalls(memory, hypervisor);
  return {
    isolation,
    hypervisor,
    hypercalls,
    setMemory: new SetMemory(memory, hypercalls),
    hostView: new HostView(memory),
  };
}
