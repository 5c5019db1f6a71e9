import type { FindingLog, KernelProfile } from "@ivm/kernel";
import type { GuestMemory } from "@ivm/memory";
import { GuestHypercalls, type GuestHypercallsOptions } from "./guest-hypercall.js";
import { HostView } from "./host-view.js";
import { Hypervisor } from "./hypervisor.js";
import type { IsolationConfig } from "./isolation.js";
import { SetMemory } from "./set-memory.js";

/** Everything a guest gets from the hypervisor layer, wired together. */
export interface HypervLayer {
  /** The kernel whose behaviours this layer runs (see GuestHypercallsOptions.profile for the default). */
  readonly profile: KernelProfile;
  /** Where this layer reports findings. */
  readonly findings: FindingLog;
  readonly isolation: IsolationConfig;
  readonly hypervisor: Hypervisor;
  readonly hypercalls: GuestHypercalls;
  readonly setMemory: SetMemory;
  readonly hostView: HostView;
}

/**
 * Assembles the hypervisor, the guest's hypercall plumbing, set_memory_* for the kernel profile and the
 * host view over one guest memory. The memory must have been built with this isolation's boundary and
 * in the profile's era. Without a profile: the memory's era's representative profile, hardened.
 */
export function createHyperv(
  memory: GuestMemory,
  isolation: IsolationConfig,
  options: GuestHypercallsOptions = {},
): HypervLayer {
  if (memory.vtomPfn * 4096 !== isolation.sharedGpaBoundary) {
    throw new Error("guest memory was built with a different shared_gpa_boundary than the isolation config");
  }
  const hypervisor = new Hypervisor(memory, isolation);
  const hypercalls = new GuestHypercalls(memory, hypervisor, options);
  return {
    profile: hypercalls.profile,
    findings: hypercalls.findings,
    isolation,
    hypervisor,
    hypercalls,
    setMemory: new SetMemory(memory, hypercalls),
    hostView: new HostView(memory),
  };
}
