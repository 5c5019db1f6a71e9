import { bootPlatform, type HypervLayer } from "@ivm/hypercall";
import type { KernelProfile } from "@ivm/kernel";
import type { GuestMemory } from "@ivm/memory";
import type { VmbusChannel } from "../channel.js";
import { HV_NIC_GUID } from "../channel-offer.js";
import type { VmbusConnection } from "../connection.js";
import { bootVmbus } from "../host/bus.js";
import type { HostPacket } from "../host/ring-endpoint.js";
import type { HostChannel, HostDevice, HostVmbusServer } from "../host/server.js";
import type { Scheduler } from "../scheduler.js";
import type { SynicLink } from "../synic.js";

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

export interface WorldOptions {
  /** Guest RAM; 64 MiB unless told otherwise. */
  readonly bytes?: number;
  /** Default 10,000 (a test that loops fails fast). */
  readonly maxRoundsPerWait?: number;
  readonly hostMaxVersion?: number;
  readonly kernel?: KernelProfile;
  /** The guest's CPUs, NUMA nodes and isolated CPUs (VmbusConnectionOptions); default one CPU. */
  readonly cpus?: number;
  readonly numaNodes?: readonly (readonly number[])[];
  readonly isolatedCpus?: readonly number[];
}

/**
 * A guest and an honest host over one memory, not yet connected: @ivm/hypercall's bootPlatform then
 * bootVmbus, the two steps @ivm/vm boots with. "none" is a guest without isolation.
 */
export function makeWorld(era: WorldEra, options: WorldOptions = {}): World {
  const { memory, hyperv } = bootPlatform({
    bytes: options.bytes ?? 64 * 2 ** 20,
    isolation: era === "none" ? "none" : "snp",
    era: era === "pte-bit" ? "pte-bit" : "address-bit",
    ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
  });
  const bus = bootVmbus({
    memory,
    hyperv,
    maxRoundsPerWait: options.maxRoundsPerWait ?? 10_000,
    ...(options.kernel === undefined ? {} : { kernel: options.kernel }),
    ...(options.hostMaxVersion === undefined ? {} : { hostMaxVersion: options.hostMaxVersion }),
    ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
    ...(options.numaNodes === undefined ? {} : { numaNodes: options.numaNodes }),
    ...(options.isolatedCpus === undefined ? {} : { isolatedCpus: options.isolatedCpus }),
  });
  return { era, memory, hyperv, ...bus };
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

/**
 * Registers a NIC device on the host (a RecordingDevice unless given) and connects the guest; returns
 * the guest's channel and the host's. Throws when the connection fails or the offer does not arrive.
 */
export function connectNic<D extends HostDevice = RecordingDevice>(
  w: Pick<World, "server" | "conn">,
  device: D = new RecordingDevice() as unknown as D,
): { readonly channel: VmbusChannel; readonly host: HostChannel; readonly device: D } {
  const host = w.server.registerDevice({ interfaceType: HV_NIC_GUID }, device);
  const r = w.conn.connect();
  if (!r.ok) throw r.error;
  const channel = w.conn.channels.get(host.relid);
  if (channel === undefined) throw new Error("offer not received");
  return { channel, host, device };
}
