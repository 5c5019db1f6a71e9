import { PrefixViews } from "@ivm/memory";
import {
  type BounceMemory,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_TO_DEVICE,
  type SwiotlbDevice,
} from "./bounce-types.js";
import { badCaller } from "./errors.js";
import { INVALID_PHYS_ADDR, type IoTlbMem } from "./io-tlb.js";
import { IO_TLB_SIZE } from "./sizing.js";

/**
 * What swiotlb_sync_single_for_device copies:
 * - `by-direction` (default; 901c7280ca0d, 5.18-rc1, in stable 5.15.y–5.17.y): only for DMA_TO_DEVICE
 *   and DMA_BIDIRECTIONAL;
 * - `always`: aa6f8dcbab47 as first merged, which bounced unconditionally and broke ath9k access points
 *   until the partial revert above.
 */
export type SyncForDeviceRule = "by-direction" | "always";

export interface SwiotlbBounceOptions {
  readonly syncForDevice?: SyncForDeviceRule;
  /** cc_platform_has(CC_ATTR_MEM_ENCRYPT): the first map prints the once-only notice. */
  readonly memEncryptActive?: boolean;
  /** Receives every kernel log line the bounce code would print. */
  readonly printk?: (line: string) => void;
}

export interface BounceStats {
  /** Bytes copied original → bounce slot (map, sync_for_device). */
  readonly bytesToDevice: number;
  /** Bytes copied bounce slot → original (unmap, sync_for_cpu). */
  readonly bytesFromDevice: number;
  readonly copiesToDevice: number;
  readonly copiesFromDevice: number;
  readonly maps: number;
  readonly unmaps: number;
  /** tbl_map_single calls that returned DMA_MAPPING_ERROR (pool full or invalid sizes). */
  readonly mapErrors: number;
  /** mapping_size > alloc_size ("Invalid sizes"). */
  readonly invalidSizes: number;
  /** Copies skipped because the slot holds no mapping (orig_addr == INVALID_PHYS_ADDR). */
  readonly skippedUnmapped: number;
  /** swiotlb_bounce's dev_WARN_ONCE cases: access before the mapping start, or beyond alloc_size. */
  readonly boundsWarnings: number;
  /** Bytes successful maps asked for (their mapping sizes). */
  readonly bytesMapped: number;
  /**
   * Bytes the map step itself copied from the original into the slots. Invariant I5 (CVE-2022-0854):
   * equal to `bytesMapped`, whatever the direction, so a slot never exposes an earlier user's bytes.
   */
  readonly bytesCopiedAtMap: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function checkDirection(dir: number): void {
  // valid_dma_direction(): the DMA API BUG()s on anything else, DMA_NONE included
  if (dir !== DMA_BIDIRECTIONAL && dir !== DMA_TO_DEVICE && dir !== DMA_FROM_DEVICE) {
    throw badCaller("bad-direction", `DMA direction ${dir} is not valid for a streaming mapping`);
  }
}

function checkSize(name: string, size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw badCaller("bad-size", `bad ${name} ${size}`);
}

/**
 * The bounce half of swiotlb (swiotlb_tbl_map_single, swiotlb_tbl_unmap_single,
 * swiotlb_sync_single_for_cpu/_for_device, swiotlb_bounce) over a slot allocator and the memory
 * interface. Copy rules are the post-CVE-2022-0854 ones: map always copies the original into the
 * slot, whatever the direction and attrs, so a device that writes less than it was given can only
 * expose the caller's own bytes.
 */
export class SwiotlbBounce {
  readonly mem: IoTlbMem;
  private readonly memory: BounceMemory;
  private readonly syncForDeviceRule: SyncForDeviceRule;
  private readonly memEncryptActive: boolean;
  private readonly printk: ((line: string) => void) | undefined;
  private encryptNoticePrinted = false;
  private warnedBeforeStart = false;
  private warnedOverflow = false;
  private warnedInvalidSizes = false;
  private readonly scratch = new PrefixViews(new Uint8Array(IO_TLB_SIZE));
  private readonly counters: Mutable<BounceStats> = {
    bytesToDevice: 0,
    bytesFromDevice: 0,
    copiesToDevice: 0,
    copiesFromDevice: 0,
    maps: 0,
    unmaps: 0,
    mapErrors: 0,
    invalidSizes: 0,
    skippedUnmapped: 0,
    boundsWarnings: 0,
    bytesMapped: 0,
    bytesCopiedAtMap: 0,
  };

  constructor(mem: IoTlbMem, memory: BounceMemory, options: SwiotlbBounceOptions = {}) {
    if (!Number.isSafeInteger(memory.poolAlias) || memory.poolAlias < 0) {
      throw badCaller("bad-pool", `bad pool alias ${memory.poolAlias}`);
    }
    this.mem = mem;
    this.memory = memory;
    this.syncForDeviceRule = options.syncForDevice ?? "by-direction";
    this.memEncryptActive = options.memEncryptActive ?? false;
    this.printk = options.printk;
  }

  stats(): BounceStats {
    return { ...this.counters };
  }

  /**
   * Mirrors swiotlb_tbl_map_single: finds slots for `allocSize` bytes at `origAddr`'s slot offset,
   * copies `mappingSize` bytes of the original into them, and returns the bounce address (slot address
   * plus the offset), or DMA_MAPPING_ERROR.
   */
  tblMapSingle(
    dev: SwiotlbDevice,
    origAddr: number,
    mappingSize: number,
    allocSize: number,
    dir: number,
    attrs = 0,
    options: { readonly allocAlignMask?: number; readonly cpu?: number } = {},
  ): number {
    checkDirection(dir);
    checkSize("mapping size", mappingSize);
    checkSize("allocation size", allocSize);
    if (this.memEncryptActive && !this.encryptNoticePrinted) {
      this.encryptNoticePrinted = true;
      this.printk?.("Memory encryption is active and system is using DMA bounce buffers");
    }
    if (mappingSize > allocSize) {
      this.counters.invalidSizes++;
      this.counters.mapErrors++;
      if (!this.warnedInvalidSizes) {
        this.warnedInvalidSizes = true;
        this.printk?.(`Invalid sizes (mapping: ${mappingSize} bytes, alloc: ${allocSize} bytes)`);
      }
      return DMA_MAPPING_ERROR;
    }
    // attrs beside the caller's options rather than merged into a new object per mapping
    const index = this.mem.findSlots(dev, origAddr, allocSize, options, attrs);
    if (index < 0) {
      this.counters.mapErrors++;
      return DMA_MAPPING_ERROR;
    }
    const { mem } = this;
    const offset = (origAddr >>> 0) & dev.minAlignMask & (IO_TLB_SIZE - 1);
    const tlbAddr = mem.slotAddr(index) + offset;
    this.counters.maps++;
    this.counters.bytesMapped += mappingSize;
    // unconditional since 901c7280ca0d: even DMA_FROM_DEVICE, even DMA_ATTR_SKIP_CPU_SYNC
    this.counters.bytesCopiedAtMap += this.bounce(dev, tlbAddr, mappingSize, true);
    return tlbAddr;
  }

  /**
   * Mirrors swiotlb_tbl_unmap_single: copies back for DMA_FROM_DEVICE / DMA_BIDIRECTIONAL unless
   * DMA_ATTR_SKIP_CPU_SYNC, then frees the slots. A bad address is refused before anything is copied.
   */
  tblUnmapSingle(dev: SwiotlbDevice, tlbAddr: number, mappingSize: number, dir: number, attrs = 0): void {
    checkDirection(dir);
    checkSize("mapping size", mappingSize);
    this.mem.mappingIndex(dev, tlbAddr);
    if ((attrs & DMA_ATTR_SKIP_CPU_SYNC) === 0 && (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL)) {
      this.bounce(dev, tlbAddr, mappingSize, false);
    }
    this.mem.releaseSlots(dev, tlbAddr);
    this.counters.unmaps++;
  }

  /** Mirrors swiotlb_sync_single_for_cpu: the device's bytes go back to the original. */
  syncSingleForCpu(dev: SwiotlbDevice, tlbAddr: number, size: number, dir: number): void {
    checkDirection(dir);
    checkSize("size", size);
    this.checkInPool(tlbAddr);
    if (dir === DMA_FROM_DEVICE || dir === DMA_BIDIRECTIONAL) this.bounce(dev, tlbAddr, size, false);
  }

  /** Mirrors swiotlb_sync_single_for_device: the CPU's bytes go to the slot (see `SyncForDeviceRule`). */
  syncSingleForDevice(dev: SwiotlbDevice, tlbAddr: number, size: number, dir: number): void {
    checkDirection(dir);
    checkSize("size", size);
    this.checkInPool(tlbAddr);
    if (this.syncForDeviceRule === "always" || dir === DMA_TO_DEVICE || dir === DMA_BIDIRECTIONAL) {
      this.bounce(dev, tlbAddr, size, true);
    }
  }

  private checkInPool(tlbAddr: number): void {
    // the DMA layer only calls swiotlb for addresses is_swiotlb_buffer() accepted
    if (!Number.isSafeInteger(tlbAddr) || !this.mem.contains(tlbAddr)) {
      throw badCaller("outside-pool", `0x${tlbAddr.toString(16)} is not a swiotlb address`);
    }
  }

  /**
   * Mirrors swiotlb_bounce: the slot holding `tlbAddr` names the original address and the bytes left
   * in the mapping from that slot on; copies are clipped to them, as the kernel's checks do.
   */
  private bounce(dev: SwiotlbDevice, tlbAddr: number, size: number, toDevice: boolean): number {
    const { mem } = this;
    const index = Math.floor((tlbAddr - mem.start) / IO_TLB_SIZE);
    let origAddr = mem.origAddrAt(index);
    let allocSize = mem.allocSizeAt(index);
    if (origAddr === INVALID_PHYS_ADDR) {
      this.counters.skippedUnmapped++;
      return 0;
    }
    let tlbOffset = (tlbAddr - mem.start) & (IO_TLB_SIZE - 1);
    const origOffset = (origAddr >>> 0) & dev.minAlignMask & (IO_TLB_SIZE - 1);
    if (tlbOffset < origOffset) {
      this.boundsWarning(
        "before",
        `Access before mapping start detected. orig offset ${origOffset}, requested offset ${tlbOffset}.`,
      );
      return 0;
    }
    tlbOffset -= origOffset;
    if (tlbOffset > allocSize) {
      this.boundsWarning(
        "overflow",
        `Buffer overflow detected. Allocation size: ${allocSize}. Mapping size: ${size}+${tlbOffset}.`,
      );
      return 0;
    }
    origAddr += tlbOffset;
    allocSize -= tlbOffset;
    if (size > allocSize) {
      this.boundsWarning(
        "overflow",
        `Buffer overflow detected. Allocation size: ${allocSize}. Mapping size: ${size}.`,
      );
      size = allocSize;
    }
    if (size === 0) return 0;

    const buf = this.scratchOf(size);
    const aliasAddr = this.memory.poolAlias + (tlbAddr - mem.start);
    if (toDevice) {
      this.memory.orig.readPhys(origAddr, buf);
      this.memory.pool.writePhys(aliasAddr, buf);
      this.counters.bytesToDevice += size;
      this.counters.copiesToDevice++;
    } else {
      this.memory.pool.readPhys(aliasAddr, buf);
      this.memory.orig.writePhys(origAddr, buf);
      this.counters.bytesFromDevice += size;
      this.counters.copiesFromDevice++;
    }
    return size;
  }

  /**
   * The first `size` bytes of the bounce scratch, grown when needed: one view per size, kept (a device
   * maps buffers of a few sizes).
   */
  private scratchOf(size: number): Uint8Array {
    this.scratch.grow(size);
    return this.scratch.of(size);
  }

  private boundsWarning(kind: "before" | "overflow", line: string): void {
    this.counters.boundsWarnings++;
    // dev_WARN_ONCE: one line per call site for the life of the kernel
    if (kind === "before" ? this.warnedBeforeStart : this.warnedOverflow) return;
    if (kind === "before") this.warnedBeforeStart = true;
    else this.warnedOverflow = true;
    this.printk?.(line);
  }
}
