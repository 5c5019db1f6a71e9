import type { HypervLayer } from "@ivm/hypercall";
import { writtenFor } from "@ivm/kernel";
import type {
  SharedBuffer,
  SharedBufferStrategy,
  StrategyDescriptor,
  StrategyServices,
} from "@ivm/shared-buffer";
import { defineStrategy, leakPagesAt, SharedBufferError } from "@ivm/shared-buffer";
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  type DmaDevice,
  type DmaOps,
  dmaAllocNoncontiguous,
  dmaFreeNoncontiguous,
  dmaVmapNoncontiguous,
  dmaVunmapNoncontiguous,
  type SgTable,
} from "@ivm/swiotlb";
import { hypervNoncontiguousDmaOps, releaseSgtHandle, sgtVaddr, withPageOwner } from "./hyperv-iommu.js";

/** What approach (3) is built from: the guest's memory and hypervisor, and the netvsc DMA device. */
export interface DmaNoncontiguousServices extends StrategyServices {
  /** A device whose ops come from `hypervNoncontiguousDmaOps` (over the swiotlb ops its streaming maps use). */
  readonly dma: DmaDevice;
}

interface DmaNoncontiguousBuffer extends SharedBuffer {
  /** recv_sgt / send_sgt: the table dma_alloc_noncontiguous returned, kept for the buffer's life. */
  readonly sgt: SgTable;
  readonly dir: number;
  /** What dma_vmap_noncontiguous returned: the vmap_pfn alias above vTOM, while mapped. */
  alias: number | null;
}

/** netvsc's directions: the receive buffer is written by the host, the send buffer read by it. */
function directionOf(purpose: string): number {
  if (purpose === "netvsc-rx") return DMA_FROM_DEVICE;
  return purpose === "netvsc-tx" ? DMA_TO_DEVICE : DMA_BIDIRECTIONAL;
}

/**
 * Approach (3), the split-off series V1/V2 (Tianyu Lan, Nov 16/23 2021, "hv_netvsc: Add Isolation VM
 * support for netvsc driver"): dma_alloc_noncontiguous reaches the Hyper-V ops (vmalloc'd pages kept in a
 * dma_sgt_handle); the GPADL is established over the vmalloc address (sg_dma_address of the first entry);
 * then dma_vmap_noncontiguous maps the kept pages a second time above vTOM. Teardown is
 * dma_vunmap_noncontiguous, then dma_free_noncontiguous once re-encryption succeeded.
 */
export const dmaNoncontiguous: StrategyDescriptor<
  DmaNoncontiguousServices,
  never,
  (base: DmaOps, hyperv: HypervLayer) => DmaOps
> = {
  name: "dma-noncontiguous",
  approach: 3,
  summary: "dma_alloc_noncontiguous with Hyper-V ops (split-off v1/v2)",
  packageName: "@ivm/strategy-dma-noncontiguous",
  eras: ["address-bit"],
  ...writtenFor("dma-noncontiguous", {
    from: "5.17",
    through: "5.17",
    written: "approach (3): the dma_alloc_noncontiguous series was posted against 5.16/5.17 and never merged",
  }),
  dmaOps: hypervNoncontiguousDmaOps,
  create: (services) => create(services),
};

function requireNoncontiguousOps(memory: DmaNoncontiguousServices["memory"], dma: DmaDevice): void {
  if (dma.memory !== memory)
    throw new SharedBufferError("EINVAL", "dma-device", "the DMA device is another guest's");
  if (dma.ops.allocNoncontiguous === undefined || dma.ops.vmapNoncontiguous === undefined) {
    // Without them 16 MiB falls to alloc_single_sgt (one contiguous block, which the buddy cannot give).
    throw new SharedBufferError(
      "EINVAL",
      "dma-ops",
      `${dma.name}'s ${dma.ops.name} ops have no noncontiguous hooks`,
    );
  }
}

function create({ memory, dma }: DmaNoncontiguousServices): SharedBufferStrategy {
  // The Hyper-V ops existed for isolated guests only (defineStrategy runs the plain path elsewhere).
  if (memory.isolated) requireNoncontiguousOps(memory, dma);
  return defineStrategy<DmaNoncontiguousBuffer>(dmaNoncontiguous, memory, {
    isolatedOnly: true,
    allocate(bytes, purpose) {
      const dir = directionOf(purpose);
      const sgt = withPageOwner(dma, purpose, () => dmaAllocNoncontiguous(dma, bytes, dir));
      return sgt === null ? null : { gpadlVa: sgtVaddr(sgt), sgt, dir, alias: null };
    },
    map(buffer) {
      buffer.alias = dmaVmapNoncontiguous(dma, buffer.bytes, buffer.sgt);
      return buffer.alias === null ? null : { va: buffer.alias };
    },
    unmap(buffer) {
      dmaVunmapNoncontiguous(dma, buffer.alias!);
      buffer.alias = null;
    },
    free(buffer) {
      dmaFreeNoncontiguous(dma, buffer.bytes, buffer.sgt, buffer.dir);
    },
    leak(buffer) {
      // The pages and their vmalloc area stay; the handle, page array and sg table are private: freed.
      leakPagesAt(memory, buffer.gpadlVa, buffer.pages);
      releaseSgtHandle(memory, buffer.sgt);
    },
  });
}
