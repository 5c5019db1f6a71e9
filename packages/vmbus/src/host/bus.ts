// The platform's wiring of the bus, both ends: the one place the guest's connection and the host's
// server meet. The host server (server.ts) never imports the guest; this module is what a VM (@ivm/vm)
// and @ivm/vmbus/testing's worlds call.

import type { HypervLayer } from "@ivm/hypercall";
import type { FindingLog, KernelProfile } from "@ivm/kernel";
import type { GuestMemory } from "@ivm/memory";
import { VmbusConnection } from "../connection.js";
import { Scheduler } from "../scheduler.js";
import { SynicLink } from "../synic.js";
import { HostVmbusServer } from "./server.js";

export interface VmbusBootOptions {
  readonly memory: GuestMemory;
  readonly hyperv: HypervLayer;
  /** Rounds one wait may take while someone reports progress (the scheduler's default 100,000). */
  readonly maxRoundsPerWait?: number;
  /** The kernel whose VMBus behaviours the guest runs (VmbusConnectionOptions.kernel). */
  readonly kernel?: KernelProfile;
  readonly findings?: FindingLog;
  /** Newest protocol version the host accepts (HostServerOptions.maxVersion). */
  readonly hostMaxVersion?: number;
  /** The guest's CPUs (VmbusConnectionOptions.cpus, numaNodes, isolatedCpus): where channels interrupt. */
  readonly cpus?: number;
  readonly numaNodes?: readonly (readonly number[])[];
  readonly isolatedCpus?: readonly number[];
}

/** The bus a VM boots: one scheduler and SynIC, the guest's connection and the host's server. */
export interface VmbusBus {
  readonly scheduler: Scheduler;
  readonly synic: SynicLink;
  readonly conn: VmbusConnection;
  readonly server: HostVmbusServer;
}

/**
 * Wires the bus, not yet connected (the caller registers host devices and subscribes first, then
 * `conn.connect()`, as vmbus_connect runs after the host has its offers ready). The guest's pollers are
 * registered before the host's, so a round is guest DPC, guest channels, host server, host devices.
 */
export function bootVmbus(options: VmbusBootOptions): VmbusBus {
  const { memory, hyperv } = options;
  const scheduler = new Scheduler(
    options.maxRoundsPerWait === undefined ? {} : { maxRoundsPerWait: options.maxRoundsPerWait },
  );
  const synic = new SynicLink();
  const conn = new VmbusConnection({
    memory,
    hyperv,
    scheduler,
    synic,
    ...(options.kernel === undefined ? {} : { kernel: options.kernel }),
    ...(options.findings === undefined ? {} : { findings: options.findings }),
    ...(options.cpus === undefined ? {} : { cpus: options.cpus }),
    ...(options.numaNodes === undefined ? {} : { numaNodes: options.numaNodes }),
    ...(options.isolatedCpus === undefined ? {} : { isolatedCpus: options.isolatedCpus }),
  });
  const server = new HostVmbusServer({
    scheduler,
    synic,
    hostView: hyperv.hostView,
    ...(options.hostMaxVersion === undefined ? {} : { maxVersion: options.hostMaxVersion }),
  });
  return { scheduler, synic, conn, server };
}
