import { DMA_MAPPING_ERROR } from "./bounce-types.js";
import { checkDmaDirection } from "./dma-direct.js";
import type { DmaOps } from "./dma-ops.js";
import { badCaller } from "./errors.js";
import type { SwiotlbPool } from "./pool.js";

/**
 * dma-direct with every streaming mapping forced through the bounce pool (swiotlb_force / force_bounce,
 * as an IVM guest runs): map is swiotlb_map (tbl_map_single with mapping size = allocation size, the
 * DMA address being the slot's private-alias physical address, phys_to_dma_unencrypted); unmap and
 * the syncs go to swiotlb for addresses inside the pool.
 *
 * The kernel silently ignores an unmap or sync of an address outside the pool (is_swiotlb_buffer is
 * false); under forced bouncing no valid mapping lives there, so the model refuses it as a bad caller.
 */
export function swiotlbDmaOps(pool: SwiotlbPool): DmaOps {
  const inPool = (what: string, dmaAddr: number): void => {
    if (!Number.isSafeInteger(dmaAddr) || !pool.contains(dmaAddr)) {
      throw badCaller(
        "outside-pool",
        `${what} of 0x${dmaAddr.toString(16)}, which no swiotlb mapping returned`,
      );
    }
  };
  // The slot search's options, one object refilled per mapping (tblMapSingle does not keep it).
  const mapOptions = { cpu: 0 };
  return {
    name: "swiotlb",
    mapPage: (dev, phys, size, dir, attrs) => {
      checkDmaDirection(dir);
      mapOptions.cpu = pool.cpu;
      const tlb = pool.bounce.tblMapSingle(dev, phys, size, size, dir, attrs, mapOptions);
      // the pool sits in low memory, so the dma_capable() check after the mapping always passes here
      return tlb === DMA_MAPPING_ERROR ? DMA_MAPPING_ERROR : tlb;
    },
    unmapPage: (dev, dmaAddr, size, dir, attrs) => {
      checkDmaDirection(dir);
      inPool("unmap", dmaAddr);
      pool.bounce.tblUnmapSingle(dev, dmaAddr, size, dir, attrs);
    },
    syncSingleForCpu: (dev, dmaAddr, size, dir) => {
      checkDmaDirection(dir);
      inPool("sync_for_cpu", dmaAddr);
      pool.bounce.syncSingleForCpu(dev, dmaAddr, size, dir);
    },
    syncSingleForDevice: (dev, dmaAddr, size, dir) => {
      checkDmaDirection(dir);
      inPool("sync_for_device", dmaAddr);
      pool.bounce.syncSingleForDevice(dev, dmaAddr, size, dir);
    },
  };
}

/**
 * What devices of an isolated guest get when boot could not allocate the bounce pool: bouncing is still
 * forced, and swiotlb_tbl_map_single finds no pool ("Can not allocate SWIOTLB buffer earlier and can't
 * now provide you with the DMA bounce buffer"): every streaming mapping is DMA_MAPPING_ERROR. No address
 * can be unmapped or synced, since none was ever handed out.
 */
export function noPoolDmaOps(printk?: (line: string) => void): DmaOps {
  const refuse = (what: string, dmaAddr: number): never => {
    throw badCaller("outside-pool", `${what} of 0x${dmaAddr.toString(16)}: this guest has no swiotlb pool`);
  };
  return {
    name: "swiotlb-no-pool",
    mapPage: (_dev, _phys, _size, dir) => {
      checkDmaDirection(dir);
      printk?.(
        "Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer",
      );
      return DMA_MAPPING_ERROR;
    },
    unmapPage: (_dev, dmaAddr) => refuse("unmap", dmaAddr),
    syncSingleForCpu: (_dev, dmaAddr) => refuse("sync_for_cpu", dmaAddr),
    syncSingleForDevice: (_dev, dmaAddr) => refuse("sync_for_device", dmaAddr),
  };
}
