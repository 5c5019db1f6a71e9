import { cpuidFor, createHyperv, type HypervLayer, isolationFromCpuid } from "@ivm/hypercall";
import { GuestMemory, type VtomMode } from "@ivm/memory";
import { bootDma, type DmaLayer } from "../dma-layer.js";
import type { SwiotlbBootOptions } from "../pool.js";

/** A booted guest for the wired-layer tests (test-only; not exported from the package). */
export interface TestGuest {
  readonly memory: GuestMemory;
  readonly hv: HypervLayer;
  readonly dma: DmaLayer;
}

export function bootIsolatedGuest(
  era: VtomMode,
  bytes: number = 2 ** 30,
  options: SwiotlbBootOptions = {},
  beforeBoot?: (memory: GuestMemory, hv: HypervLayer) => void,
): TestGuest {
  const isolation = isolationFromCpuid(cpuidFor({ type: "snp" }));
  const memory = new GuestMemory({ bytes, sharedGpaBoundary: isolation.sharedGpaBoundary, vtomMode: era });
  const hv = createHyperv(memory, isolation);
  beforeBoot?.(memory, hv);
  return { memory, hv, dma: bootDma(memory, hv, options) };
}

export function bootPlainGuest(bytes: number = 2 ** 30, options: SwiotlbBootOptions = {}): TestGuest {
  const isolation = isolationFromCpuid(cpuidFor({ type: "none" }));
  const memory = new GuestMemory({ bytes });
  const hv = createHyperv(memory, isolation);
  return { memory, hv, dma: bootDma(memory, hv, options) };
}

/** A kmalloc'd buffer filled with `bytes`, and its kernel address. */
export function kmallocFilled(memory: GuestMemory, bytes: Uint8Array, tag: string = "test-buf"): number {
  const va = memory.kmalloc.kmalloc(bytes.length, { tag });
  if (va === null) throw new Error("kmalloc failed");
  memory.mmu.write(va, bytes);
  return va;
}

export function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (i * 31 + seed * 7 + 1) & 0xff;
  return out;
}
