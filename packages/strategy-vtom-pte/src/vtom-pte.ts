import {
  defineStrategy,
  leakPagesAt,
  type SharedBuffer,
  type SharedBufferStrategy,
  type StrategyServices,
} from "@ivm/shared-buffer";

/**
 * Approach (5), Linux 6.4+ ("hv_netvsc: Remove second mapping of send and recv buffers", 25727aaed651):
 * vzalloc the buffer; the GPADL's set_memory_decrypted adds the vTOM bit to its existing PTEs, so the one
 * vmalloc mapping reaches the shared alias. map and unmap have nothing to do.
 */
export function vtomPteStrategy({ memory }: Pick<StrategyServices, "memory">): SharedBufferStrategy {
  return defineStrategy<SharedBuffer>({
    name: "vtom-pte",
    eras: ["pte-bit"],
    allocate(bytes, purpose) {
      const va = memory.vmalloc.vzalloc(bytes, { tag: purpose });
      if (va === null) return null;
      return { strategy: "vtom-pte", purpose, bytes, pages: bytes / 4096, gpadlVa: va, preShared: false };
    },
    map(buffer) {
      return buffer.gpadlVa;
    },
    unmap() {},
    free(buffer) {
      memory.vmalloc.vfree(buffer.gpadlVa);
    },
    leak(buffer) {
      leakPagesAt(memory, buffer.gpadlVa, buffer.pages);
    },
  });
}
