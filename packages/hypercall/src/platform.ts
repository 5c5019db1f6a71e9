import { GuestMemory, type VtomMode } from "@ivm/memory";
import type { GuestHypercallsOptions } from "./guest-hypercall.js";
import { createHyperv, type HypervLayer } from "./hyperv.js";
import { cpuidFor, type IsolationConfig, type IsolationRequest, isolationFromCpuid } from "./isolation.js";

export interface PlatformOptions {
  /** Guest RAM in bytes. */
  readonly bytes: number;
  /** What the host advertises in CPUID: an SNP guest with vTOM (default), another isolation type, or none. */
  readonly isolation?: IsolationRequest["type"];
  /** How vTOM is applied (the kernel's era); default address-bit. Ignored in meaning without isolation. */
  readonly era?: VtomMode;
  readonly cpus?: number;
  /** The kernel profile and finding log the hypervisor layer runs (createHyperv's options). */
  readonly kernel?: GuestHypercallsOptions;
}

/** The guest's memory and its hypervisor layer, booted together. */
export interface Platform {
  readonly isolation: IsolationConfig;
  readonly memory: GuestMemory;
  readonly hyperv: HypervLayer;
}

/**
 * The first step of every boot: the isolation config read from the CPUID leaves the host advertises
 * (ms_hyperv_init_platform), guest memory with that vTOM boundary in the era's mode, and the
 * hypervisor layer over it (hv_vtom_init). @ivm/vm and every layer's `testing` world start here.
 */
export function bootPlatform(options: PlatformOptions): Platform {
  const isolation = isolationFromCpuid(cpuidFor({ type: options.isolation ?? "snp" }));
  const memory = new GuestMemory({
    bytes: options.bytes,
    sharedGpaBoundary: isolation.sharedGpaBoundary,
    vtomMode: options.era ?? "address-bit",
    ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
  });
  return { isolation, memory, hyperv: createHyperv(memory, isolation, options.kernel) };
}
