import type { PerProfile } from "../names.js";
import { type Sourced, sourced } from "../sourced.js";

/**
 * How swiotlb_do_find_slots / swiotlb_search_pool_area decides it has looked at every slot:
 * `wrap` (stop when the index returns to where it started; can spin for ever with min_align_mask) or
 * `slots-checked` (count the slots looked at, 7c3940bf81e5).
 */
export type SlotSearchTermination = "wrap" | "slots-checked";

/**
 * Where the Isolation VM's bounce pool comes from and how it becomes host-visible:
 * - `hyperv-iommu`: hyperv_iommu_swiotlb_init memblock-allocates the pool early (a warning and no pool
 *   when memblock cannot), hyperv_iommu_swiotlb_later_init makes it visible and remaps it above vTOM;
 * - `remap`: swiotlb_init's memblock_alloc_low pool, made visible by swiotlb_update_mem_attributes and
 *   remapped above vTOM (swiotlb_mem_remap);
 * - `pte`: the same pool, made visible in place (the direct map gets the shared bit), no remap.
 */
export type IvmPoolBoot = "hyperv-iommu" | "remap" | "pte";

/** What the swiotlb layer (kernel/dma/swiotlb.c, drivers/iommu/hyperv-iommu.c) reads from a profile. */
export interface SwiotlbBehaviour {
  readonly searchTermination: Sourced<SlotSearchTermination>;
  readonly poolBoot: Sourced<IvmPoolBoot>;
}

// The rows below are filled and checked against the kernel sources in the profiles commit that follows.
const WRAP = sourced<SlotSearchTermination>(
  "wrap",
  "26a7e094783d",
  "swiotlb: refactor swiotlb_tbl_map_single",
  "5.12",
);
const SLOTS_CHECKED = sourced<SlotSearchTermination>(
  "slots-checked",
  "7c3940bf81e5",
  "swiotlb: fix the deadlock in swiotlb_do_find_slots",
  "6.3",
);
const HYPERV_IOMMU = sourced<IvmPoolBoot>(
  "hyperv-iommu",
  "743b237c3a7b",
  "scsi: storvsc: Add Isolation VM support for storvsc driver",
  "5.17",
);
const REMAP = sourced<IvmPoolBoot>(
  "remap",
  "a5ddb7458c2f",
  "swiotlb: Add swiotlb bounce buffer remap function for HV IVM",
  "5.18",
);
const PTE = sourced<IvmPoolBoot>(
  "pte",
  "812b0597fb40",
  "x86/hyperv: Change vTOM handling to use standard coco mechanisms",
  "6.4",
);

/** The swiotlb table: one row per profile. */
export const swiotlbBehaviours: PerProfile<SwiotlbBehaviour> = {
  "5.17": { searchTermination: WRAP, poolBoot: HYPERV_IOMMU },
  "6.1": { searchTermination: WRAP, poolBoot: REMAP },
  "6.1.91": { searchTermination: SLOTS_CHECKED, poolBoot: REMAP },
  "6.4": { searchTermination: SLOTS_CHECKED, poolBoot: PTE },
  "6.6": { searchTermination: SLOTS_CHECKED, poolBoot: PTE },
  "6.9": { searchTermination: SLOTS_CHECKED, poolBoot: PTE },
  "6.12": { searchTermination: SLOTS_CHECKED, poolBoot: PTE },
};
