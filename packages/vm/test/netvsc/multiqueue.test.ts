import { ITAB_NUM, labFlowHash } from "@ivm/netvsc-protocol";
import { CHANNELMSG, gpadlPfns, RING_TAGS } from "@ivm/vmbus";
import { describe, expect, it } from "vitest";
import { trackChannels } from "../../src/channels.js";
import { runTraffic } from "../../src/traffic.js";
import { Vm } from "../../src/vm.js";
import { CASES } from "../cases.js";

const MiB = 2 ** 20;
const remap = CASES.find((c) => c.name === "vmalloc-remap")!;

function boot(cpus: number, kernel?: string) {
  return Vm.boot({ memory: 256 * MiB, cpus, strategy: remap, ...(kernel ? { kernel } : {}) });
}

describe("multi-queue netvsc (vRSS sub-channels)", () => {
  it("8 CPUs, 8 queues: 8 channels, each with its own rings, traffic on every queue, clean remove", () => {
    const vm = boot(8);
    const visibleAtBoot = vm.hostVisibleOutsideSwiotlb();
    const tracker = trackChannels(vm);
    const added = vm.addNic({ queues: 8 });
    if (!added.ok) throw added.error;
    const nic = added.nic;
    expect(nic.device.channelCount).toEqual({ combined: 8, max: 8 });
    const cost = tracker.report(nic);
    // 258 PFNs: a header with 26, then nine bodies of up to 28 (vmbus_establish_gpadl's split).
    expect(cost.channels.map((c) => c.ringGpadlMessages)).toEqual(Array(8).fill(10));
    expect(cost.channels.every((c) => c.ringBlockPages === 512)).toBe(true);
    expect(cost.totals.ringBlockPages).toBe(8 * 512);
    expect(cost.totals.pages).toBe(8 * 512 + cost.totals.bufferPages);
    const chans = nic.device.channels;
    expect(chans.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(chans.map((c) => c.relid)).size).toBe(8);
    expect(new Set(chans.map((c) => c.ringGpadl)).size).toBe(8);
    // Each ring pair is its own order-9 block: 2 × VMBUS_RING_SIZE(128 pages) = 258 pages → 512.
    expect(chans.every((c) => c.opened && c.ringPages === 258)).toBe(true);
    expect(vm.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(8 * 512);
    expect(nic.host.counters.subchannelsGranted).toBe(7);
    expect(nic.host.openQueues).toBe(8);

    const report = runTraffic(vm, nic, { packets: 4000, seed: 7 });
    expect(report.txDropped).toBe(0);
    expect(report.rxVerified).toBe(report.rxQueued);
    expect(report.rxCorrupt).toBe(0);
    expect(nic.host.counters.txFramesVerified).toBe(report.txFrames);
    const after = nic.device.channels;
    for (let q = 0; q < 8; q++) {
      expect(after[q]!.counters.txFrames, `tx on queue ${q}`).toBeGreaterThan(0);
      expect(after[q]!.counters.rxFrames, `rx on queue ${q}`).toBeGreaterThan(0);
      expect(nic.host.counters.queues[q]!.txFramesVerified).toBe(after[q]!.counters.txFrames);
      expect(nic.host.counters.queues[q]!.rxFramesCompleted).toBe(after[q]!.counters.rxFrames);
    }
    expect(nic.host.counters.rejections.get("rx-completion-wrong-queue")).toBe(0);
    expect(vm.checkInvariants()).toEqual([]);

    const closes: number[] = [];
    vm.conn.onMessage((e) => {
      if (e.direction === "guest-to-host" && e.type === CHANNELMSG.CLOSECHANNEL)
        closes.push(new DataView(e.bytes.buffer).getUint32(8, true));
    });
    const { leakedBuffers } = vm.removeNic(nic);
    expect(leakedBuffers).toBe(0);
    // vmbus_disconnect_ring: every sub-channel is closed before the primary.
    expect(closes.at(-1)).toBe(nic.relid);
    expect(closes.length).toBe(8);
    expect(vm.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(0);
    expect(vm.hostVisibleOutsideSwiotlb()).toBe(visibleAtBoot);
    expect(vm.memory.leakedPages).toBe(0);
    expect(vm.conn.channels.size).toBe(0);
    expect(vm.checkInvariants()).toEqual([]);
  });

  it("transmit picks the queue netvsc_pick_tx gives the frame's flow hash", () => {
    const vm = boot(4);
    const added = vm.addNic({ queues: 4 });
    if (!added.ok) throw added.error;
    const frame = new Uint8Array(64);
    frame[14] = 9;
    expect(added.nic.device.queueFor(frame)).toBe((labFlowHash(frame) & 15) % 4);
  });

  it("the guest sends its RSS parameters after the sub-channels open; the host spreads by its table", () => {
    const vm = boot(8);
    const added = vm.addNic({ queues: 8 });
    if (!added.ok) throw added.error;
    const { device, host } = added.nic;
    // rndis_filter_set_rss_param: DISABLE_RSS, then the table (ethtool_rxfh_indir_default over 8).
    const want = Array.from({ length: ITAB_NUM }, (_, i) => i % 8);
    expect(device.rxfh).toEqual(want);
    expect(host.rss).toEqual({ source: "guest", table: want, queues: 8, accepted: 1 });
    expect(device.stats.errors.get("rss-param-set-failed")).toBe(0);
    // ethtool -X: every entry on queue 5; afterwards every received frame arrives on channel 5.
    const rxBefore = device.channels.map((c) => c.counters.rxFrames);
    expect(device.setRxfh(Array(ITAB_NUM).fill(5)).ok).toBe(true);
    expect(host.rss.source).toBe("guest");
    expect(host.rss.accepted).toBe(2);
    const traffic = runTraffic(vm, added.nic, { packets: 400, seed: 4 });
    expect(traffic.rxCorrupt).toBe(0);
    const rxGained = device.channels.map((c, q) => c.counters.rxFrames - rxBefore[q]!);
    expect(rxGained[5]).toBe(traffic.rxFrames);
    expect(rxGained.filter((n, q) => q !== 5 && n > 0)).toEqual([]);
    // An entry naming a channel the NIC does not have is the guest's EINVAL, nothing sent.
    const bad = device.setRxfh(Array(ITAB_NUM).fill(8));
    expect(bad.ok || bad.error.reason).toBe("bad-rxfh");
    expect(host.rss.accepted).toBe(2);
    vm.removeNic(added.nic);
    expect(vm.checkInvariants()).toEqual([]);
  });

  it("the default count is the kernel's: 8 before 6.12, max(16, cpus/2) capped by the CPUs from 6.12", () => {
    for (const [kernel, cpus, want] of [
      ["6.9", 4, 4],
      ["6.9", 12, 8],
      ["6.12", 12, 12],
      ["6.12", 20, 16],
    ] as const) {
      const vm = boot(cpus, kernel);
      const added = vm.addNic({ netvsp: { rssQueues: 64 } });
      if (!added.ok) throw added.error;
      expect(added.nic.device.channelCount?.combined, `${kernel} with ${cpus} CPUs`).toBe(want);
    }
  });

  it("without cpus the host offers one queue and the NIC keeps one channel (the single-queue lab)", () => {
    const vm = Vm.boot({ memory: 256 * MiB, strategy: remap });
    const added = vm.addNic();
    if (!added.ok) throw added.error;
    expect(added.nic.device.channelCount).toEqual({ combined: 1, max: 1 });
    expect(added.nic.host.counters.subchannelRequests).toBe(0);
  });

  it("ethtool -L: fewer queues close sub-channels and the re-attach asks again; more than max is EINVAL", () => {
    const vm = boot(8);
    const added = vm.addNic({ queues: 8 });
    if (!added.ok) throw added.error;
    const dev = added.nic.device;
    const relids = dev.channels.map((c) => c.relid);
    expect(dev.setChannels(3).ok).toBe(true);
    expect(dev.channelCount?.combined).toBe(3);
    expect(vm.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(3 * 512);
    // The old sub-channels were rescinded and released, so the new ones take the lowest free relids again.
    expect(dev.channels.map((c) => c.relid)).toEqual(relids.slice(0, 3));
    const big = dev.setChannels(9);
    expect(big.ok || big.error.reason).toBe("bad-channel-count");
    const traffic = runTraffic(vm, added.nic, { packets: 600, seed: 3 });
    expect(traffic.rxCorrupt).toBe(0);
    expect(dev.channels.every((c) => c.counters.txFrames > 0)).toBe(true);
    vm.removeNic(added.nic);
    expect(vm.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(0);
    expect(vm.checkInvariants()).toEqual([]);
  });

  it.each([
    ["more than asked", 9, "subchannel-count-invalid"],
    ["zero", 0, undefined],
  ] as const)("a host granting %s leaves the NIC on its primary", (_, grant, reason) => {
    const vm = boot(8);
    const visibleAtBoot = vm.hostVisibleOutsideSwiotlb();
    const added = vm.addNic({ queues: 4, netvsp: { adversary: { subchannelGrant: grant } } });
    if (!added.ok) throw added.error;
    const dev = added.nic.device;
    expect(dev.channelCount?.combined).toBe(1);
    if (reason !== undefined) expect(dev.stats.errors.get(reason)).toBe(1);
    const traffic = runTraffic(vm, added.nic, { packets: 300, seed: 5 });
    expect(traffic.rxCorrupt).toBe(0);
    expect(traffic.txDropped).toBe(0);
    vm.removeNic(added.nic);
    expect(vm.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(0);
    expect(vm.hostVisibleOutsideSwiotlb()).toBe(visibleAtBoot);
    expect(vm.checkInvariants()).toEqual([]);
  });

  it("the invariants cover every channel: a sub-channel's ring made private behind its back is I8", () => {
    const vm = boot(4);
    const added = vm.addNic({ queues: 4 });
    if (!added.ok) throw added.error;
    expect(vm.checkInvariants()).toEqual([]);
    const sub = vm.conn.channels.get(added.nic.device.channels[2]!.relid)!;
    const pfn = gpadlPfns(sub.ringGpadl!)[0]!;
    vm.hyperv.hypercalls.markGpaVisibility([pfn], 0);
    const v = vm.checkInvariants().filter((x) => x.pfn === pfn);
    expect(v.map((x) => x.detail)).toEqual([`channel ${sub.relid}'s open ring is not host-visible`]);
  });

  it("a host that grants sub-channels but never offers them: the wait ends, one channel, clean remove", () => {
    const vm = boot(4);
    // Drop every sub-channel offer (sub_channel_index at byte 180 of OFFERCHANNEL is non-zero).
    vm.server.hooks.intercept = (bytes) =>
      new DataView(bytes.buffer).getUint32(0, true) === CHANNELMSG.OFFERCHANNEL &&
      new DataView(bytes.buffer).getUint16(180, true) !== 0
        ? { kind: "drop" }
        : undefined;
    const added = vm.addNic({ queues: 4 });
    if (!added.ok) throw added.error;
    const dev = added.nic.device;
    expect(dev.stats.errors.get("subchannel-open-timed-out")).toBe(1);
    expect(dev.channelCount?.combined).toBe(1);
    expect(runTraffic(vm, added.nic, { packets: 200, seed: 9 }).rxCorrupt).toBe(0);
    vm.removeNic(added.nic);
    expect(vm.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(0);
    expect(vm.checkInvariants()).toEqual([]);
  });

  it("a host send section larger than the buffer leaves 0 sections; ethtool -L then fails with ENOMEM, no crash", () => {
    // Found by the 1M-input fuzz campaign: netvsc_init_buf accepts send_section_cnt = buf_size /
    // section_size = 0, ethtool -L carries the 0 into the new attach, and vzalloc(0) returns NULL.
    const vm = boot(4);
    const added = vm.addNic({ queues: 2, netvsp: { sendSectionSize: 4 * MiB } });
    if (!added.ok) throw added.error;
    const dev = added.nic.device;
    expect(dev.channelCount).toEqual({ combined: 2, max: 4 });
    const r = dev.setChannels(4);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe("ENOMEM");
    expect(r.error.reason).toBe("netvsc-tx-alloc-failed");
    // The restore with the old count asks for the same zero-size buffer and fails too: detached.
    expect(dev.stats.errors.get("restoring-channels-failed")).toBe(1);
    expect(dev.channelCount).toBeUndefined();
    expect(vm.checkInvariants()).toEqual([]);
  });
});
