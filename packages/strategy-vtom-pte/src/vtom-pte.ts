import { writtenFor } from "@ivm/kernel";
import { type StrategyDescriptor, type StrategyServices, vzallocBuffers } from "@ivm/shared-buffer";

/**
 * Approach (5), Linux 6.4+ ("hv_netvsc: Remove second mapping of send and recv buffers", 25727aaed651):
 * vzalloc the buffer; the GPADL's set_memory_decrypted adds the vTOM bit to its existing PTEs, so the one
 * vmalloc mapping reaches the shared alias. It is netvsc's plain path, nothing more — which is the point.
 */
export const vtomPte: StrategyDescriptor<Pick<StrategyServices, "memory">> = {
  name: "vtom-pte",
  approach: 5,
  summary: "one mapping; set_memory_decrypted rewrites the PTEs (Linux 6.4+)",
  packageName: "@ivm/strategy-vtom-pte",
  eras: ["pte-bit"],
  ...writtenFor("vtom-pte", {
    from: "6.4",
    written: "approach (5): vTOM as a page-table bit, 812b0597fb40 and 25727aaed651 in 6.4",
  }),
  create: ({ memory }) => vzallocBuffers(vtomPte, memory),
};
