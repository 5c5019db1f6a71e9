// A host that grants fewer sub-channels than it offers (rndis_set_subchannel / netvsc_sc_open): what the
// guest opens, its channel counts and receive indirection table, and the kernel's never-ending wait
// when the offers are handled before the completion.
import { NETVSC_FINDING } from "@ivm/netvsc";
import { ITAB_NUM } from "@ivm/netvsc-protocol";
import type { SubchannelOrder } from "@ivm/netvsp";
import { RING_TAGS } from "@ivm/vmbus";
import { describe, expect, it } from "vitest";
import { runTraffic } from "../../src/traffic.js";
import { type Nic, Vm } from "../../src/vm.js";
import { CASES } from "../cases.js";

const MiB = 2 ** 20;
const remap = CASES.find((c) => c.name === "vmalloc-remap")!;
/** ethtool_rxfh_indir_default over the 4 channels asked for. */
const TABLE_OF_4 = Array.from({ length: ITAB_NUM }, (_, i) => i % 4);

/** 8 vCPUs, queues 4: the guest asks for 3 sub-channels and the host (8 queues) offers 3. */
function addNic(order: SubchannelOrder | undefined, grant: number | undefined, kernel?: string) {
  const vm = Vm.boot({ memory: 256 * MiB, cpus: 8, strategy: remap, ...(kernel ? { kernel } : {}) });
  const visibleAtBoot = vm.hostVisibleOutsideSwiotlb();
  const added = vm.addNic({
    queues: 4,
    netvsp: {
      ...(order === undefined ? {} : { subchannelOrder: order }),
      ...(grant === undefined ? {} : { adversary: { subchannelGrant: grant } }),
    },
  });
  if (!added.ok) throw added.error;
  return { vm, nic: added.nic, visibleAtBoot };
}

/**
 * Traffic both ways is verified, and the host sees the guest's frames arrive on exactly its first
 * `txQueues` queues (the host's per-queue counters, for every queue the host has open).
 */
function trafficOn(vm: Vm, nic: Nic, txQueues: number) {
  const queues = () => nic.host.counters.queues.map((q) => q?.txFramesVerified ?? 0);
  const before = queues();
  const report = runTraffic(vm, nic, { packets: 600, seed: 11 });
  expect(report.txDropped).toBe(0);
  expect(report.rxCorrupt).toBe(0);
  expect(report.rxVerified).toBe(report.rxQueued);
  expect(nic.host.counters.txFramesVerified).toBe(report.txFrames);
  const arrived = queues().map((n, q) => n - (before[q] ?? 0));
  expect(arrived.length).toBe(nic.host.openQueues);
  expect(arrived.map((n) => n > 0)).toEqual(arrived.map((_, q) => q < txQueues));
  return report;
}

function removeCleanly(vm: Vm, nic: Nic, visibleAtBoot: number) {
  expect(vm.checkInvariants()).toEqual([]);
  expect(vm.removeNic(nic).leakedBuffers).toBe(0);
  expect(vm.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(0);
  expect(vm.hostVisibleOutsideSwiotlb()).toBe(visibleAtBoot);
  // Offered sub-channels the guest never opened are rescinded and released with the rest.
  expect(vm.conn.channels.size).toBe(0);
  expect(vm.checkInvariants()).toEqual([]);
}

describe("a host that grants fewer sub-channels than it offers", () => {
  it.each([
    ["offers first", "offers-first"],
    ["completion first", "completion-first"],
  ] as const)("an honest grant (%s): every channel opens, as before", (_, order) => {
    const { vm, nic, visibleAtBoot } = addNic(order, undefined);
    const dev = nic.device;
    expect(dev.channelCount).toEqual({ combined: 4, max: 8 });
    expect(dev.channels.map((c) => [c.index, c.opened])).toEqual([
      [0, true],
      [1, true],
      [2, true],
      [3, true],
    ]);
    expect(dev.rxfh).toEqual(TABLE_OF_4);
    expect(nic.host.rss).toEqual({ source: "guest", table: TABLE_OF_4, queues: 4, accepted: 1 });
    expect(dev.stats.errors.get("subchannel-index-ignored")).toBe(0);
    expect(vm.findings).toEqual([]);
    trafficOn(vm, nic, 4);
    removeCleanly(vm, nic, visibleAtBoot);
  });

  it("completion first, 1 of 3 granted: sub-channel 1 opens, 2 and 3 are skipped, the table still names 0-3", () => {
    const { vm, nic, visibleAtBoot } = addNic("completion-first", 1);
    const dev = nic.device;
    // num_chn = 1 + grant; max_chn stays what the RSS capabilities allowed.
    expect(dev.channelCount).toEqual({ combined: 2, max: 8 });
    expect(dev.channels.map((c) => [c.index, c.opened])).toEqual([
      [0, true],
      [1, true],
    ]);
    // netvsc_sc_open saw num_chn = 2 for the offers of indices 2 and 3.
    expect(dev.stats.errors.get("subchannel-index-ignored")).toBe(2);
    expect(nic.host.counters.subchannelsGranted).toBe(3);
    expect(nic.host.openQueues).toBe(2);
    // rndis_filter_device_add built rx_table over the 4 asked for, before the grant, and nothing
    // rebuilds it: the guest sends entries 2 and 3, which name no open channel, and the host refuses
    // that table (after the DISABLE_RSS set it accepted): the guest counts and ignores the failure.
    expect(dev.rxfh).toEqual(TABLE_OF_4);
    expect(dev.stats.errors.get("rss-param-set-failed")).toBe(1);
    expect(nic.host.rss.source).toBe("disabled");
    expect(nic.host.rss.accepted).toBe(0);
    // tx_table[i] = i % num_chn: queues 0 and 1 only.
    const frame = new Uint8Array(64);
    for (let b = 0; b < 32; b++) {
      frame[14] = b;
      expect(dev.queueFor(frame)).toBeLessThan(2);
    }
    expect(dev.stats.errors.get("subchannel-open-timed-out")).toBe(0);
    expect(vm.findings).toEqual([]);
    trafficOn(vm, nic, 2);
    removeCleanly(vm, nic, visibleAtBoot);
  });

  it("offers first, 1 of 3 granted: all three open, open_chn 4 passes num_chn 2, the kernel's wait never ends (finding)", () => {
    const { vm, nic, visibleAtBoot } = addNic("offers-first", 1);
    const dev = nic.device;
    // netvsc_sc_open ran with num_chn still 4: every offer was opened and counted.
    expect(dev.channels.map((c) => [c.index, c.opened])).toEqual([
      [0, true],
      [1, true],
      [2, true],
      [3, true],
    ]);
    expect(dev.stats.errors.get("subchannel-index-ignored")).toBe(0);
    expect(vm.findings).toEqual([
      {
        id: NETVSC_FINDING.subchannelOpenPastGrant,
        profile: vm.kernel.name,
        invariant: "termination",
        what: "netvsc_sc_open counted 4 channels before the completion granted 1 sub-channel(s) (num_chn 2): the wait for open_chn == num_chn never ends, with the RTNL lock held",
        where: "rndis_set_subchannel (wait_event on subchan_open)",
      },
    ]);
    // The kernel sleeps there forever; the model's wait ends as its other endless waits do, and the
    // sub-channel work falls back to one queue. The opened sub-channels stay open.
    expect(dev.stats.errors.get("subchannel-open-timed-out")).toBe(1);
    expect(dev.channelCount).toEqual({ combined: 1, max: 1 });
    expect(dev.rxfh).toEqual(TABLE_OF_4);
    // rndis_filter_set_rss_param was never reached: the host keeps its default spread over the 4 queues
    // the guest opened, so frames still arrive on every one of them, and all verify.
    expect(nic.host.rss).toMatchObject({ source: "default", queues: 4, accepted: 0 });
    const rxBefore = dev.channels.map((c) => c.counters.rxFrames);
    trafficOn(vm, nic, 1);
    const rxGained = dev.channels.map((c, q) => c.counters.rxFrames - rxBefore[q]!);
    expect(rxGained.every((n) => n > 0)).toBe(true);
    // One queue now: ethtool -L above max_chn 1 is EINVAL.
    const more = dev.setChannels(2);
    expect(more.ok || more.error.reason).toBe("bad-channel-count");
    removeCleanly(vm, nic, visibleAtBoot);
  });

  it("offers first is the default order", () => {
    const { vm, nic } = addNic(undefined, 1);
    expect(nic.device.stats.errors.get("subchannel-open-timed-out")).toBe(1);
    expect(vm.findings.map((f) => f.id)).toEqual([NETVSC_FINDING.subchannelOpenPastGrant]);
  });

  it("the finding is every profile's (the rule is the same from 5.17 to 6.18), kernel-exact or hardened", () => {
    for (const kernel of ["5.17", "6.18"]) {
      const { vm } = addNic("offers-first", 2, kernel);
      expect(
        vm.findings.map((f) => [f.id, f.profile]),
        kernel,
      ).toEqual([[NETVSC_FINDING.subchannelOpenPastGrant, kernel]]);
      expect(vm.findings[0]!.what).toContain("granted 2 sub-channel(s) (num_chn 3)");
    }
    const { vm } = addNic("offers-first", 2);
    expect(vm.kernel.hardened).toBe(true);
    expect(vm.findings).toHaveLength(1);
  });

  it("completion first, none granted: the wait is over at once, every offer is skipped, max_chn stays", () => {
    const { vm, nic, visibleAtBoot } = addNic("completion-first", 0);
    const dev = nic.device;
    expect(dev.channelCount).toEqual({ combined: 1, max: 8 });
    expect(dev.channels.map((c) => c.index)).toEqual([0]);
    expect(dev.stats.errors.get("subchannel-index-ignored")).toBe(3);
    expect(dev.stats.errors.get("subchannel-open-timed-out")).toBe(0);
    expect(nic.host.openQueues).toBe(1);
    expect(dev.rxfh).toEqual(TABLE_OF_4);
    expect(dev.stats.errors.get("rss-param-set-failed")).toBe(1);
    expect(vm.findings).toEqual([]);
    trafficOn(vm, nic, 1);
    removeCleanly(vm, nic, visibleAtBoot);
  });

  it("offers first, none granted: three opened against num_chn 1, the same finding, one queue", () => {
    const { vm, nic, visibleAtBoot } = addNic("offers-first", 0);
    const dev = nic.device;
    expect(dev.channels.filter((c) => c.opened)).toHaveLength(4);
    expect(dev.channelCount).toEqual({ combined: 1, max: 1 });
    expect(vm.findings.map((f) => f.what)).toEqual([
      "netvsc_sc_open counted 4 channels before the completion granted 0 sub-channel(s) (num_chn 1): the wait for open_chn == num_chn never ends, with the RTNL lock held",
    ]);
    trafficOn(vm, nic, 1);
    removeCleanly(vm, nic, visibleAtBoot);
  });

  it.each([
    ["offers first", "offers-first"],
    ["completion first", "completion-first"],
  ] as const)(
    "a grant above the request (%s) is EINVAL before any wait: primary only, no finding",
    (_, order) => {
      const { vm, nic, visibleAtBoot } = addNic(order, 4);
      const dev = nic.device;
      expect(dev.stats.errors.get("subchannel-count-invalid")).toBe(1);
      expect(dev.stats.errors.get("subchannel-open-timed-out")).toBe(0);
      expect(dev.channelCount).toEqual({ combined: 1, max: 1 });
      expect(vm.findings).toEqual([]);
      trafficOn(vm, nic, 1);
      removeCleanly(vm, nic, visibleAtBoot);
    },
  );

  it("ethtool -L with the completion first asks again and gets the grant again", () => {
    const { vm, nic, visibleAtBoot } = addNic("completion-first", 1);
    const dev = nic.device;
    expect(dev.setChannels(3).ok).toBe(true);
    // Asked 2, granted 1 (the adversary's claim), offered 2: index 2 skipped.
    expect(dev.channelCount).toEqual({ combined: 2, max: 8 });
    expect(dev.channels.map((c) => c.index)).toEqual([0, 1]);
    expect(vm.findings).toEqual([]);
    trafficOn(vm, nic, 2);
    removeCleanly(vm, nic, visibleAtBoot);
  });

  it("a host order that is neither is refused when the host is made", () => {
    const vm = Vm.boot({ memory: 256 * MiB, cpus: 8, strategy: remap });
    expect(() =>
      vm.addNic({ queues: 4, netvsp: { subchannelOrder: "offers-last" as SubchannelOrder } }),
    ).toThrow(RangeError);
  });
});
