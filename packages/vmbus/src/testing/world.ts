import { cpuidFor, createHyperv, type HypervLayer, isolationFromCpuid } from "@ivm/hypercall";
import type { KernelProfile } from "@ivm/kernel";
import { GuestMemory } from "@ivm/memory";
import type { VmbusChannel } from "../channel.js";
import { HV_NIC_GUID } from "../channel-offer.js";
import { VmbusConnection } from "../connection.js";
import type { HostPacket } from "../host/ring-endpoint.js";
import { type HostChannel, type HostDevice, HostVmbusServer } from "../host/server.js";
import { Scheduler } from "../scheduler.js";
import { SynicLink } from "../synic.js";

export type WorldEra = "address-bit" | "pte-bit" | "none";
export const ERAS: readonly WorldEra[] = ["address-bit", "pte-bit", "none"];

export interface World {
  readonly era: WorldEra;
  readonly memory: GuestMemory;
  readonly hyperv: HypervLayer;
  readonly scheduler: Scheduler;
  readonly synic: SynicLink;
  readonly server: HostVmbusServer;
  readonly conn: VmbusConnection;
}

/** A guest and an honest host over one memory (tests only). 64 MiB of RAM unless told otherwise. */
export function makeWorld(
  era: WorldEra,
  options: {
    readonly bytes?: number;
    readonly maxRoundsPerWait?: number;
    readonly hostMaxVersion?: number;
    readonly kernel?: KernelProfile;
  } = {},
): World {
  const bytes = options.bytes ?? 64 * 2 ** 20;
  const isolation = isolationFromCpuid(cpuidFor({ type: era === "none" ? "none" : "snp" }));
  const memory = new GuestMemory({
    bytes,
    sharedGpaBoundary: isolation.sharedGpaBoundary,
    vtomMode: era === "pte-bit" ? "pte-bit" : "address-bit",
  });
  const hyperv = createHyperv(memory, isolation);
  const scheduler = new Scheduler({ maxRoundsPerWait: options.maxRoundsPerWait ?? 10_000 });
  const synic = new SynicLink();
  // The guest's pollers are registered first: a round is guest DPC, guest channels, host server, host devices.
  const conn = new VmbusConnection({
    memory,
    hyperv,
    scheduler,
    synic,
    ...(options.kernel === undefined ? {} : { kernel: options.kernel }),
  });
  const server = new HostVmbusServer({
    scheduler,
    synic,
    hostView: hyperv.hostView,
    ...(options.hostMaxVersion === undefined ? {} : { maxVersion: options.hostMaxVersion }),
  });
  return { era, memory, hyperv, scheduler, synic, server, conn };
}

/** A host device that keeps every guest packet it reads (host-owned copies). */
export class RecordingDevice implements HostDevice {
  readonly packets: HostPacket[] = [];
  opened = 0;
  closed = 0;
  openStatus = 0;
  /** Stop reading (lets the guest's outbound ring fill up). */
  paused = false;
  corrupt = 0;
  keep = true;
  onPacket: ((p: HostPacket, ch: HostChannel) => void) | undefined;

  onOpen(): number {
    this.opened++;
    return this.openStatus;
  }

  onClose(): void {
    this.closed++;
  }

  poll(ch: HostChannel): boolean {
    if (this.paused) return false;
    let n = 0;
    for (;;) {
      const r = ch.readPacket();
      if (r.kind === "empty") break;
      if (r.kind === "corrupt") {
        this.corrupt++;
        break;
      }
      if (this.keep) this.packets.push(r.packet);
      this.onPacket?.(r.packet, ch);
      n++;
    }
    if (n > 0) ch.commitRead();
    return n > 0;
  }
}

/** Registers a NIC device on the host and connects the guest; returns the guest channel and the host's. */
export function connectNic<D extends HostDevice = RecordingDevice>(
  w: World,
  device: D = new RecordingDevice() as unknown as D,
): { readonly channel: VmbusChannel; readonly host: HostChannel; readonly device: D } {
  const host = w.server.registerDevice({ interfaceType: HV_NIC_GUID }, device);
  const r = w.conn.connect();
  if (!r.ok) throw r.error;
  const channel = w.conn.channels.get(host.relid);
  if (channel === undefined) throw new Error("offer not received");
  return { channel, host, device };
}
