import type { PerProfile } from "../names.js";
import { type Sourced, sourced } from "../sourced.js";

/**
 * How the slot search (swiotlb_do_find_slots, later swiotlb_search_pool_area) decides it has looked at
 * every slot: `wrap` (stop when the index comes back to where it started; with min_align_mask the index
 * can cycle without meeting it, and the search spins for ever under the pool lock) or `slots-checked`
 * (count the slots looked at and stop at the area size, 7c3940bf81e5).
 */
export type SlotSearchTermination = "wrap" | "slots-checked";

/**
 * Where the Isolation VM's bounce pool comes from:
 * - `hyperv-iommu`: hyperv_iommu_swiotlb_init memblock_alloc()s the pool anywhere in RAM early (a
 *   pr_warn and no pool when memblock cannot), and hyperv_iommu_swiotlb_later_init makes it
 *   host-visible and remaps it above vTOM (swiotlb_update_mem_attributes);
 * - `swiotlb-init`: the generic swiotlb_init memblock_alloc_low()s the pool below 4 GiB; the same
 *   visibility change follows (with the remap above vTOM in the address-bit era only).
 */
export type IvmPoolBoot = "hyperv-iommu" | "swiotlb-init";

/**
 * What boot does when memblock cannot hold the pool: `no-pool` (a warning, and the guest boots without a
 * bounce pool: every mapping that needs one fails) or `halve` (8d58aa484920: halve the slot count, whole
 * segments, and retry down to IO_TLB_MIN_SLABS, then no pool).
 */
export type PoolAllocFailure = "no-pool" | "halve";

/** What the swiotlb layer (kernel/dma/swiotlb.c, drivers/iommu/hyperv-iommu.c) reads from a profile. */
export interface SwiotlbBehaviour {
  readonly searchTermination: Sourced<SlotSearchTermination>;
  readonly poolBoot: Sourced<IvmPoolBoot>;
  readonly poolAllocFailure: Sourced<PoolAllocFailure>;
}

// The wrap-around search as 5.15–6.2 have it; the +1 skips that can miss the start index came in with
// min_align_mask support.
const WRAP = sourced<SlotSearchTermination>(
  "wrap",
  "1f221a0d0dbf",
  "swiotlb: respect min_align_mask",
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
  "062a5c4260cd",
  "hyper-v: Enable swiotlb bounce buffer for Isolation VM",
  "5.17",
);
// 5.18's swiotlb init rework (this commit moved the Hyper-V case to the generic setup) dropped the Hyper-V
// pool: the IVM uses swiotlb_init's default pool, made visible by swiotlb_update_mem_attributes.
const SWIOTLB_INIT = sourced<IvmPoolBoot>(
  "swiotlb-init",
  "78013eaadf69",
  "x86: remove the IOMMU table infrastructure",
  "5.18",
);
const NO_POOL_5_17 = sourced<PoolAllocFailure>("no-pool", HYPERV_IOMMU.commit, HYPERV_IOMMU.title, "5.17");
const NO_POOL = sourced<PoolAllocFailure>("no-pool", SWIOTLB_INIT.commit, SWIOTLB_INIT.title, "5.18");
const HALVE = sourced<PoolAllocFailure>(
  "halve",
  "8d58aa484920",
  "swiotlb: reduce the swiotlb buffer size on allocation failure",
  "6.2",
);

/**
 * The swiotlb table. Both fixes reached 6.1.y long before 6.1.91: 7c3940bf81e5 in the stable queue of
 * 3 April 2023, 8d58aa484920 pushed to linux-6.1.y on 21 July 2023 (the release numbers 6.1.23 and
 * 6.1.40 are inferred from those dates).
 */
export const swiotlbBehaviours: PerProfile<SwiotlbBehaviour> = {
  "5.17": { searchTermination: WRAP, poolBoot: HYPERV_IOMMU, poolAllocFailure: NO_POOL_5_17 },
  "6.1": { searchTermination: WRAP, poolBoot: SWIOTLB_INIT, poolAllocFailure: NO_POOL },
  "6.1.91": {
    searchTermination: { ...SLOTS_CHECKED, since: "6.1.23" },
    poolBoot: SWIOTLB_INIT,
    poolAllocFailure: { ...HALVE, since: "6.1.40" },
  },
  "6.4": { searchTermination: SLOTS_CHECKED, poolBoot: SWIOTLB_INIT, poolAllocFailure: HALVE },
  "6.6": { searchTermination: SLOTS_CHECKED, poolBoot: SWIOTLB_INIT, poolAllocFailure: HALVE },
  "6.6.31": { searchTermination: SLOTS_CHECKED, poolBoot: SWIOTLB_INIT, poolAllocFailure: HALVE },
  "6.9": { searchTermination: SLOTS_CHECKED, poolBoot: SWIOTLB_INIT, poolAllocFailure: HALVE },
  "6.12": { searchTermination: SLOTS_CHECKED, poolBoot: SWIOTLB_INIT, poolAllocFailure: HALVE },
  "6.18": { searchTermination: SLOTS_CHECKED, poolBoot: SWIOTLB_INIT, poolAllocFailure: HALVE },
};
