import { hvMapMemory, hvUnmapMemory } from "@ivm/hypercall";
import { writtenFor } from "@ivm/kernel";
import {
  defineStrategy,
  leakPagesAt,
  type SharedBuffer,
  type StrategyDescriptor,
  type StrategyServices,
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
export const vmallocRemap: StrategyDescriptor<Pick<StrategyServices, "memory">> = {
  name: "vmalloc-remap",
  approach: 1,
  summary: "vmalloc + a second vmap_pfn mapping above vTOM (Linux 5.17)",
  packageName: "@ivm/strategy-vmalloc-remap",
  eras: ["address-bit"],
  ...writtenFor("vmalloc-remap", {
    from: "5.17",
    through: "6.3",
    written:
      "approach (1): vzalloc + hv_map_memory landed with 846da38de0e8 in 5.17 and was removed by 25727aaed651 in 6.4",
  }),
  create: ({ memory }) =>
    // netvsc_init_buf remaps only in an isolated guest (hv_isolation_type_snp()).
    defineStrategy<VmallocRemapBuffer>(vmallocRemap, memory, {
      isolatedOnly: true,
      allocate(bytes, purpose) {
        const original = memory.vmalloc.vzalloc(bytes, { tag: purpose });
        return original === null ? null : { gpadlVa: original, original, alias: null };
      },
      map(buffer) {
        buffer.alias = hvMapMemory(memory, buffer.original, buffer.bytes, `${buffer.purpose}-alias`);
        return buffer.alias === null ? null : { va: buffer.alias };
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
    }),
};
