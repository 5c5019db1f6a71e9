import { HypercallError, type HypervLayer } from "@ivm/hypercall";
import { eraProfile, type FindingLog, type KernelProfile, withHardened } from "@ivm/kernel";
import { type BuddyAllocator, type GuestMemory, PAGE_OFFSET, PAGE_SIZE } from "@ivm/memory";
import { type BounceStats, SwiotlbBounce, type SyncForDeviceRule } from "./bounce.js";
import type { PhysAccess } from "./bounce-types.js";
import { SwiotlbError } from "./errors.js";
import { IoTlbMem, type IoTlbStats, type SearchTermination } from "./io-tlb.js";
import type { Clock, RateLimitOptions } from "./ratelimit.js";
import { IO_TLB_MIN_SLABS, IO_TLB_SEGSIZE, IO_TLB_SIZE, ivmSwiotlbNslabs } from "./sizing.js";

/** sizeof(struct io_tlb_slot) in 5.15: orig_addr 8, alloc_size 8, list 4, padded to 24. */
export const IO_TLB_SLOT_STRUCT_SIZE = 24 as const;
/** memblock_alloc_low's limit on x86-64 (ARCH_LOW_ADDRESS_LIMIT, 4 GiB). */
export const LOW_MEMORY_LIMIT: number = 2 ** 32;
/** Owner tags of the boot allocations. */
export const SWIOTLB_TAG = "swiotlb" as const;
export const SWIOTLB_SLOTS_TAG = "swiotlb-slots" as const;
export const SWIOTLB_REMAP_TAG = "swiotlb-remap" as const;

export interface SwiotlbBootOptions {
  /** Slot count (a multiple of 128). Default: the 5.17 IVM size, `ivmSwiotlbNslabs` of the guest's RAM. */
  readonly nslabs?: number;
  /** `swiotlb=<slabs>` on the command line (ignored when `nslabs` is given). */
  readonly swiotlbParamSlabs?: number;
  /** swiotlb=force in a VM that is not isolated: build the pool anyway (private, no hypercalls). */
  readonly force?: boolean;
  /** Areas (6.0+); a power of two. Default 1 (the single-lock 5.15–5.19 pool). */
  readonly nareas?: number;
  /**
   * The kernel whose swiotlb behaviours boot runs (`profile.swiotlb`): the slot search's termination,
   * where the pool comes from and what happens when memblock cannot hold it. Default: the hypercall
   * layer's profile (`hyperv.profile`), or the memory's era's representative kernel.
   */
  readonly profile?: KernelProfile;
  /** Where findings go (a `wrap` search that would never end). Default: `hyperv.findings`. */
  readonly findings?: FindingLog;
  /**
   * Overrides the profile's rule: "wrap" (5.15–6.2) can spin for ever under the pool lock (the model
   * then throws SwiotlbError EDEADLK and reports a finding instead of hanging); "slots-checked"
   * (7c3940bf81e5, 6.3 and 6.1.y) cannot.
   */
  readonly searchTermination?: SearchTermination;
  readonly syncForDevice?: SyncForDeviceRule;
  /**
   * memset of the pool through mem->vaddr after the conversion, as 5.17 swiotlb_update_mem_attributes
   * does; a later kernel dropped it (Kirill Shutemov, release unconfirmed). Default: true in the address-bit era, false in the pte-bit era.
   */
  readonly zeroAtBoot?: boolean;
  readonly clock?: Clock;
  readonly printk?: (line: string) => void;
  readonly ratelimit?: RateLimitOptions;
}

/** What boot did, measured. */
export interface SwiotlbBootReport {
  readonly nslabs: number;
  readonly startPfn: number;
  readonly poolPages: number;
  /** The io_tlb_slot array's pages (24 B per slot, memblock_alloc). */
  readonly slotArrayPfn: number;
  readonly slotArrayPages: number;
  /** Hypercalls, reps and pages of the boot-time visibility change (hypervisor counter deltas). */
  readonly hypercalls: number;
  readonly reps: number;
  readonly pagesMadeVisible: number;
  /** Whether the pool was made host-visible (an isolated guest). */
  readonly hostVisible: boolean;
  /** set_memory_decrypted failed; the kernel ignores its result, so the pool is partly private. */
  readonly visibilityError: string | null;
  /** Address-bit era: the memremap(start + vTOM) alias; null in the pte-bit era or if the remap failed. */
  readonly remapVa: number | null;
  readonly remapFailed: boolean;
}

/** Pool counters for reports. */
export interface SwiotlbPoolStats {
  readonly nslabs: number;
  readonly poolPages: number;
  readonly slotArrayPages: number;
  readonly bootHypercalls: number;
  readonly slotsUsed: number;
  readonly peakSlotsUsed: number;
  readonly liveMappings: number;
  readonly bytesToDevice: number;
  readonly bytesFromDevice: number;
  /** tbl_map_single calls that returned DMA_MAPPING_ERROR. */
  readonly mapFailures: number;
  readonly fullWarningsPrinted: number;
  readonly fullWarningsSuppressed: number;
  readonly lockups: number;
  readonly io: IoTlbStats;
  readonly bounce: BounceStats;
}

/** The default swiotlb pool (io_tlb_default_mem) wired to guest memory. Build it with `bootSwiotlb`. */
export interface SwiotlbPool {
  readonly memory: GuestMemory;
  readonly mem: IoTlbMem;
  readonly bounce: SwiotlbBounce;
  /**
   * mem->vaddr: the guest-usable address of slot 0, through which every bounce copy goes (the vTOM
   * remap in the address-bit era, the shared-bit direct map in the pte-bit era, the plain direct map
   * when not isolated).
   */
  readonly vaddr: number;
  readonly boot: SwiotlbBootReport;
  /** raw_smp_processor_id() for the area choice of the next search. */
  cpu: number;
  /** is_swiotlb_buffer for a DMA address (DMA address = private-alias physical address here). */
  contains(dmaAddr: number): boolean;
  stats(): SwiotlbPoolStats;
}

/**
 * The lowest pfn below `limitPfn` where `pages` free pages follow one another (the model's memblock
 * placement: the brief's lowest-fit rule, where the kernel's memblock goes top-down; both are low).
 */
function lowestFreeRun(buddy: BuddyAllocator, pages: number, limitPfn: number): number | null {
  let runStart = -1;
  let runEnd = -1;
  let found: number | null = null;
  buddy.forEachBlock((head, order, free) => {
    if (found !== null) return;
    if (!free) {
      runStart = -1;
      return;
    }
    const end = head + 2 ** order;
    if (runStart < 0 || head !== runEnd) runStart = head;
    runEnd = end;
    if (runStart + pages <= Math.min(runEnd, limitPfn)) found = runStart;
  });
  return found;
}

function viaMmu(memory: GuestMemory, base: number): PhysAccess {
  return {
    readPhys: (addr, dst) => memory.mmu.read(base + addr, dst),
    writePhys: (addr, src) => memory.mmu.write(base + addr, src),
  };
}

/**
 * Boots the default pool as the profile's IVM kernel does: the pool from memblock (5.17
 * hyperv_iommu_swiotlb_init: anywhere in RAM; 5.18 on swiotlb_init: below 4 GiB), the slot array, then
 * for an isolated guest the Hyper-V setup (ms_hyperv_init_platform forcing bounce
 * buffering) and swiotlb_update_mem_attributes: set_memory_decrypted over the pool's direct map, and in
 * the address-bit era a second mapping of pool + vTOM (memremap, modelled with vmap_pfn) that becomes
 * mem->vaddr. Returns null for a VM that is not isolated unless `force` asks for a pool, and null when
 * memblock cannot hold the pool: the kernel warns and boots without one (`no-pool`), or first halves the
 * slot count down to IO_TLB_MIN_SLABS (`halve`, 8d58aa484920).
 *
 * A failed conversion is recorded, not thrown (the kernel ignores set_memory_decrypted's result); a
 * failed remap leaves mem->vaddr on the private direct map, as the kernel does, so the first bounce
 * copy then faults through the MMU.
 */
export function bootSwiotlb(
  memory: GuestMemory,
  hyperv: HypervLayer | undefined,
  options: SwiotlbBootOptions = {},
): SwiotlbPool | null {
  const isolated = memory.isolated;
  if (!isolated && !options.force) return null;
  if (isolated && hyperv === undefined) {
    throw new SwiotlbError(
      "EINVAL",
      "bad-caller",
      "no-hyperv",
      "an isolated guest needs the hypercall layer",
    );
  }
  const profile = options.profile ?? hyperv?.profile ?? withHardened(eraProfile(memory.vtomMode));
  const findings = options.findings ?? hyperv?.findings;
  const behaviour = profile.swiotlb;
  let nslabs =
    options.nslabs ??
    ivmSwiotlbNslabs({
      guestMemBytes: memory.phys.bytes,
      ...(options.swiotlbParamSlabs === undefined ? {} : { swiotlbParamSlabs: options.swiotlbParamSlabs }),
    });
  const printk = options.printk;

  // 5.17 hyperv_iommu_swiotlb_init: memblock_alloc(size, PAGE_SIZE), anywhere in RAM; 5.18 on the
  // generic swiotlb_init: memblock_alloc_low, below 4 GiB
  const limitPfn =
    behaviour.poolBoot.value === "hyperv-iommu"
      ? memory.phys.pages
      : Math.min(memory.phys.pages, LOW_MEMORY_LIMIT / PAGE_SIZE);
  const requested = nslabs;
  let startPfn: number | null;
  let poolPages: number;
  for (;;) {
    poolPages = Math.ceil((nslabs * IO_TLB_SIZE) / PAGE_SIZE);
    startPfn = lowestFreeRun(memory.buddy, poolPages, limitPfn);
    if (startPfn !== null && memory.buddy.allocRange(startPfn, poolPages, { tag: SWIOTLB_TAG })) break;
    startPfn = null;
    if (behaviour.poolBoot.value === "hyperv-iommu") {
      printk?.("Fail to allocate Hyper-V swiotlb buffer.");
    } else {
      printk?.(
        `software IO TLB: swiotlb_init_remap: Failed to allocate ${poolPages * PAGE_SIZE} bytes tlb structure`,
      );
    }
    // 8d58aa484920: halve (whole segments) and retry down to IO_TLB_MIN_SLABS; before it, give up
    if (behaviour.poolAllocFailure.value === "no-pool" || nslabs <= IO_TLB_MIN_SLABS) return null;
    nslabs = Math.ceil(nslabs / 2 / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
  }
  if (nslabs !== requested) {
    printk?.(`software IO TLB: SWIOTLB bounce buffer size adjusted ${requested} -> ${nslabs} slabs`);
  }
  const bytes = nslabs * IO_TLB_SIZE;
  // swiotlb_init_with_tbl: the io_tlb_slot array, memblock_alloc (anywhere); the kernel panics on failure
  const slotArrayPages = Math.ceil((nslabs * IO_TLB_SLOT_STRUCT_SIZE) / PAGE_SIZE);
  const slotArrayPfn = lowestFreeRun(memory.buddy, slotArrayPages, memory.phys.pages);
  if (
    slotArrayPfn === null ||
    !memory.buddy.allocRange(slotArrayPfn, slotArrayPages, { tag: SWIOTLB_SLOTS_TAG })
  ) {
    memory.buddy.freeRange(startPfn, poolPages);
    throw new SwiotlbError(
      "ENOMEM",
      "bad-caller",
      "slots-alloc",
      `no ${slotArrayPages} pages for the slot array`,
    );
  }

  const start = startPfn * PAGE_SIZE;
  const mem = new IoTlbMem({
    start,
    nslabs,
    searchTermination: options.searchTermination ?? behaviour.searchTermination.value,
    ...(findings === undefined ? {} : { findings: { log: findings, profile: profile.name } }),
    // the memory model's allocation fault knob, site "swiotlb"
    injectFailure: () => memory.faults.shouldFail("swiotlb"),
    ...(options.nareas === undefined ? {} : { nareas: options.nareas }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(printk === undefined ? {} : { printk }),
    ...(options.ratelimit === undefined ? {} : { ratelimit: options.ratelimit }),
  });

  const directVa = memory.pageToVirt(startPfn);
  let vaddr = directVa;
  let remapVa: number | null = null;
  let remapFailed = false;
  let visibilityError: string | null = null;
  let hypercalls = 0;
  let reps = 0;
  let pagesMadeVisible = 0;
  if (isolated && hyperv !== undefined) {
    const before = { ...hyperv.hypervisor.counters };
    try {
      hyperv.setMemory.decrypted(directVa, poolPages);
    } catch (e) {
      // swiotlb_update_mem_attributes does not look at the result
      if (!(e instanceof HypercallError)) throw e;
      visibilityError = e.message;
    }
    const after = hyperv.hypervisor.counters;
    hypercalls = after.hypercalls - before.hypercalls;
    reps = after.reps - before.reps;
    pagesMadeVisible = after.pagesMadeVisible - before.pagesMadeVisible;
    if (memory.vtomMode === "address-bit") {
      // swiotlb_mem_remap: memremap(start + swiotlb_unencrypted_base) — frames above vTOM, no struct page
      const frames = new Float64Array(poolPages);
      for (let i = 0; i < poolPages; i++) frames[i] = startPfn + i + memory.vtomPfn;
      remapVa = memory.vmalloc.vmapPfn(frames, { tag: SWIOTLB_REMAP_TAG });
      if (remapVa === null) {
        remapFailed = true;
        printk?.(
          `Failed to map the unencrypted memory 0x${(start + memory.vtomPfn * PAGE_SIZE).toString(16)} size ${bytes.toString(16)}.`,
        );
      } else {
        vaddr = remapVa;
      }
    }
  }
  if (options.zeroAtBoot ?? memory.vtomMode === "address-bit") memory.mmu.fill(vaddr, bytes, 0);

  const bounce = new SwiotlbBounce(
    mem,
    { pool: viaMmu(memory, 0), poolAlias: vaddr, orig: viaMmu(memory, PAGE_OFFSET) },
    {
      memEncryptActive: isolated,
      ...(options.syncForDevice === undefined ? {} : { syncForDevice: options.syncForDevice }),
      ...(printk === undefined ? {} : { printk }),
    },
  );
  const boot: SwiotlbBootReport = {
    nslabs,
    startPfn,
    poolPages,
    slotArrayPfn,
    slotArrayPages,
    hypercalls,
    reps,
    pagesMadeVisible,
    hostVisible: isolated,
    visibilityError,
    remapVa,
    remapFailed,
  };
  return {
    memory,
    mem,
    bounce,
    vaddr,
    boot,
    cpu: 0,
    contains: (dmaAddr) => mem.contains(dmaAddr),
    stats: () => {
      const io = mem.stats();
      const b = bounce.stats();
      return {
        nslabs,
        poolPages,
        slotArrayPages,
        bootHypercalls: hypercalls,
        slotsUsed: io.used,
        peakSlotsUsed: io.peakUsed,
        liveMappings: io.liveMappings,
        bytesToDevice: b.bytesToDevice,
        bytesFromDevice: b.bytesFromDevice,
        mapFailures: b.mapErrors,
        fullWarningsPrinted: io.fullWarningsPrinted,
        fullWarningsSuppressed: io.fullWarningsSuppressed,
        lockups: io.lockups,
        io,
        bounce: b,
      };
    },
  };
}
