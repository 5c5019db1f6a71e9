import type { FindingLog, ProfileName } from "@ivm/kernel";
import { DMA_ATTR_NO_WARN, type SwiotlbDevice } from "./bounce-types.js";
import { badCaller, invariant, SwiotlbError } from "./errors.js";
import { type Clock, monotonicCounterClock, RateLimit, type RateLimitOptions } from "./ratelimit.js";
import { IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE, PAGE_SHIFT, PAGE_SIZE } from "./sizing.js";

/** INVALID_PHYS_ADDR is ~(phys_addr_t)0 in the kernel; −1 here (no valid address is negative). */
export const INVALID_PHYS_ADDR = -1 as const;

/**
 * How a search decides it has looked everywhere:
 * - `wrap` (default; 5.15–6.2): stop when the index comes back to exactly where it started. With a
 *   min_align_mask the +1 skips can put the index on a cycle that never meets the start again; the
 *   kernel then spins forever under the pool lock. The model detects that cycle and throws a
 *   `SwiotlbError` (EDEADLK, fault "lockup") without changing any state.
 * - `slots-checked` (7c3940bf81e5 "swiotlb: fix the deadlock in swiotlb_do_find_slots", 6.3, sent to
 *   stable): count the slots looked at (+1 per skip, +stride per step) and stop at the area size.
 */
export type SearchTermination = "wrap" | "slots-checked";

export interface IoTlbMemOptions {
  /** Guest-physical address of slot 0 (io_tlb_mem.start); the kernel's pool is page-aligned. */
  readonly start: number;
  /** Slot count; a multiple of IO_TLB_SEGSIZE, as every kernel sizing path makes it. */
  readonly nslabs: number;
  /** Areas (6.0+ "swiotlb: Split up single swiotlb lock"); a power of two. Default 1: the 5.15–5.19 single lock. */
  readonly nareas?: number;
  /** phys_to_dma_unencrypted(start); the slot-address alignment check compares these bits. Default `start`. */
  readonly dmaStart?: number;
  readonly searchTermination?: SearchTermination;
  /** Simulated milliseconds for the printk ratelimit. Default: a counter advancing 1 ms per reading. */
  readonly clock?: Clock;
  /** Receives every kernel log line the pool would print. */
  readonly printk?: (line: string) => void;
  /** The "swiotlb buffer is full" ratelimit; default 10 messages per 5 s. */
  readonly ratelimit?: RateLimitOptions;
  /** Fault knob: consulted once per search; true makes the search fail as if the pool were full. */
  readonly injectFailure?: () => boolean;
  /** Where a search that the `wrap` rule would never end is reported (id 7c3940bf81e5), and for which kernel. */
  readonly findings?: { readonly log: FindingLog; readonly profile: ProfileName };
}

/** The id of the finding a never-ending `wrap` search reports: the commit that fixed it. */
export const SLOT_SEARCH_FINDING = "7c3940bf81e5" as const;

export interface FindSlotsOptions {
  /** The 5.16+ alloc_align_mask argument (0 for streaming mappings). */
  readonly allocAlignMask?: number;
  /** raw_smp_processor_id(): picks the first area searched. Default 0. */
  readonly cpu?: number;
  /** DMA attrs; DMA_ATTR_NO_WARN silences the "buffer is full" warning. */
  readonly attrs?: number;
}

/** A snapshot of the pool's counters. */
export interface IoTlbStats {
  readonly nslabs: number;
  readonly nareas: number;
  /** Slots in use (io_tlb_mem.used, summed over areas). */
  readonly used: number;
  /** High-water mark of `used` (the 6.x debugfs io_tlb_used_hiwater). */
  readonly peakUsed: number;
  readonly liveMappings: number;
  readonly allocations: number;
  readonly releases: number;
  /** Searches that returned −1. */
  readonly failures: number;
  /** Searches that, under the `wrap` rule, would have spun forever. */
  readonly lockups: number;
  /** "swiotlb buffer is full" lines printed. */
  readonly fullWarningsPrinted: number;
  /** "swiotlb buffer is full" lines the ratelimit swallowed. */
  readonly fullWarningsSuppressed: number;
  /** Failures with DMA_ATTR_NO_WARN (not offered to the ratelimit at all). */
  readonly fullWarningsNoWarn: number;
}

/** A live mapping found from its bounce address (see `IoTlbMem.mappingAt`). */
export interface IoTlbMapping {
  readonly index: number;
  readonly nslots: number;
  readonly offset: number;
  readonly origAddr: number;
  readonly allocSize: number;
}

const SLOT_MASK = IO_TLB_SIZE - 1;
const SEG_MASK = IO_TLB_SEGSIZE - 1;
/** Mask of the address bits above the in-slot offset (~(IO_TLB_SIZE - 1) as a u32). */
const NOT_SLOT_MASK = ~SLOT_MASK >>> 0;

/** Low 32 bits of an address (the kernel's alignment masks are `unsigned int`). */
function lo32(addr: number): number {
  return addr >>> 0;
}

/** ALIGN(x, a) with the kernel's bit trick (a is meant to be a power of two; the trick is kept as is). */
function align32(x: number, a: number): number {
  return ((x + a - 1) & ~(a - 1)) >>> 0;
}

function isSafeNonNegative(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function checkMask32(name: string, mask: number): void {
  if (!Number.isInteger(mask) || mask < 0 || mask > 0xffff_ffff) {
    throw badCaller("bad-mask", `${name} must be a 32-bit unsigned integer, got ${mask}`);
  }
}

/**
 * The bounce pool's slot allocator (struct io_tlb_mem and its slot array), one typed array per
 * field. Every slot is IO_TLB_SIZE bytes at `start + i * IO_TLB_SIZE`; `list[i]` is the number of
 * free slots from i up to the next used slot or the end of i's 128-slot segment, whichever is first.
 */
export class IoTlbMem {
  readonly start: number;
  readonly end: number;
  readonly nslabs: number;
  readonly nareas: number;
  readonly areaNslabs: number;
  readonly dmaStart: number;
  readonly searchTermination: SearchTermination;

  /** io_tlb_slot.list */
  private readonly list: Uint32Array;
  /** io_tlb_slot.orig_addr (INVALID_PHYS_ADDR when free) */
  private readonly origAddr: Float64Array;
  /** io_tlb_slot.alloc_size (size_t; stored modulo 2^32, see `findSlots`) */
  private readonly allocSize: Uint32Array;
  /**
   * Model-only: slot count at the first slot of each live mapping, 0 elsewhere. The kernel keeps no
   * such record and trusts the caller's address; the model uses it to refuse bad releases.
   */
  private readonly headSlots: Uint32Array;
  /** io_tlb_area.index / .used (a single area is the 5.15–5.19 io_tlb_mem.index / .used). */
  private readonly areaIndex: Uint32Array;
  private readonly areaUsed: Uint32Array;

  private readonly clock: Clock;
  private readonly printk: ((line: string) => void) | undefined;
  private readonly fullLimit: RateLimit;
  private readonly injectFailure: (() => boolean) | undefined;
  private readonly findings: IoTlbMemOptions["findings"];

  private usedTotal = 0;
  private peak = 0;
  private live = 0;
  private allocations = 0;
  private releases = 0;
  private failures = 0;
  private lockups = 0;
  private noWarn = 0;

  constructor(options: IoTlbMemOptions) {
    const { start, nslabs } = options;
    const nareas = options.nareas ?? 1;
    if (!isSafeNonNegative(start) || start % IO_TLB_SIZE !== 0) {
      throw badCaller("bad-pool", `start must be a 2 KiB-aligned address, got ${start}`);
    }
    // a partial last segment would let list[] promise slots past the end of the pool
    if (!Number.isInteger(nslabs) || nslabs <= 0 || nslabs % IO_TLB_SEGSIZE !== 0 || nslabs >= 2 ** 31) {
      throw badCaller("bad-pool", `nslabs must be a positive multiple of ${IO_TLB_SEGSIZE}, got ${nslabs}`);
    }
    if (!Number.isInteger(nareas) || nareas < 1 || (nareas & (nareas - 1)) !== 0 || nareas > nslabs) {
      throw badCaller("bad-pool", `nareas must be a power of two no larger than nslabs, got ${nareas}`);
    }
    const end = start + nslabs * IO_TLB_SIZE;
    if (!Number.isSafeInteger(end)) throw badCaller("bad-pool", "pool ends beyond 2^53");
    const dmaStart = options.dmaStart ?? start;
    if (!isSafeNonNegative(dmaStart)) throw badCaller("bad-pool", `bad dmaStart ${dmaStart}`);

    this.start = start;
    this.end = end;
    this.nslabs = nslabs;
    this.nareas = nareas;
    this.areaNslabs = Math.floor(nslabs / nareas);
    this.dmaStart = dmaStart;
    this.searchTermination = options.searchTermination ?? "wrap";
    this.clock = options.clock ?? monotonicCounterClock();
    this.printk = options.printk;
    this.fullLimit = new RateLimit(options.ratelimit);
    this.injectFailure = options.injectFailure;
    this.findings = options.findings;

    this.list = new Uint32Array(nslabs);
    this.origAddr = new Float64Array(nslabs).fill(INVALID_PHYS_ADDR);
    this.allocSize = new Uint32Array(nslabs);
    this.headSlots = new Uint32Array(nslabs);
    this.areaIndex = new Uint32Array(nareas);
    this.areaUsed = new Uint32Array(nareas);
    // swiotlb_init_io_tlb_mem: each slot starts with the distance to the end of its segment
    for (let i = 0; i < nslabs; i++) this.list[i] = IO_TLB_SEGSIZE - (i & SEG_MASK);
  }

  /** Address of slot `i` (slot_addr(start, i)). */
  slotAddr(i: number): number {
    return this.start + i * IO_TLB_SIZE;
  }

  /** Whether `addr` lies inside the pool (is_swiotlb_buffer). */
  contains(addr: number): boolean {
    return addr >= this.start && addr < this.end;
  }

  /** io_tlb_mem.used (all areas). */
  get used(): number {
    return this.usedTotal;
  }

  /** The next-fit cursor of area `area` (io_tlb_mem.index for the single-lock pool). */
  indexOf(area = 0): number {
    return this.areaIndex[area] ?? 0;
  }

  usedIn(area: number): number {
    return this.areaUsed[area] ?? 0;
  }

  listAt(i: number): number {
    return this.list[i] ?? 0;
  }

  origAddrAt(i: number): number {
    return this.origAddr[i] ?? INVALID_PHYS_ADDR;
  }

  allocSizeAt(i: number): number {
    return this.allocSize[i] ?? 0;
  }

  /** A copy of list[] (for tests and visualisation). */
  listSnapshot(): Uint32Array {
    return this.list.slice();
  }

  stats(): IoTlbStats {
    return {
      nslabs: this.nslabs,
      nareas: this.nareas,
      used: this.usedTotal,
      peakUsed: this.peak,
      liveMappings: this.live,
      allocations: this.allocations,
      releases: this.releases,
      failures: this.failures,
      lockups: this.lockups,
      fullWarningsPrinted: this.fullLimit.printedTotal,
      fullWarningsSuppressed: this.fullLimit.suppressedTotal,
      fullWarningsNoWarn: this.noWarn,
    };
  }

  /**
   * Mirrors swiotlb_find_slots (5.15–5.19; per area as swiotlb_do_find_slots in 6.0–6.2) plus the
   * orig_addr bookkeeping swiotlb_tbl_map_single does right after it. `allocSize` is the caller's size;
   * the search works on `allocSize + offset`, where offset is the original address's position inside a
   * slot under min_align_mask (the kernel passes that padded size in). Returns the first slot index, or
   * −1 when nothing fits (counted, and warned about through the ratelimit unless DMA_ATTR_NO_WARN).
   * `attrs` (default `options.attrs`) lets a caller pass its DMA attrs without building an options object.
   */
  findSlots(
    dev: SwiotlbDevice,
    origAddr: number,
    allocSize: number,
    options: FindSlotsOptions = {},
    attrs: number = options.attrs ?? 0,
  ): number {
    const minAlignMask = dev.minAlignMask;
    checkMask32("minAlignMask", minAlignMask);
    const allocAlignMask = options.allocAlignMask ?? 0;
    checkMask32("allocAlignMask", allocAlignMask);
    if (!isSafeNonNegative(origAddr)) throw badCaller("bad-address", `bad original address ${origAddr}`);
    if (!isSafeNonNegative(allocSize)) throw badCaller("bad-size", `bad allocation size ${allocSize}`);
    const boundary = this.boundaryOf(dev);

    // swiotlb_align_offset
    const offset = lo32(origAddr) & minAlignMask & SLOT_MASK;
    const padded = allocSize + offset;
    const nslots = Math.ceil(padded / IO_TLB_SIZE);
    // BUG_ON(!nslots); a request larger than a segment can never satisfy list[i] >= nslots
    if (nslots === 0) throw badCaller("zero-size", "a mapping of zero slots");

    const iotlbAlignMask = (minAlignMask & NOT_SLOT_MASK) >>> 0;
    // don't try slots that cannot satisfy the alignment; page-sized requests step by pages
    let stride = (iotlbAlignMask >>> IO_TLB_SHIFT) + 1;
    if (padded >= PAGE_SIZE) stride = Math.max(stride, stride * 2 ** (PAGE_SHIFT - IO_TLB_SHIFT));
    stride = Math.max(stride, (allocAlignMask >>> IO_TLB_SHIFT) + 1);

    // swiotlb_find_slots (6.0+): own area first, then the others in order
    const first = (options.cpu ?? 0) & (this.nareas - 1);
    if (this.injectFailure?.() !== true) {
      let area = first;
      do {
        const index = this.areaFindSlots(area, origAddr, allocSize, nslots, stride, iotlbAlignMask, boundary);
        if (index >= 0) return index;
        area = area + 1 >= this.nareas ? 0 : area + 1;
      } while (area !== first);
    }

    this.failures++;
    if ((attrs & DMA_ATTR_NO_WARN) !== 0) {
      this.noWarn++;
    } else {
      // printed from swiotlb_tbl_map_single in the kernel; one ratelimit state per call site
      const printed = this.fullLimit.check(this.clock(), (missed) =>
        this.printk?.(`swiotlb_tbl_map_single: ${missed} callbacks suppressed`),
      );
      if (printed) {
        this.printk?.(
          `swiotlb buffer is full (sz: ${allocSize} bytes), total ${this.nslabs} (slots), used ${this.usedTotal} (slots)`,
        );
      }
    }
    return -1;
  }

  /** The device's segment boundary as (boundary size in slots, tbl_dma_addr), or undefined for none. */
  private lastBoundaryMask: number | undefined;
  private lastBoundary: { readonly slots: number; readonly tblDmaAddr: number } | undefined;

  private boundaryOf(
    dev: SwiotlbDevice,
  ): { readonly slots: number; readonly tblDmaAddr: number } | undefined {
    const mask = dev.segBoundaryMask;
    if (mask === undefined) return undefined;
    // One object per mask: a device maps with the same boundary every time.
    if (mask === this.lastBoundaryMask && this.lastBoundary !== undefined) return this.lastBoundary;
    const size = mask + 1;
    if (!Number.isSafeInteger(size) || size < IO_TLB_SIZE || Math.log2(size) % 1 !== 0) {
      throw badCaller("bad-mask", `segBoundaryMask must be 2^k - 1 with 11 <= k < 53, got ${mask}`);
    }
    // dma_addr & (2^k - 1) == dma_addr mod 2^k, exact beyond 32 bits
    this.lastBoundaryMask = mask;
    this.lastBoundary = { slots: size / IO_TLB_SIZE, tblDmaAddr: this.dmaStart % size };
    return this.lastBoundary;
  }

  private areaFindSlots(
    area: number,
    origAddr: number,
    allocSize: number,
    nslots: number,
    stride: number,
    iotlbAlignMask: number,
    boundary: { readonly slots: number; readonly tblDmaAddr: number } | undefined,
  ): number {
    const areaNslabs = this.areaNslabs;
    const used = this.areaUsed[area] ?? 0;
    // fail fast without walking a pool that cannot have room
    if (nslots > areaNslabs - used) return -1;

    const base = area * areaNslabs;
    const tblDmaAddr = boundary === undefined ? this.dmaStart : boundary.tblDmaAddr;
    const boundaryShift = boundary === undefined ? 0 : Math.ceil(boundary.tblDmaAddr / IO_TLB_SIZE);
    const origBits = lo32(origAddr) & iotlbAlignMask;
    const list = this.list;

    // wrap_area_index: an index past the area's end starts over at 0 (no closure: this runs per mapping)
    let index = align32(this.areaIndex[area] ?? 0, stride);
    if (index >= areaNslabs) index = 0;
    const wrap = index;
    let steps = 0;
    let checked = 0;
    let slot = -1;
    for (;;) {
      const slotIndex = base + index;
      let advance: number;
      // orig_addr 0 (swiotlb_alloc) skips the alignment check, as the kernel does
      if (origAddr !== 0 && (lo32(tblDmaAddr + slotIndex * IO_TLB_SIZE) & iotlbAlignMask) !== origBits) {
        advance = 1;
      } else {
        // iommu_is_span_boundary against the device's segment boundary, if it has one
        const crosses =
          boundary !== undefined && ((boundaryShift + slotIndex) % boundary.slots) + nslots > boundary.slots;
        if (!crosses && (list[slotIndex] ?? 0) >= nslots) {
          slot = slotIndex;
          break;
        }
        advance = stride;
      }
      index += advance;
      if (index >= areaNslabs) index = 0;
      if (this.searchTermination === "slots-checked") {
        checked += advance;
        if (checked >= areaNslabs) return -1;
      } else {
        if (index === wrap) return -1;
        // the walk depends only on the index: if it has not come back within areaNslabs steps it is on
        // a cycle that excludes `wrap`, and the kernel would never leave this loop
        if (++steps >= areaNslabs) {
          this.lockups++;
          this.findings?.log.record({
            id: SLOT_SEARCH_FINDING,
            profile: this.findings.profile,
            invariant: "termination",
            what: `a search for ${nslots} slots (stride ${stride}, orig 0x${origAddr.toString(16)}) cycles without returning to index ${wrap}: the CPU spins under the pool lock for ever`,
            where: "swiotlb_do_find_slots",
          });
          throw new SwiotlbError(
            "EDEADLK",
            "lockup",
            "search-never-wraps",
            `slot search for ${nslots} slots (orig 0x${origAddr.toString(16)}, stride ${stride}) never returns to index ${wrap}: the kernel spins here forever (fixed by 7c3940bf81e5)`,
          );
        }
      }
    }

    // taken: no free run starts inside; record what swiotlb_tbl_map_single records
    for (let i = slot, k = 0; k < nslots; i++, k++) {
      list[i] = 0;
      // (allocSize + offset) - (offset + k slots), in size_t: a later slot underflows when the offset is
      // large and the size small; the model keeps it modulo 2^32 (the kernel's is modulo 2^64)
      this.allocSize[i] = (allocSize - k * IO_TLB_SIZE) >>> 0;
      this.origAddr[i] = origAddr + k * IO_TLB_SIZE;
    }
    // the free slots just before the run now end where the run begins
    let count = 0;
    for (let i = slot - 1; i >= 0 && (i & SEG_MASK) !== SEG_MASK && list[i] !== 0; i--) list[i] = ++count;

    this.headSlots[slot] = nslots;
    this.areaIndex[area] = index + nslots >= areaNslabs ? 0 : index + nslots;
    this.areaUsed[area] = used + nslots;
    this.usedTotal += nslots;
    if (this.usedTotal > this.peak) this.peak = this.usedTotal;
    this.live++;
    this.allocations++;
    return slot;
  }

  /**
   * Finds the live mapping whose bounce address is `tlbAddr` (the slot address plus the original's
   * offset) the way swiotlb_release_slots does, and refuses anything the kernel would silently
   * mis-free: an address outside the pool, a slot that is free or inside another mapping, an offset
   * that differs from the one the mapping was made with.
   */
  mappingAt(dev: SwiotlbDevice, tlbAddr: number): IoTlbMapping {
    const index = this.mappingIndex(dev, tlbAddr);
    const offset = lo32(tlbAddr) & dev.minAlignMask & SLOT_MASK;
    return {
      index,
      nslots: this.headSlots[index]!,
      offset,
      origAddr: this.origAddr[index] ?? INVALID_PHYS_ADDR,
      allocSize: this.allocSize[index] ?? 0,
    };
  }

  /** mappingAt's checks alone: the first slot of the live mapping at `tlbAddr`, or the typed error. */
  mappingIndex(dev: SwiotlbDevice, tlbAddr: number): number {
    checkMask32("minAlignMask", dev.minAlignMask);
    if (!Number.isSafeInteger(tlbAddr) || !this.contains(tlbAddr)) {
      throw badCaller("outside-pool", `0x${tlbAddr.toString(16)} is not a swiotlb address`);
    }
    const offset = lo32(tlbAddr) & dev.minAlignMask & SLOT_MASK;
    const index = Math.floor((tlbAddr - offset - this.start) / IO_TLB_SIZE);
    const nslots = this.headSlots[index] ?? 0;
    if (index < 0 || nslots === 0) {
      const why = index >= 0 && (this.list[index] ?? 0) !== 0 ? "slot-free" : "not-mapping-start";
      throw badCaller(why, `no mapping starts at 0x${tlbAddr.toString(16)} (slot ${index})`);
    }
    const origAddr = this.origAddr[index] ?? INVALID_PHYS_ADDR;
    const expected = lo32(origAddr) & dev.minAlignMask & SLOT_MASK;
    if (tlbAddr !== this.slotAddr(index) + expected) {
      throw badCaller(
        "address-mismatch",
        `0x${tlbAddr.toString(16)} is not the bounce address 0x${(this.slotAddr(index) + expected).toString(16)} of the mapping at slot ${index}`,
      );
    }
    const allocSize = this.allocSize[index] ?? 0;
    // The message is built only on failure: this runs for every unmap and sync.
    if (Math.ceil((allocSize + offset) / IO_TLB_SIZE) !== nslots) {
      invariant(
        false,
        "slot-count",
        `slot ${index}: alloc_size ${allocSize} + offset ${offset} disagrees with ${nslots} slots`,
      );
    }
    return index;
  }

  /**
   * Mirrors swiotlb_release_slots: the freed run is merged with the free run after it (same segment
   * only) and the free slots before it are renumbered. Returns the number of slots freed.
   */
  releaseSlots(dev: SwiotlbDevice, tlbAddr: number): number {
    const index = this.mappingIndex(dev, tlbAddr);
    const nslots = this.headSlots[index]!;
    const area = Math.floor(index / this.areaNslabs);
    const areaUsed = this.areaUsed[area] ?? 0;
    if (!(area < this.nareas && areaUsed >= nslots))
      invariant(false, "area-used", `area ${area} would underflow`);
    const list = this.list;

    const after = index + nslots;
    let count = after < align32(index + 1, IO_TLB_SEGSIZE) ? (list[after] ?? 0) : 0;
    for (let i = after - 1; i >= index; i--) {
      list[i] = ++count;
      this.origAddr[i] = INVALID_PHYS_ADDR;
      this.allocSize[i] = 0;
    }
    for (let i = index - 1; i >= 0 && (i & SEG_MASK) !== SEG_MASK && list[i] !== 0; i--) list[i] = ++count;

    this.headSlots[index] = 0;
    this.areaUsed[area] = areaUsed - nslots;
    this.usedTotal -= nslots;
    this.live--;
    this.releases++;
    return nslots;
  }
}
