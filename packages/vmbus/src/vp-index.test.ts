// init_vp_index as the guest runs it on the offer path, and the target_vp OPENCHANNEL then carries.
// Every expected spread below is derived by hand from the kernel's rules (vp-index.ts): next NUMA node,
// lowest CPU of it not in the node's allocated mask (the mask cleared first when nothing is left),
// hv_cpuself_used refusing a CPU the same device already uses (up to ncpu + 1 tries, never for a
// sub-channel index >= ncpu), and hv_process_channel_removal giving a CPU back unless another
// performance channel still targets it.
import { type KernelProfile, profiles } from "@ivm/kernel";
import { PAGE_SIZE } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import type { VmbusChannel } from "./channel.js";
import { HV_NIC_GUID, HV_SCSI_GUID } from "./channel-offer.js";
import { VmbusConnection } from "./connection.js";
import { VmbusError } from "./errors.js";
import type { HostChannel } from "./host/server.js";
import { offerSubChannel, rescindSubChannels } from "./host/subchannel.js";
import { VMBUS_FINDING } from "./profile.js";
import { makeWorld, RecordingDevice, type World } from "./testing/world.js";
import { VmbusCpuAllocator, type VpIndexChannel } from "./vp-index.js";
import { guidFromString } from "./wire/bytes.js";
import {
  CHANNELMSG,
  decodeChannelMessage,
  VMBUS_CHANNEL_FLAG,
  VMBUS_VERSION,
} from "./wire/channel-message.js";

const RING = 4 * PAGE_SIZE;
const openOpts = { sendRingSize: RING, recvRingSize: RING };
const NEWER = profiles["6.12"];
const OLDER = profiles["5.17"];

interface Bench {
  readonly w: World;
  /** target_vp of every OPENCHANNEL the guest posted, by child_relid. */
  readonly openedVp: Map<number, number>;
}

function bench(options: Parameters<typeof makeWorld>[1] = {}, era: "address-bit" | "none" = "address-bit") {
  const w = makeWorld(era, options);
  const openedVp = new Map<number, number>();
  w.conn.onMessage((e) => {
    if (e.direction !== "guest-to-host" || e.type !== CHANNELMSG.OPENCHANNEL) return;
    const m = decodeChannelMessage(e.bytes);
    if (m.ok && m.value.kind === "open-channel") openedVp.set(m.value.childRelid, m.value.targetVp);
  });
  return { w, openedVp } satisfies Bench;
}

/** Offers a NIC primary (after connect) with a callback that opens each sub-channel. */
function nic(b: Bench, guid: Uint8Array = HV_NIC_GUID): { host: HostChannel; guest: VmbusChannel } {
  const host = b.w.server.registerDevice({ interfaceType: guid }, new RecordingDevice());
  b.w.scheduler.runIdle();
  const guest = b.w.conn.channels.get(host.relid)!;
  guest.scCreationCallback = (sc) => {
    const r = sc.open(openOpts);
    if (!r.ok) throw r.error;
  };
  const r = guest.open(openOpts);
  if (!r.ok) throw r.error;
  return { host, guest };
}

function offerSubs(b: Bench, host: HostChannel, indices: readonly number[]): void {
  for (const i of indices) offerSubChannel(b.w.server, host, i, new RecordingDevice());
  b.w.scheduler.runIdle();
}

/** The device's channels' target_vp as OPENCHANNEL carried them: primary first, then sub-channels. */
function spread(b: Bench, primary: VmbusChannel): number[] {
  return [primary, ...primary.subChannels].map((c) => b.openedVp.get(c.relid)!);
}

function connected(options: Parameters<typeof makeWorld>[1], era: "address-bit" | "none" = "address-bit") {
  const b = bench(options, era);
  const r = b.w.conn.connect();
  if (!r.ok) throw r.error;
  return b;
}

/** Takes a NIC away as netvsc_remove and the host do: close (sub-channels first), rescind everything. */
function remove(b: Bench, n: { host: HostChannel; guest: VmbusChannel }): void {
  const r = n.guest.close();
  if (!r.ok) throw r.error;
  rescindSubChannels(b.w.server, n.host);
  b.w.server.rescind(n.host.relid);
  b.w.scheduler.runIdle();
}

describe("init_vp_index on the offer → open path", () => {
  it("one CPU: the primary and every sub-channel open on VP 0", () => {
    const b = connected({ cpus: 1, kernel: NEWER });
    const a = nic(b);
    // ncpu = 1: every sub-channel index is >= ncpu, so no hv_cpuself_used check; the one-CPU node's
    // mask is full after each pick and is cleared before the next: always CPU 0.
    offerSubs(b, a.host, [1, 2, 3]);
    expect(spread(b, a.guest)).toEqual([0, 0, 0, 0]);
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([0]);
  });

  it("8 CPUs, an 8-queue NIC: the primary and its 7 sub-channels take VP 0..7 in offer order", () => {
    const b = connected({ cpus: 8, kernel: NEWER });
    const a = nic(b);
    offerSubs(b, a.host, [1, 2, 3, 4, 5, 6, 7]);
    // One node {0..7}: each pick is the lowest CPU not yet allocated, and none of them is the device's.
    expect(spread(b, a.guest)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(a.guest.subChannels.map((c) => c.targetCpu)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // A second NIC finds the node full: the mask is cleared and it starts again at CPU 0.
    const c = nic(b);
    offerSubs(b, c.host, [1, 2]);
    expect(spread(b, c.guest)).toEqual([0, 1, 2]);
  });

  it("hv_cpuself_used: after the mask wraps, a CPU the device already uses is refused and stays allocated", () => {
    const b = connected({ cpus: 4, kernel: NEWER });
    const a = nic(b); // CPU 0
    const z = nic(b); // CPU 1
    // A's sub-channels: 2, 3; then the node is full (0..3), is cleared, and CPU 0 is A's primary's:
    // refused (left set), the next try takes 1 (Z's, not A's).
    offerSubs(b, a.host, [1, 2, 3]);
    expect(spread(b, a.guest)).toEqual([0, 2, 3, 1]);
    // Mask now {0, 1}: Z's sub-channels take 2, 3, then the node is full again, cleared, and CPU 0 is
    // not Z's: taken.
    offerSubs(b, z.host, [1, 2, 3]);
    expect(spread(b, z.guest)).toEqual([1, 2, 3, 0]);
  });

  it("within limits: a sub-channel index >= ncpu is never checked, and the walk stops after ncpu + 1 tries", () => {
    const b = connected({ cpus: 2, kernel: NEWER });
    const a = nic(b);
    offerSubs(b, a.host, [1]); // 0, 1: both CPUs are the device's now, the mask is full
    // Index 2 >= ncpu (2): the cleared node gives CPU 0, taken without the check.
    offerSubs(b, a.host, [2]);
    // A host may offer index 1 twice: checked. Mask {0}: CPU 1 is the device's, refused (left set);
    // the full node is cleared and CPU 0 is refused too; the third try (i = 3 > ncpu) takes what it
    // finds, CPU 1 again.
    offerSubs(b, a.host, [1]);
    expect(spread(b, a.guest)).toEqual([0, 1, 0, 1]);
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([0, 1]);
  });

  it("a channel of a device that is not performance critical opens on VP 0 and leaves the masks alone", () => {
    const b = connected({ cpus: 4, kernel: NEWER }, "none");
    const a = nic(b); // CPU 0
    // hv_sock (HV_UNKNOWN) and an if_type missing from vmbus_devs[]: VMBUS_CONNECT_CPU, no mask bit.
    const sock = b.w.server.registerDevice(
      { interfaceType: HV_SCSI_GUID, chnFlags: VMBUS_CHANNEL_FLAG.TLNPI_PROVIDER_OFFER },
      new RecordingDevice(),
    );
    const kvp = b.w.server.registerDevice(
      { interfaceType: guidFromString("a9a0f4e7-5a45-4d96-b827-8a841e8c03e6") },
      new RecordingDevice(),
    );
    b.w.scheduler.runIdle();
    for (const h of [sock, kvp]) {
      const ch = b.w.conn.channels.get(h.relid)!;
      expect(ch.perfChannel).toBe(false);
      const r = ch.open(openOpts);
      expect(r.ok).toBe(true);
      expect(b.openedVp.get(h.relid)).toBe(0);
    }
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([0]);
    // The NIC's sub-channel still finds CPU 1 free, as if the two had never come.
    offerSubs(b, a.host, [1]);
    expect(spread(b, a.guest)).toEqual([0, 1]);
  });

  it("a second NUMA node: every channel, sub-channels too, takes the next node round robin (empty nodes skipped)", () => {
    const b = connected({ cpus: 4, numaNodes: [[0, 1], [], [2, 3]], kernel: NEWER });
    const a = nic(b);
    offerSubs(b, a.host, [1, 2, 3]);
    // Nodes 0, 2, 0, 2 (node 1 has no CPU): 0, then 2, then 1, then 3.
    expect(spread(b, a.guest)).toEqual([0, 2, 1, 3]);
    expect(b.w.conn.cpuAllocator.allocated(0)).toEqual([0, 1]);
    expect(b.w.conn.cpuAllocator.allocated(2)).toEqual([2, 3]);
  });

  it("an explicit targetVp overrides only the message", () => {
    const b = connected({ cpus: 4, kernel: NEWER });
    const host = b.w.server.registerDevice({ interfaceType: HV_NIC_GUID }, new RecordingDevice());
    b.w.scheduler.runIdle();
    const ch = b.w.conn.channels.get(host.relid)!;
    expect(ch.open({ ...openOpts, targetVp: 3 }).ok).toBe(true);
    expect(b.openedVp.get(host.relid)).toBe(3);
    expect(ch.targetCpu).toBe(0);
    expect(ch.targetVp).toBe(0);
  });
});

describe("remove and re-add: hv_process_channel_removal gives the CPUs back", () => {
  it("a removed NIC's CPUs are free again: the re-added NIC gets the same spread", () => {
    const b = connected({ cpus: 4, kernel: NEWER });
    const a = nic(b);
    offerSubs(b, a.host, [1, 2, 3]);
    expect(spread(b, a.guest)).toEqual([0, 1, 2, 3]);
    remove(b, a);
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([]);
    const again = nic(b);
    offerSubs(b, again.host, [1, 2, 3]);
    expect(spread(b, again.guest)).toEqual([0, 1, 2, 3]);
  });

  it("the CPU is released, not kept: a NIC added after another was removed takes the freed CPU", () => {
    const b = connected({ cpus: 4, kernel: NEWER });
    const a = nic(b); // 0
    nic(b); // 1
    remove(b, a);
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([1]);
    // Mask {1}: CPU 0 is free again (had it been kept, the next NIC would get CPU 2).
    const c = nic(b);
    expect(b.openedVp.get(c.guest.relid)).toBe(0);
  });

  it("a CPU another performance channel still targets stays allocated (hv_is_allocated_cpu)", () => {
    const b = connected({ cpus: 2, kernel: NEWER });
    const a = nic(b); // 0
    offerSubs(b, a.host, [1]); // 1; the node is full
    const z = nic(b); // cleared, 0
    remove(b, a);
    // A's sub-channel gave CPU 1 back; its primary's CPU 0 is Z's too, so it stays.
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([0]);
    const c = nic(b);
    expect(b.openedVp.get(c.guest.relid)).toBe(1);
    expect(b.openedVp.get(z.guest.relid)).toBe(0);
  });
});

describe("init_vp_index failure paths", () => {
  it("refuses a CPU topology that cannot exist, with one EINVAL error each", () => {
    const w = makeWorld("address-bit");
    const base = { memory: w.memory, hyperv: w.hyperv, scheduler: w.scheduler, synic: w.synic };
    const bad = [
      { cpus: 0 },
      { cpus: 1.5 },
      {
        cpus: 4,
        numaNodes: [
          [0, 1],
          [1, 2, 3],
        ],
      },
      { cpus: 4, numaNodes: [[0, 1, 2]] },
      { cpus: 4, numaNodes: [[0, 1, 2, 3, 4]] },
      { cpus: 4, numaNodes: [] },
      { cpus: 4, isolatedCpus: [4] },
    ];
    for (const t of bad) {
      let e: unknown;
      try {
        new VmbusConnection({ ...base, ...t });
      } catch (x) {
        e = x;
      }
      expect(e, JSON.stringify(t)).toBeInstanceOf(VmbusError);
      expect((e as VmbusError).code).toBe("EINVAL");
      expect((e as VmbusError).reason).toBe("cpu-topology");
    }
    expect(
      () =>
        new VmbusConnection({
          ...base,
          cpus: 4,
          numaNodes: [
            [3, 1],
            [0, 2],
          ],
        }),
    ).not.toThrow();
  });

  it("a duplicate primary offer is dropped, but the CPU init_vp_index gave it stays allocated", () => {
    const b = connected({ cpus: 4, kernel: NEWER });
    const a = nic(b); // 0
    b.w.server.registerDevice(
      { interfaceType: a.host.offer.interfaceType, interfaceInstance: a.host.offer.interfaceInstance },
      new RecordingDevice(),
    );
    b.w.scheduler.runIdle();
    expect(b.w.conn.counters.dropped["duplicate-primary"]).toBe(1);
    // vmbus_process_offer ran init_vp_index (CPU 1: 0 is the device's) before freeing the duplicate.
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([0, 1]);
    const c = nic(b);
    expect(b.openedVp.get(c.guest.relid)).toBe(2);
  });

  it("a refused open keeps the offer's CPU until the channel is removed", () => {
    const b = connected({ cpus: 4, kernel: NEWER });
    const device = new RecordingDevice();
    device.openStatus = 1;
    const host = b.w.server.registerDevice({ interfaceType: HV_NIC_GUID }, device);
    b.w.scheduler.runIdle();
    const ch = b.w.conn.channels.get(host.relid)!;
    const r = ch.open(openOpts);
    expect(r.ok).toBe(false);
    expect(b.openedVp.get(host.relid)).toBe(0); // OPENCHANNEL went out, naming the offer's VP
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([0]);
    b.w.server.rescind(host.relid);
    b.w.scheduler.runIdle();
    expect(b.w.conn.channels.has(host.relid)).toBe(false);
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([]);
  });
});

describe("init_vp_index across the profiles", () => {
  function isolatedSpread(kernel: KernelProfile): number[] {
    const b = connected({ cpus: 4, isolatedCpus: [1], kernel });
    const a = nic(b);
    offerSubs(b, a.host, [1, 2, 3]);
    return spread(b, a.guest);
  }

  it("5.19+ never picks a managed-IRQ isolated CPU; 5.17 does", () => {
    expect(OLDER.vmbus.initVpIndex.value).toBe("node-cpus");
    expect(NEWER.vmbus.initVpIndex.commit).toBe("6640b5df1a38");
    // 5.17: the isolated CPU is an ordinary candidate.
    expect(isolatedSpread(OLDER)).toEqual([0, 1, 2, 3]);
    // 6.12: 0, 2, 3; then (node − {0,2,3}) ∩ housekeeping is empty, the mask is cleared, and the walk
    // refuses 0, 2, 3, (cleared again) 0, then takes 2 on the fifth try (i = 5 > ncpu).
    expect(isolatedSpread(NEWER)).toEqual([0, 2, 3, 2]);
  });

  it("no housekeeping CPU at all: every channel on VMBUS_CONNECT_CPU, CPU 0 marked allocated", () => {
    const b = connected({ cpus: 2, isolatedCpus: [0, 1], kernel: NEWER });
    const a = nic(b);
    offerSubs(b, a.host, [1]);
    expect(spread(b, a.guest)).toEqual([0, 0]);
    expect(b.w.conn.cpuAllocator.allocated()).toEqual([0]);
  });

  it("a NUMA node with no housekeeping CPU: 5.19+ retries for ever (reported as a finding), 5.17 picks it", () => {
    const topology = {
      cpus: 4,
      numaNodes: [
        [0, 1],
        [2, 3],
      ],
      isolatedCpus: [2, 3],
    };
    const newer = connected({ ...topology, kernel: NEWER });
    const a = nic(newer); // node 0: CPU 0
    offerSubs(newer, a.host, [1]); // node 1: nothing but isolated CPUs
    expect(newer.w.conn.kernel.findings.count(VMBUS_FINDING.initVpIndexLoopsForever)).toBe(1);
    expect(spread(newer, a.guest)).toEqual([0, 0]);
    const older = connected({ ...topology, kernel: OLDER });
    const o = nic(older);
    offerSubs(older, o.host, [1]);
    expect(older.w.conn.kernel.findings.count(VMBUS_FINDING.initVpIndexLoopsForever)).toBe(0);
    expect(spread(older, o.guest)).toEqual([0, 2]);
  });

  it("5.17 on a WIN7 host binds every channel to VMBUS_CONNECT_CPU; on a WIN8 host it spreads them", () => {
    const win7 = connected({ cpus: 4, kernel: OLDER, hostMaxVersion: VMBUS_VERSION.WIN7 }, "none");
    expect(win7.w.conn.version).toBe(VMBUS_VERSION.WIN7);
    const a = nic(win7);
    offerSubs(win7, a.host, [1, 2]);
    expect(spread(win7, a.guest)).toEqual([0, 0, 0]);
    expect(win7.w.conn.cpuAllocator.allocated()).toEqual([0]);
    const win8 = connected({ cpus: 4, kernel: OLDER, hostMaxVersion: VMBUS_VERSION.WIN8 }, "none");
    const c = nic(win8);
    offerSubs(win8, c.host, [1, 2]);
    expect(spread(win8, c.guest)).toEqual([0, 1, 2]);
  });
});

describe("VmbusCpuAllocator (init_vp_index's state, without a bus)", () => {
  const chan = (targetCpu: number, subChannels: VpIndexChannel[] = []): VpIndexChannel => ({
    targetCpu,
    perfChannel: true,
    primaryChannel: undefined,
    subChannels,
  });
  const req = (primary: VpIndexChannel | undefined, subChannelIndex: number) => ({
    perfChannel: true,
    primary,
    subChannelIndex,
    version: VMBUS_VERSION.WIN10_V5_3,
  });

  it("reports the CPUs hv_cpuself_used refused, and stops after ncpu + 1 tries", () => {
    const cpus = new VmbusCpuAllocator({ cpus: 2 });
    expect(cpus.initVpIndex(req(undefined, 0), "housekeeping-cpus").cpu).toBe(0);
    expect(cpus.initVpIndex(req(chan(0), 1), "housekeeping-cpus").cpu).toBe(1); // the node is full now
    const device = chan(0, [chan(1)]);
    // Index 1 < ncpu: try 1 clears the node and refuses 0, try 2 refuses 1, try 3 (> ncpu) clears
    // again and takes 0.
    const c = cpus.initVpIndex(req(device, 1), "housekeeping-cpus");
    expect(c).toEqual({ cpu: 0, refused: [0, 1], loopsForever: false });
    // Index 2 >= ncpu: no check at all.
    expect(cpus.initVpIndex(req(device, 2), "housekeeping-cpus")).toEqual({
      cpu: 1,
      refused: [],
      loopsForever: false,
    });
  });

  it("releaseCpu keeps a CPU a listed performance primary or its sub-channel targets", () => {
    const cpus = new VmbusCpuAllocator({ cpus: 4 });
    for (let i = 0; i < 3; i++) cpus.initVpIndex(req(undefined, 0), "node-cpus"); // 0, 1, 2
    const nonPerf = { ...chan(1), perfChannel: false };
    cpus.releaseCpu(2, [chan(0, [chan(2)])]);
    cpus.releaseCpu(1, [nonPerf]); // a non-perf channel on CPU 1 does not hold it
    expect(cpus.allocated()).toEqual([0, 2]);
    cpus.releaseCpu(0, []);
    expect(cpus.allocated()).toEqual([2]);
  });
});
