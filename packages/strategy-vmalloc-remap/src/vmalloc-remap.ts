import { hvMapMemory, hvUnmapMemory } from "@ivm/hypercall";
import {
  defineStrategy,
  leakPagesAt,
  type SharedBuffer,
  type SharedBufferStrategy,
  type StrategyServices,
  vzallocBuffers,
} from "@ivm/shared-buffer";

interface VmallocRemapBuffer extends SharedBuffer {
  /** recv_original_buf / send_original_buf: the vzalloc'd private mapping. */
  readonly original: number;
  /** recv_buf / send_buf: the vmap_pfn alias above vTOM, while mapped. */
  alias: number | null;
}

/**
 * Approach (1), the one that landed in Linux 5.17 (846da38de0e8): vzalloc the buffer; after the GPADL
 * made it host-visible, hv_map_memory builds a temporary PFN array (vmalloc_to_pfn + vTOM per page),
 * vmap_pfn's it and frees the array. Two live mappings per buffer; no PFN list kept. Teardown unmaps the
 * alias and vfree's the original only if re-encryption succeeded.
 */
export function vmallocRemapStrategy({ memory }: Pick<StrategyServices, "memory">): SharedBufferStrategy {
  // netvsc_init_buf remaps only in an isolated guest (hv_isolation_type_snp()).
  if (!memory.isolated) return vzallocBuffers(memory, { name: "vmalloc-remap", eras: ["address-bit"] });
  return defineStrategy<VmallocRemapBuffer>({
    name: "vmalloc-remap",
    eras: ["address-bit"],
    allocate(bytes, purpose) {
      const original = memory.vmalloc.vzalloc(bytes, { tag: purpose });
      if (original === null) return null;
      const pages = bytes / 4096;
      return {
        strategy: "vmalloc-remap",
        purpose,
        bytes,
        pages,
        gpadlVa: original,
        preShared: false,
        original,
        alias: null,
      };
    },
    map(buffer) {
      buffer.alias = hvMapMemory(memory, buffer.original, buffer.bytes, `${buffer.purpose}-alias`);
      return buffer.alias;
    },
    unmap(buffer) {
      hvUnmapMemory(memory, buffer.alias!);
      buffer.alias = null;
    },
    free(buffer) {
      memory.vmalloc.vfree(buffer.original);
    },
    leak(buffer) {
      // netvsc keeps the vmalloc area too ("Don't free decrypted memory"): nothing is vfree'd.
      leakPagesAt(memory, buffer.original, buffer.pages);
    },
  });
}
