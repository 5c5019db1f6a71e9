import type { Era } from "@ivm/hypercall";
import type { GuestMemory } from "@ivm/memory";
import type { SharedBuffer, SharedBufferStrategy } from "./contract.js";
import { defineStrategy } from "./define-strategy.js";
import { leakPagesAt } from "./leak.js";

/**
 * netvsc's plain path: vzalloc the buffer and use that one mapping. It is what netvsc_init_buf does in a
 * guest without isolation (the remap is only for hv_isolation_type_snp()), and all it does in Linux 6.4+,
 * where set_memory_decrypted puts the shared bit in the existing PTEs.
 */
export function vzallocBuffers(
  memory: GuestMemory,
  options: { readonly name: string; readonly eras: readonly Era[] },
): SharedBufferStrategy {
  return defineStrategy<SharedBuffer>({
    name: options.name,
    eras: options.eras,
    allocate(bytes, purpose) {
      const va = memory.vmalloc.vzalloc(bytes, { tag: purpose });
      if (va === null) return null;
      return { strategy: options.name, purpose, bytes, pages: bytes / 4096, gpadlVa: va, preShared: false };
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
