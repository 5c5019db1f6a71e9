// A host that grants fewer sub-channels than it offers (rndis_set_subchannel / netvsc_sc_open): what the
// guest opens, its channel counts and receive indirection table, and the kernel's never-ending wait
// when the offers are handled before the completion.
import { NETVSC_FINDING, type NetvscLoggedErrorReason } from "@ivm/netvsc";
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

/**
 * What the add left: `ethtool -l`, the chan_table indices (each open), the sub-channel reasons counted,
 * the queues the host has open, and the findings' ids. `rxfh` is checked on its own.
 */
function outcome(vm: Vm, nic: Nic) {
  const dev = nic.device;
  const errors = (reason: NetvscLoggedErrorReason) => dev.stats.errors.get(reason);
  return {
    channelCount: dev.channelCount,
    channels: dev.channels.map((c) => (c.opened ? c.index : `${c.index} closed`)),
    ignored: errors("subchannel-index-ignored"),
    timedOut: errors("subchannel-open-timed-out"),
    countInvalid: errors("subchannel-count-invalid"),
    rssFailed: errors("rss-param-set-failed"),
    hostQueues: nic.host.openQueues,
    findings: vm.findings.map((f) => f.id),
  };
}
const NONE = { ignored: 0, timedOut: 0, countInvalid: 0, rssFailed: 0, findings: [] as string[] };
const PAST_GRANT = NETVSC_FINDING.subchannelOpenPastGrant;

/** Traffic (trafficOn), then a remove that leaves nothing behind. */
function carryThenRemove(setup: ReturnType<typeof addNic>, txQueues: number) {
  trafficOn(setup.vm, setup.nic, txQueues);
  removeCleanly(setup);
}

function removeCleanly({ vm, nic, visibleAtBoot }: ReturnType<typeof addNic>) {
  expect(vm.checkInvariants()).toEqual([]);
  expect(vm.removeNic(nic).leakedBuffers).toBe(0);
  expect(vm.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(0);
  expect(vm.hostVisibleOutsideSwiotlb()).toBe(visibleAtBoot);
  // Offered sub-channels the guest never opened are rescinded and released with the rest.
  expect(vm.conn.channels.size).toBe(0);
  expect(vm.checkInvariants()).toEqual([]);
}

type Outcome = ReturnType<typeof outcome>;
const ALL_FOUR = [0, 1, 2, 3];
/** The fallback to one queue after a failed rndis_set_subchannel (netvsc_subchan_work). */
const ONE_QUEUE = { combined: 1, max: 1 };

/**
 * [name, host order, grant claimed (undefined: honest), what the add leaves, queues transmit uses].
 * Every row: the indirection table is the one built over the 4 asked for; traffic verifies both ways;
 * the remove leaves nothing.
 */
const ROWS: readonly [string, SubchannelOrder | undefined, number | undefined, Partial<Outcome>, number][] = [
  [
    "honest, offers first: every channel",
    "offers-first",
    undefined,
    { channels: ALL_FOUR, hostQueues: 4 },
    4,
  ],
  [
    "honest, completion first: every channel",
    "completion-first",
    undefined,
    { channels: ALL_FOUR, hostQueues: 4 },
    4,
  ],
  [
    // num_chn = 1 + grant (max_chn stays); netvsc_sc_open saw num_chn 2 for the offers of indices 2
    // and 3. rx_table still names 2 and 3, which no open channel has: the host refuses the table
    // (after the DISABLE_RSS set), and the guest counts and ignores the failure.
    "1 of 3, completion first: sub-channel 1 opens, 2 and 3 are skipped",
    "completion-first",
    1,
    { channelCount: { combined: 2, max: 8 }, channels: [0, 1], ignored: 2, rssFailed: 1, hostQueues: 2 },
    2,
  ],
  [
    // netvsc_sc_open ran with num_chn still 4 for every offer: all opened and counted, open_chn 4
    // passes num_chn 2. The kernel sleeps forever; the model's wait ends as its other endless waits do
    // and the sub-channel work falls back to one queue; the opened sub-channels stay open.
    "1 of 3, offers first: all open, the wait never ends (finding), one queue",
    "offers-first",
    1,
    { channelCount: ONE_QUEUE, channels: ALL_FOUR, timedOut: 1, hostQueues: 4, findings: [PAST_GRANT] },
    1,
  ],
  [
    "1 of 3, the default order is offers first",
    undefined,
    1,
    { channelCount: ONE_QUEUE, channels: ALL_FOUR, timedOut: 1, hostQueues: 4, findings: [PAST_GRANT] },
    1,
  ],
  [
    "none, completion first: the wait is over at once, every offer skipped, max_chn stays",
    "completion-first",
    0,
    { channelCount: { combined: 1, max: 8 }, channels: [0], ignored: 3, rssFailed: 1, hostQueues: 1 },
    1,
  ],
  [
    "none, offers first: three opened against num_chn 1 (finding), one queue",
    "offers-first",
    0,
    { channelCount: ONE_QUEUE, channels: ALL_FOUR, timedOut: 1, hostQueues: 4, findings: [PAST_GRANT] },
    1,
  ],
  [
    // EINVAL before any wait; with the offers first they were opened before it, and stay open.
    "above the request, offers first: EINVAL, one queue, no finding",
    "offers-first",
    4,
    { channelCount: ONE_QUEUE, channels: ALL_FOUR, countInvalid: 1, hostQueues: 4 },
    1,
  ],
  [
    "above the request, completion first: EINVAL, one queue, the offers skipped",
    "completion-first",
    4,
    { channelCount: ONE_QUEUE, channels: [0], countInvalid: 1, ignored: 3, hostQueues: 1 },
    1,
  ],
];

describe("a host that grants fewer sub-channels than it offers", () => {
  it.each(ROWS)("%s", (_, order, grant, left, txQueues) => {
    const setup = addNic(order, grant);
    expect(outcome(setup.vm, setup.nic)).toEqual({
      ...NONE,
      channelCount: { combined: 4, max: 8 },
      ...left,
    });
    expect(setup.nic.device.rxfh).toEqual(TABLE_OF_4);
    carryThenRemove(setup, txQueues);
  });

  it("the finding says what the kernel does, with the numbers", () => {
    const { vm } = addNic("offers-first", 1);
    expect(vm.findings).toEqual([
      {
        id: PAST_GRANT,
        profile: vm.kernel.name,
        invariant: "termination",
        what: "netvsc_sc_open counted 4 channels before the completion granted 1 sub-channel(s) (num_chn 2): the wait for open_chn == num_chn never ends, with the RTNL lock held",
        where: "rndis_set_subchannel (wait_event on subchan_open)",
      },
    ]);
  });

  it("every profile has it (the rule is the same from 5.17 to 6.18), kernel-exact or hardened", () => {
    for (const kernel of ["5.17", "6.18"]) {
      const { vm } = addNic("offers-first", 2, kernel);
      expect(
        vm.findings.map((f) => [f.id, f.profile]),
        kernel,
      ).toEqual([[PAST_GRANT, kernel]]);
      expect(vm.findings[0]!.what).toContain("granted 2 sub-channel(s) (num_chn 3)");
    }
    const { vm } = addNic("offers-first", 2);
    expect(vm.kernel.hardened).toBe(true);
    expect(vm.findings).toHaveLength(1);
  });

  it("honest: the host takes the guest's table over the four", () => {
    const { nic } = addNic("completion-first", undefined);
    expect(nic.host.rss).toEqual({ source: "guest", table: TABLE_OF_4, queues: 4, accepted: 1 });
  });

  it("1 of 3, completion first: the host refused the table; transmit uses queues 0 and 1 only", () => {
    const { nic } = addNic("completion-first", 1);
    expect(nic.host.counters.subchannelsGranted).toBe(3);
    expect(nic.host.rss).toMatchObject({ source: "disabled", accepted: 0 });
    // tx_table[i] = i % num_chn.
    const frame = new Uint8Array(64);
    for (let b = 0; b < 32; b++) {
      frame[14] = b;
      expect(nic.device.queueFor(frame)).toBeLessThan(2);
    }
  });

  it("1 of 3, offers first: the RSS parameters never went out, frames arrive on all four, ethtool -L 2 is EINVAL", () => {
    const setup = addNic("offers-first", 1);
    const { vm, nic } = setup;
    // The host keeps its default spread over the 4 queues the guest opened.
    expect(nic.host.rss).toMatchObject({ source: "default", queues: 4, accepted: 0 });
    const rxBefore = nic.device.channels.map((c) => c.counters.rxFrames);
    trafficOn(vm, nic, 1);
    const rxGained = nic.device.channels.map((c, q) => c.counters.rxFrames - rxBefore[q]!);
    expect(rxGained.every((n) => n > 0)).toBe(true);
    const more = nic.device.setChannels(2);
    expect(more.ok || more.error.reason).toBe("bad-channel-count");
    removeCleanly(setup);
  });

  it("ethtool -L with the completion first asks again and gets the grant again", () => {
    const setup = addNic("completion-first", 1);
    expect(setup.nic.device.setChannels(3).ok).toBe(true);
    // Asked 2, granted 1 (the adversary's claim), offered 2: index 2 skipped (counted again).
    expect(outcome(setup.vm, setup.nic)).toMatchObject({
      channelCount: { combined: 2, max: 8 },
      channels: [0, 1],
      ignored: 3,
      findings: [],
    });
    carryThenRemove(setup, 2);
  });

  it("a host order that is neither is refused when the host is made", () => {
    const vm = Vm.boot({ memory: 256 * MiB, cpus: 8, strategy: remap });
    expect(() =>
      vm.addNic({ queues: 4, netvsp: { subchannelOrder: "offers-last" as SubchannelOrder } }),
    ).toThrow(RangeError);
  });
});
