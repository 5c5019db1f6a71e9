// Test-only: a small guest + host world for the driver (memory, hypervisor, swiotlb, scheduler, SynIC,
// VMBus connection, host server) with the simulated netvsp registered as the NIC. Not exported.

import { bootPlatform, type HypervLayer } from "@ivm/hypercall";
import type { KernelProfile } from "@ivm/kernel";
import { type GuestMemory, PageFlag } from "@ivm/memory";
import { NetvscDevice, type NetvscDeviceOptions } from "@ivm/netvsc";
import { encodeLabFrame, NETVSP_GUEST_MAC, NETVSP_HOST_MAC, type NetvscResult } from "@ivm/netvsc-protocol";
import { Netvsp, type NetvspOptions, netvspVmbusDevice } from "@ivm/netvsp";
import type { SharedBufferStrategy } from "@ivm/shared-buffer";
import { vmallocRemap } from "@ivm/strategy-vmalloc-remap";
import { vtomPte } from "@ivm/strategy-vtom-pte";
import { bootDma, type DmaDevice, type DmaLayer } from "@ivm/swiotlb";
import type { Scheduler, VmbusChannel, VmbusConnection } from "@ivm/vmbus";
import { bootVmbus, type HostChannel, type HostDevice, type HostVmbusServer } from "@ivm/vmbus/host";
import { connectNic } from "@ivm/vmbus/testing";

export type GuestKind = "isolated" | "plain";

export interface World {
  readonly kind: GuestKind;
  readonly memory: GuestMemory;
  readonly hyperv: HypervLayer;
  readonly dmaLayer: DmaLayer;
  readonly dma: DmaDevice;
  readonly scheduler: Scheduler;
  readonly conn: VmbusConnection;
  readonly server: HostVmbusServer;
  readonly netvsp: Netvsp;
  readonly host: HostChannel;
  readonly channel: VmbusChannel;
  readonly strategy: SharedBufferStrategy;
  /** Frames handed to onReceive, in order. */
  readonly received: Uint8Array[];
  /** When set, the host device neither reads nor writes (the guest's rings fill up). */
  hostPaused: boolean;
}

/**
 * "isolated": SNP with vTOM, address-bit era, strategy (1) (vmalloc + vmap_pfn alias), a 16 MiB swiotlb
 * pool. "plain": no isolation, one vzalloc mapping per buffer (the 6.4+ strategy, which is also what a
 * guest without isolation always did), dma-direct.
 */
export function makeWorld(
  kind: GuestKind,
  netvsp: NetvspOptions = {},
  bytes: number = 192 * 2 ** 20,
  maxRoundsPerWait = 20_000,
  kernel?: KernelProfile,
): World {
  // @ivm/vm's boot steps (platform, swiotlb, bus), with the netvsp registered as the NIC.
  const { memory, hyperv } = bootPlatform({ bytes, isolation: kind === "isolated" ? "snp" : "none" });
  const dmaLayer = bootDma(memory, hyperv, { nslabs: 8192 });
  const dma = dmaLayer.createDevice({ name: "netvsc", minAlignMask: 0xfff });
  const { scheduler, conn, server } = bootVmbus({
    memory,
    hyperv,
    maxRoundsPerWait,
    ...(kernel === undefined ? {} : { kernel }),
  });
  const host$ = new Netvsp({ isolated: kind === "isolated", ...netvsp });
  const device = netvspVmbusDevice(host$, hyperv.hostView);
  let world: World | undefined;
  const { channel, host } = connectNic<HostDevice>(
    { conn, server },
    { ...device, poll: (ch) => (world?.hostPaused === true ? false : device.poll!(ch)) },
  );
  const strategy = kind === "isolated" ? vmallocRemap.create({ memory }) : vtomPte.create({ memory });
  world = {
    kind,
    memory,
    hyperv,
    dmaLayer,
    dma,
    scheduler,
    conn,
    server,
    netvsp: host$,
    host,
    channel,
    strategy,
    received: [],
    hostPaused: false,
  };
  return world;
}

export function addDevice(w: World, options: Partial<NetvscDeviceOptions> = {}): NetvscResult<NetvscDevice> {
  return NetvscDevice.add({
    channel: w.channel,
    scheduler: w.scheduler,
    memory: w.memory,
    strategy: w.strategy,
    dma: w.dma,
    isolated: w.kind === "isolated",
    onReceive: (f) => {
      w.received.push(f);
    },
    ...options,
  });
}

export function mustAdd(w: World, options: Partial<NetvscDeviceOptions> = {}): NetvscDevice {
  const r = addDevice(w, options);
  if (!r.ok) throw r.error;
  return r.value;
}

export const TX_SEED = 0x7e57;

/** A self-checking frame the host's verifier accepts (guest to host MACs). */
export function txFrame(seq: number, length: number): Uint8Array {
  return encodeLabFrame({ seq, seed: TX_SEED, length, dstMac: NETVSP_HOST_MAC, srcMac: NETVSP_GUEST_MAC });
}

/**
 * Pages host-visible outside the swiotlb pool and the VMBus connection's two monitor pages (which
 * vmbus_connect makes host-visible for as long as the guest is connected, whatever the devices do).
 */
export function hostVisibleOutsidePool(w: World): number {
  const pool = w.dmaLayer.pool;
  let inPool = 0;
  for (const m of w.conn.monitorPages) if (w.memory.phys.hasFlag(m.pfn, PageFlag.HostVisible)) inPool++;
  if (pool !== null) {
    for (let p = pool.boot.startPfn; p < pool.boot.startPfn + pool.boot.poolPages; p++) {
      if (w.memory.phys.hasFlag(p, PageFlag.HostVisible)) inPool++;
    }
  }
  return w.memory.phys.hostVisiblePages - inPool;
}

/**
 * Send with retries: a busy queue lets guest and host run until the frame goes. `pumpEvery` lets them
 * run after that many frames too (the host works concurrently in a real VM).
 */
export function sendAll(
  w: World,
  dev: NetvscDevice,
  frames: Iterable<[Uint8Array, boolean]>,
  pumpEvery: number = Number.POSITIVE_INFINITY,
): number {
  let busy = 0;
  let n = 0;
  for (const [frame, more] of frames) {
    if (++n % pumpEvery === 0) w.scheduler.runIdle();
    for (;;) {
      const v = dev.send(frame, { xmitMore: more });
      if (v === "sent") break;
      if (v === "dropped") throw new Error(`frame dropped: ${JSON.stringify(dev.stats.txDrops.snapshot())}`);
      busy++;
      w.scheduler.runIdle();
    }
  }
  return busy;
}
