import type { PerProfile } from "../names.js";
import { type Sourced, sourced } from "../sourced.js";

/** How vTOM is expressed: part of the physical address (through 6.3) or a page-table bit (6.4 on). */
export type Era = "address-bit" | "pte-bit";

/**
 * The sequence set_memory_decrypted/encrypted runs in a vTOM guest:
 * - `hypercall-only`: __set_memory_enc_dec hands the range straight to hv_set_mem_host_visibility; the
 *   PTEs are not touched (hence the second mapping above vTOM);
 * - `tlb-flush`: __set_memory_enc_pgtable with no prepare callback (enc_tlb_flush_required is true):
 *   vm_unmap_aliases, the shared bit rewritten on the live PTEs and flushed, then the hypercall as
 *   enc_status_change_finish;
 * - `clear-present`: prepare = hv_vtom_clear_present (set_memory_np), the shared bit rewritten, finish =
 *   the hypercall, then set_memory_p — always, even after a failure.
 */
export type ConversionSequence = "hypercall-only" | "tlb-flush" | "clear-present";

/**
 * What set_memory_* returns when the host-visibility hypercall fails:
 * - `wrapper`: hv_set_mem_host_visibility's own code (-EFAULT for a failed hypercall, -ENOMEM for the
 *   PFN array, -EINVAL past 510 PFNs);
 * - `eio`: the callbacks return bool and __set_memory_enc_pgtable turns any failure into -EIO after the
 *   WARN_ONCE "CPA VMM failure to convert memory";
 * - `callback`: the callbacks return int (99c5c4c60e0d) and set_memory_* passes that code through
 *   after the same WARN_ONCE.
 */
export type ConversionErrors = "wrapper" | "eio" | "callback";

/**
 * How hv_do_rep_hypercall treats the reps-completed count in the status word. `trusted`: the loop
 * resumes from whatever count the hypervisor reports and stops once it is at least the request, so a
 * count above the request ends as success and a count that makes no progress re-issues the same call for
 * ever (touch_nmi_watchdog keeps the watchdog quiet). No kernel has changed this.
 */
export type RepCountHandling = "trusted";

/**
 * hv_map_memory's page protection for the second mapping above vTOM: `PAGE_KERNEL_IO` (5.17–6.3; the
 * frames carry the vTOM bit, so no C-bit is needed) or `none` once hv_map_memory is gone (6.4).
 */
export type MapMemoryPgprot = "PAGE_KERNEL_IO" | "none";

/** What the hypercall layer (arch/x86/hyperv/ivm.c, mshyperv.h, mm/pat/set_memory.c) reads from a profile. */
export interface HypercallBehaviour {
  readonly era: Sourced<Era>;
  readonly conversion: Sourced<ConversionSequence>;
  readonly conversionErrors: Sourced<ConversionErrors>;
  readonly repCount: Sourced<RepCountHandling>;
  readonly mapMemoryPgprot: Sourced<MapMemoryPgprot>;
}

// 5.16: hv_mark_gpa_visibility / hv_set_mem_host_visibility, called from __set_memory_enc_dec when
// hv_is_isolation_supported(); its failures are -EFAULT / -ENOMEM / -EINVAL as it returns them.
const VISIBILITY_HVCALL = "810a52126502";
const VISIBILITY_HVCALL_TITLE = "x86/hyperv: Add new hvcall guest address host visibility support";
const COCO = "812b0597fb40";
const COCO_TITLE = "x86/hyperv: Change vTOM handling to use standard coco mechanisms";

const ADDRESS_BIT_HYPERCALL: HypercallBehaviour = {
  era: sourced<Era>("address-bit", VISIBILITY_HVCALL, VISIBILITY_HVCALL_TITLE, "5.16"),
  conversion: sourced<ConversionSequence>(
    "hypercall-only",
    VISIBILITY_HVCALL,
    VISIBILITY_HVCALL_TITLE,
    "5.16",
  ),
  conversionErrors: sourced<ConversionErrors>("wrapper", VISIBILITY_HVCALL, VISIBILITY_HVCALL_TITLE, "5.16"),
  // hv_do_rep_hypercall's loop is the same in every profile (read in the 5.x x86 header, the
  // asm-generic one and linux-next at 6.19-rc5); this path first used it with the 5.16 hvcall.
  repCount: sourced<RepCountHandling>("trusted", VISIBILITY_HVCALL, VISIBILITY_HVCALL_TITLE, "5.16"),
  mapMemoryPgprot: sourced<MapMemoryPgprot>(
    "PAGE_KERNEL_IO",
    "846da38de0e8",
    "net: netvsc: Add Isolation VM support for netvsc driver",
    "5.17",
  ),
};

const PTE_BIT_HYPERCALL: HypercallBehaviour = {
  era: sourced<Era>("pte-bit", COCO, COCO_TITLE, "6.4"),
  conversion: sourced<ConversionSequence>("tlb-flush", COCO, COCO_TITLE, "6.4"),
  conversionErrors: sourced<ConversionErrors>("eio", COCO, COCO_TITLE, "6.4"),
  repCount: ADDRESS_BIT_HYPERCALL.repCount,
  // The same pull also switched hv_map_memory to pgprot_decrypted(PAGE_KERNEL_NOENC) (d33ddc92db8a) just
  // before its only caller went away; no released kernel ran that form.
  mapMemoryPgprot: sourced<MapMemoryPgprot>(
    "none",
    "25727aaed651",
    "hv_netvsc: Remove second mapping of send and recv buffers",
    "6.4",
  ),
};

const CLEAR_PRESENT_HYPERCALL: HypercallBehaviour = {
  ...PTE_BIT_HYPERCALL,
  conversion: sourced<ConversionSequence>(
    "clear-present",
    "0f34d1123486",
    "x86/hyperv: Make encrypted/decrypted changes safe for load_unaligned_zeropad()",
    "6.9",
  ),
};

const CALLBACK_CODES_HYPERCALL: HypercallBehaviour = {
  ...CLEAR_PRESENT_HYPERCALL,
  conversionErrors: sourced<ConversionErrors>(
    "callback",
    "99c5c4c60e0d",
    "x86/mm: Make x86_platform.guest.enc_status_change_*() return an error",
    "6.11",
  ),
};

/**
 * The hypercall table. 6.6.31 keeps the 6.6 sequence: 0f34d1123486 was not tagged for stable, and
 * 99c5c4c60e0d reached the stable trees only in October 2024 (as a dependency of a TDX fix), after
 * 6.6.31 (May 2024). 6.18 as read in linux-next at 6.19-rc5.
 */
export const hypercallBehaviours: PerProfile<HypercallBehaviour> = {
  "5.17": ADDRESS_BIT_HYPERCALL,
  "6.1": ADDRESS_BIT_HYPERCALL,
  "6.1.91": ADDRESS_BIT_HYPERCALL,
  "6.4": PTE_BIT_HYPERCALL,
  "6.6": PTE_BIT_HYPERCALL,
  "6.6.31": PTE_BIT_HYPERCALL,
  "6.9": CLEAR_PRESENT_HYPERCALL,
  "6.12": CALLBACK_CODES_HYPERCALL,
  "6.18": CALLBACK_CODES_HYPERCALL,
};
