import { bootPlatform, type Era, type HypervLayer } from "@ivm/hypercall";
import type { GuestMemory } from "@ivm/memory";
import { bootDma, type DmaDevice, type DmaLayer } from "@ivm/swiotlb";
import type { Scheduler, VmbusChannel, VmbusConnection } from "@ivm/vmbus";
import { bootVmbus, type HostChannel, type HostVmbusServer } from "@ivm/vmbus/host";
import { connectNic } from "@ivm/vmbus/testing";

/** Everything a strategy may be constructed with, plus an open channel to build GPADLs on. */
export interface KitEnv {
  readonly era: Era | "none";
  readonly memory: GuestMemory;
  readonly hyperv: HypervLayer;
  readonly dmaLayer: DmaLayer;
  /** A DMA device with netvsc's min_align_mask; strategies (2) and (3) layer their ops over its ops. */
  readonly dma: DmaDevice;
  readonly scheduler: Scheduler;
  readonly conn: VmbusConnection;
  readonly server: HostVmbusServer;
  readonly channel: VmbusChannel;
  readonly host: HostChannel;
}

/**
 * Boots a small guest (SNP with vTOM at bit 46 in the given era, or no isolation) with a swiotlb pool,
 * an honest host, and one open channel for GPADLs. 256 MiB unless told otherwise; the pool is 8 MiB.
 */
export function bootKitEnv(era: Era | "none", memoryBytes: number = 256 * 2 ** 20): KitEnv {
  // @ivm/vm's boot steps: the platform, swiotlb, the bus; then one NIC channel, opened.
  const { memory, hyperv } = bootPlatform({
    bytes: memoryBytes,
    isolation: era === "none" ? "none" : "snp",
    era: era === "pte-bit" ? "pte-bit" : "address-bit",
  });
  const dmaLayer = bootDma(memory, hyperv, { nslabs: 4096 });
  const dma = dmaLayer.createDevice({ name: "kit", minAlignMask: 0xfff });
  const { scheduler, conn, server } = bootVmbus({ memory, hyperv });
  const { channel, host } = connectNic({ conn, server }, {});
  const opened = channel.open({ sendRingSize: 4 * 4096, recvRingSize: 4 * 4096 });
  if (!opened.ok) throw opened.error;
  return { era, memory, hyperv, dmaLayer, dma, scheduler, conn, server, channel, host };
}
