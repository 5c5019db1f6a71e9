import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE } from "./bounce-types.js";
import type { DmaOps } from "./dma-ops.js";
import { badCaller } from "./errors.js";

/** valid_dma_direction(): the DMA API BUG()s on anything else, DMA_NONE included. */
export function checkDmaDirection(dir: number): void {
  if (dir !== DMA_BIDIRECTIONAL && dir !== DMA_TO_DEVICE && dir !== DMA_FROM_DEVICE) {
    throw badCaller("bad-direction", `DMA direction ${dir} is not valid for a streaming mapping`);
  }
}

/**
 * dma-direct without bounce buffering (kernel/dma/direct.c on a coherent x86 device that is not forced
 * through swiotlb): the DMA address is the buffer's physical address (phys_to_dma), nothing is copied,
 * and unmap and sync have nothing to do. In an isolated guest these addresses name private memory, which
 * the host cannot reach: that is why Hyper-V forces swiotlb there.
 */
export function dmaDirectOps(): DmaOps {
  return {
    name: "dma-direct",
    mapPage: (_dev, phys, size, dir) => {
      checkDmaDirection(dir);
      if (!Number.isSafeInteger(phys) || phys < 0 || !Number.isSafeInteger(size) || size < 0) {
        throw badCaller("bad-address", `bad mapping 0x${phys.toString(16)}+${size}`);
      }
      return phys;
    },
    unmapPage: (_dev, _dmaAddr, _size, dir) => checkDmaDirection(dir),
    syncSingleForCpu: (_dev, _dmaAddr, _size, dir) => checkDmaDirection(dir),
    syncSingleForDevice: (_dev, _dmaAddr, _size, dir) => checkDmaDirection(dir),
  };
}
