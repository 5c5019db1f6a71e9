import type { PerProfile } from "../names.js";
import { type Sourced, sourced } from "../sourced.js";

/** How vTOM is expressed: part of the physical address (through 6.3) or a page-table bit (6.4 on). */
export type Era = "address-bit" | "pte-bit";

/**
 * The sequence set_memory_decrypted/encrypted runs in a vTOM guest:
 * - `hypercall-only`: __set_memory_enc_dec hands the range to hv_set_mem_host_visibility; PTEs untouched;
 * - `tlb-flush`: __set_memory_enc_pgtable with no prepare step, the PTEs rewritten and flushed, then the
 *   hypercall as enc_status_change_finish;
 * - `clear-present`: prepare = hv_vtom_clear_present (PTEs not present), finish = the hypercall, then
 *   the PTEs present again.
 */
export type ConversionSequence = "hypercall-only" | "tlb-flush" | "clear-present";

/**
 * The error set_memory_* returns when the host-visibility hypercall fails:
 * - `wrapper`: hv_set_mem_host_visibility's own code (-EFAULT for a failed hypercall, -ENOMEM);
 * - `eio`: the callback reported failure as a bool and __set_memory_enc_pgtable returns -EIO;
 * - `callback`: the callbacks return int and set_memory_* passes the callback's code through.
 */
export type ConversionErrors = "wrapper" | "eio" | "callback";

/** How hv_do_rep_hypercall treats the rep count the hypervisor reports as completed. */
export type RepCountHandling = "trusted";

/** hv_map_memory's page protection for the second mapping above vTOM (address-bit era only). */
export type MapMemoryPgprot = "PAGE_KERNEL_IO" | "PAGE_KERNEL" | "none";

/** What the hypercall layer (arch/x86/hyperv/ivm.c, hv_init.c, mm/pat/set_memory.c) reads from a profile. */
export interface HypercallBehaviour {
  readonly era: Sourced<Era>;
  readonly conversion: Sourced<ConversionSequence>;
  readonly conversionErrors: Sourced<ConversionErrors>;
  readonly repCount: Sourced<RepCountHandling>;
  readonly mapMemoryPgprot: Sourced<MapMemoryPgprot>;
}

// The rows below are filled and checked against the kernel sources in the profiles commit that follows.
const ADDRESS_BIT = sourced<Era>(
  "address-bit",
  "810a52126502",
  "x86/hyperv: Add new hvcall guest address host visibility support",
  "5.16",
);
const PTE_BIT = sourced<Era>(
  "pte-bit",
  "812b0597fb40",
  "x86/hyperv: Change vTOM handling to use standard coco mechanisms",
  "6.4",
);

const ADDRESS_BIT_HYPERCALL: HypercallBehaviour = {
  era: ADDRESS_BIT,
  conversion: { ...ADDRESS_BIT, value: "hypercall-only" },
  conversionErrors: { ...ADDRESS_BIT, value: "wrapper" },
  repCount: sourced("trusted", "806c89273f17", "x86/hyper-v: Implement rep hypercalls", "4.18"),
  mapMemoryPgprot: sourced(
    "PAGE_KERNEL_IO",
    "846da38de0e8",
    "net: netvsc: Add Isolation VM support for netvsc driver",
    "5.17",
  ),
};

const PTE_BIT_HYPERCALL: HypercallBehaviour = {
  era: PTE_BIT,
  conversion: { ...PTE_BIT, value: "tlb-flush" },
  conversionErrors: { ...PTE_BIT, value: "eio" },
  repCount: ADDRESS_BIT_HYPERCALL.repCount,
  mapMemoryPgprot: sourced(
    "none",
    "25727aaed651",
    "hv_netvsc: Remove second mapping of send and recv buffers",
    "6.4",
  ),
};

const CLEAR_PRESENT_HYPERCALL: HypercallBehaviour = {
  ...PTE_BIT_HYPERCALL,
  conversion: sourced(
    "clear-present",
    "0f34d1123486",
    "x86/hyperv: Make encrypted/decrypted changes safe for load_unaligned_zeropad()",
    "6.9",
  ),
};

/** The hypercall table: one row per profile. */
export const hypercallBehaviours: PerProfile<HypercallBehaviour> = {
  "5.17": ADDRESS_BIT_HYPERCALL,
  "6.1": ADDRESS_BIT_HYPERCALL,
  "6.1.91": ADDRESS_BIT_HYPERCALL,
  "6.4": PTE_BIT_HYPERCALL,
  "6.6": PTE_BIT_HYPERCALL,
  "6.9": CLEAR_PRESENT_HYPERCALL,
  "6.12": CLEAR_PRESENT_HYPERCALL,
};
