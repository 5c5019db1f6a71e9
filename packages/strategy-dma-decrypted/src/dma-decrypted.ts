import { type HypervLayer, hvMapMemory, hvUnmapMemory } from "@ivm/hypercall";
import { writtenFor } from "@ivm/kernel";
import type {
  SharedBuffer,
  SharedBufferStrategy,
  StrategyDescriptor,
  StrategyServices,
} from "@ivm/shared-buffer";
import { defineStrategy, leakPagesAt, SharedBufferError } from "@ivm/shared-buffer";
import { type DmaDevice, type DmaOps, dmaMapDecrypted, dmaUnmapEncrypted } from "@ivm/swiotlb";

/** What approach (2) is built from: the guest's memory and hypervisor, and the netvsc DMA device. */
export interface DmaDecryptedServices extends StrategyServices {
  /** A device whose ops come from `hypervDecryptedDmaOps` (over the swiotlb ops its streaming maps use). */
  readonly dma: DmaDevice;
}

/**
 * The Hyper-V half of patch V3 09/13 + 11/13 (Aug 2021): hyperv_swiotlb_detect plugs hv_map_memory /
 * hv_unmap_memory in as the platform's decrypted-mapping callbacks when the guest is isolated. Here they
 * are layered over `base` (the swiotlb ops), so the device keeps bouncing its streaming mappings.
 *
 * mapDecrypted builds the shared alias only (temporary PFN array, vmap_pfn, array freed); V3's generic
 * wrapper also ran set_memory_decrypted first, which the model leaves to the GPADL (see the README).
 */
export function hypervDecryptedDmaOps(base: DmaOps, hyperv: HypervLayer): DmaOps {
  if (!hyperv.isolation.isolated) return base;
  return {
    ...base,
    name: `${base.name}+hv-decrypted`,
    mapDecrypted: (dev, va, size) => {
      // The alias is charged to the owner of the area it aliases (the model's accounting, not the kernel's).
      const owner = dev.memory.vmalloc.findArea(va)?.tag ?? "dma-decrypted";
      return hvMapMemory(dev.memory, va, size, `${owner}-alias`);
    },
    unmapEncrypted: (dev, va) => hvUnmapMemory(dev.memory, va),
  };
}

interface DmaDecryptedBuffer extends SharedBuffer {
  /** What dma_map_decrypted returned: the vmap_pfn alias above vTOM, while mapped. */
  alias: number | null;
}

/**
 * Approach (2), the original series v3 (Tianyu Lan, Aug 2021): vzalloc the buffer as (1) does; after the
 * GPADL made it host-visible, dma_map_decrypted reaches the Hyper-V callback that maps it a second time
 * above vTOM, and dma_unmap_encrypted undoes that before the GPADL teardown. Two live mappings.
 */
export const dmaDecrypted: StrategyDescriptor<
  DmaDecryptedServices,
  never,
  (base: DmaOps, hyperv: HypervLayer) => DmaOps
> = {
  name: "dma-decrypted",
  approach: 2,
  summary: "the same two mappings through dma_map_decrypted (patch v3)",
  packageName: "@ivm/strategy-dma-decrypted",
  eras: ["address-bit"],
  ...writtenFor("dma-decrypted", {
    from: "5.17",
    through: "5.17",
    written: "approach (2): the dma_map_decrypted series was posted against 5.16/5.17 and never merged",
  }),
  dmaOps: hypervDecryptedDmaOps,
  create: (services) => create(services),
};

function create({ memory, dma }: DmaDecryptedServices): SharedBufferStrategy {
  // The Hyper-V ops existed for isolated guests only (defineStrategy runs the plain path elsewhere).
  if (memory.isolated) requireDecryptedOps(memory, dma);
  return defineStrategy<DmaDecryptedBuffer>(dmaDecrypted, memory, {
    isolatedOnly: true,
    allocate(bytes, purpose) {
      const va = memory.vmalloc.vzalloc(bytes, { tag: purpose });
      return va === null ? null : { gpadlVa: va, alias: null };
    },
    map(buffer) {
      buffer.alias = dmaMapDecrypted(dma, buffer.gpadlVa, buffer.bytes);
      return buffer.alias === null ? null : { va: buffer.alias };
    },
    unmap(buffer) {
      dmaUnmapEncrypted(dma, buffer.alias!, buffer.bytes);
      buffer.alias = null;
    },
    free(buffer) {
      memory.vmalloc.vfree(buffer.gpadlVa);
    },
    leak(buffer) {
      // As (1): the vmalloc area is kept with its pages; the alias is already gone.
      leakPagesAt(memory, buffer.gpadlVa, buffer.pages);
    },
  });
}

function requireDecryptedOps(memory: DmaDecryptedServices["memory"], dma: DmaDevice): void {
  if (dma.memory !== memory)
    throw new SharedBufferError("EINVAL", "dma-device", "the DMA device is another guest's");
  if (dma.ops.mapDecrypted === undefined) {
    // Without the callback dma_map_decrypted hands back the private address, which faults on shared pages.
    throw new SharedBufferError(
      "EINVAL",
      "dma-ops",
      `${dma.name}'s ${dma.ops.name} ops cannot map decrypted`,
    );
  }
}
