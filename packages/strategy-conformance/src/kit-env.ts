import { cpuidFor, createHyperv, type Era, type HypervLayer, isolationFromCpuid } from "@ivm/hypercall";
import { GuestMemory } from "@ivm/memory";
import { bootDma, type DmaDevice, type DmaLayer } from "@ivm/swiotlb";
import { HV_NIC_GUID, Scheduler, SynicLink, type VmbusChannel, VmbusConnection } from "@ivm/vmbus";
import { type HostChannel, HostVmbusServer } from "@ivm/vmbus/host";

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
  const isolation = isolationFromCpuid(cpuidFor({ type: era === "none" ? "none" : "snp" }));
  const memory = new GuestMemory({
    bytes: memoryBytes,
    sharedGpaBoundary: isolation.sharedGpaBoundary,
    vtomMode: era === "pte-bit" ? "pte-bit" : "address-bit",
  });
  const hyperv = createHyperv(memory, isolation);
  const dmaLayer = bootDma(memory, hyperv, { nslabs: 4096 });
  const dma = dmaLayer.createDevice({ name: "kit", minAlignMask: 0xfff });
  const scheduler = new Scheduler();
  const synic = new SynicLink();
  const conn = new VmbusConnection({ memory, hyperv, scheduler, synic });
  const server = new HostVmbusServer({ scheduler, synic, hostView: hyperv.hostView });
  const host = server.registerDevice({ interfaceType: HV_NIC_GUID }, {});
  const connected = conn.connect();
  if (!connected.ok) throw connected.error;
  const channel = conn.channels.get(host.relid);
  if (!channel) throw new Error("the kit's channel was not offered");
  const opened = channel.open({ sendRingSize: 4 * 4096, recvRingSize: 4 * 4096 });
  if (!opened.ok) throw opened.error;
  return { era, memory, hyperv, dmaLayer, dma, scheduler, conn, server, channel, host };
}
