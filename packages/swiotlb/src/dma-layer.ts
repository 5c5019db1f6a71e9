import type { HypervLayer } from "@ivm/hypercall";
import type { GuestMemory } from "@ivm/memory";
import { dmaDirectOps } from "./dma-direct.js";
import { createDmaDevice, type DmaDevice, type DmaDeviceOptions, type DmaOps } from "./dma-ops.js";
import { bootSwiotlb, type SwiotlbBootOptions, type SwiotlbPool } from "./pool.js";
import { noPoolDmaOps, swiotlbDmaOps } from "./swiotlb-ops.js";

/** The DMA layer of one booted guest: the pool (if any) and the ops its devices get. */
export interface DmaLayer {
  readonly memory: GuestMemory;
  /** The default swiotlb pool; null in a guest that is not isolated and did not ask for one. */
  readonly pool: SwiotlbPool | null;
  /**
   * swiotlb (bounce) ops when there is a pool; in an isolated guest whose pool could not be allocated,
   * ops whose every mapping fails (`swiotlb-no-pool`); dma-direct otherwise.
   */
  readonly ops: DmaOps;
  /** A device with this layer's ops (or `ops` to attach others, e.g. a strategy's). */
  createDevice(options: DmaDeviceOptions & { readonly ops?: DmaOps }): DmaDevice;
}

/**
 * Boots the DMA layer: `bootSwiotlb` (an isolated guest always gets a host-visible pool and bounce
 * buffering is forced, as ms_hyperv_init_platform arranges; other guests use dma-direct unless
 * `force`), then picks the ops devices get.
 */
export function bootDma(
  memory: GuestMemory,
  hyperv: HypervLayer | undefined,
  options: SwiotlbBootOptions = {},
): DmaLayer {
  const pool = bootSwiotlb(memory, hyperv, options);
  const ops =
    pool !== null ? swiotlbDmaOps(pool) : memory.isolated ? noPoolDmaOps(options.printk) : dmaDirectOps();
  return {
    memory,
    pool,
    ops,
    createDevice: (device) => createDmaDevice({ ...device, memory, ops: device.ops ?? ops }),
  };
}
