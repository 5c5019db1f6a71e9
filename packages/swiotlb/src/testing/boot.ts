import { bootPlatform, type HypervLayer } from "@ivm/hypercall";
import type { GuestMemory, VtomMode } from "@ivm/memory";
import { bootDma, type DmaLayer } from "../dma-layer.js";
import type { SwiotlbBootOptions } from "../pool.js";

/** A booted guest with its DMA layer: @ivm/hypercall's bootPlatform, then bootDma (as @ivm/vm boots). */
export interface TestGuest {
  readonly memory: GuestMemory;
  readonly hv: HypervLayer;
  readonly dma: DmaLayer;
}

/**
 * An SNP guest with vTOM in `era` (1 GiB unless told) and its swiotlb pool; `beforeBoot` runs between
 * the platform and swiotlb (to arm a fault the pool's setup should meet).
 */
export function bootIsolatedGuest(
  era: VtomMode,
  bytes: number = 2 ** 30,
  options: SwiotlbBootOptions = {},
  beforeBoot?: (memory: GuestMemory, hv: HypervLayer) => void,
): TestGuest {
  const { memory, hyperv } = bootPlatform({ bytes, era });
  beforeBoot?.(memory, hyperv);
  return { memory, hv: hyperv, dma: bootDma(memory, hyperv, options) };
}

/** A guest without isolation (dma-direct; no pool unless `options` asks for one). */
export function bootPlainGuest(bytes: number = 2 ** 30, options: SwiotlbBootOptions = {}): TestGuest {
  const { memory, hyperv } = bootPlatform({ bytes, isolation: "none" });
  return { memory, hv: hyperv, dma: bootDma(memory, hyperv, options) };
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
