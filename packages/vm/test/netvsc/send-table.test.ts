// The host's NVSP 5 SEND_INDIRECTION_TABLE (netvsc_send_table): it replaces the guest's transmit queue
// table as the kernel takes it — checked for size and bounds, entries cut to u16, queue numbers never
// checked (netvsc_select_queue folds them into range) — and rndis_set_subchannel's next run (ethtool
// -L) puts i % num_chn back.
import { VRSS_SEND_TAB_SIZE } from "@ivm/netvsc-protocol";
import { describe, expect, it } from "vitest";
import { runTraffic } from "../../src/traffic.js";
import { type Nic, Vm } from "../../src/vm.js";
import { CASES } from "../cases.js";

const MiB = 2 ** 20;
const remap = CASES.find((c) => c.name === "vmalloc-remap")!;

function addNic(queues: number) {
  const vm = Vm.boot({ memory: 256 * MiB, cpus: 4, strategy: remap });
  const added = vm.addNic({ queues });
  if (!added.ok) throw added.error;
  return { vm, nic: added.nic };
}

const table = (f: (i: number) => number): number[] =>
  Array.from({ length: VRSS_SEND_TAB_SIZE }, (_, i) => f(i));

/** The host sends `entries` (with header `options`) and both sides run until idle. */
function sendTable(vm: Vm, nic: Nic, entries: number[], options = {}) {
  expect(nic.host.sendIndirectionTable(entries, options)).toBe(true);
  vm.runIdle();
}

/** Guest → host traffic (verified); which host queues the frames arrived on, by count. */
function txQueues(vm: Vm, nic: Nic): number[] {
  const counts = () => nic.host.counters.queues.map((q) => q?.txFramesVerified ?? 0);
  const before = counts();
  const report = runTraffic(vm, nic, { packets: 400, rxShare: 0, seed: 5 });
  expect(report.txDropped).toBe(0);
  expect(nic.host.counters.txFramesVerified - before.reduce((a, b) => a + b, 0)).toBe(report.txFrames);
  return counts().map((n, q) => n - (before[q] ?? 0));
}

/** For each bucket the guest's flow hash can pick, the queue its frame goes out on (queueFor). */
const bucketsOf = (nic: Nic, n: number): Set<number> => {
  const frame = new Uint8Array(64);
  const seen = new Set<number>();
  for (let seq = 0; seq < n; seq++) {
    frame[14] = seq & 0xff;
    frame[15] = seq >>> 8;
    seen.add(nic.device.queueFor(frame));
  }
  return seen;
};

describe("netvsc_send_table: the host's send indirection table", () => {
  it("before any table the frames spread over every queue (tx_table[i] = i % 4)", () => {
    const { vm, nic } = addNic(4);
    expect(txQueues(vm, nic).map((n) => n > 0)).toEqual([true, true, true, true]);
    expect(nic.device.stats.sendTablesApplied).toBe(0);
  });

  it("a table naming queue 2 everywhere sends every frame on queue 2", () => {
    const { vm, nic } = addNic(4);
    sendTable(
      vm,
      nic,
      table(() => 2),
    );
    expect(nic.device.stats.sendTablesApplied).toBe(1);
    expect(nic.device.stats.errors.get("inband-send-indirection-table")).toBe(1);
    const arrived = txQueues(vm, nic);
    expect(arrived.map((n) => n > 0)).toEqual([false, false, true, false]);
  });

  it("queue numbers are not checked: 7 of 4 queues folds to 3, and a u32 entry keeps its low 16 bits", () => {
    const { vm, nic } = addNic(4);
    sendTable(
      vm,
      nic,
      table((i) => (i % 2 === 0 ? 7 : 0x1_0001)),
    );
    expect(nic.device.stats.sendTablesApplied).toBe(1);
    // 7 - 4 = 3 (netvsc_select_queue's loop); 0x10001 stored in a u16 is 1
    expect([...bucketsOf(nic, 512)].sort()).toEqual([1, 3]);
    expect(txQueues(vm, nic).map((n) => n > 0)).toEqual([false, true, false, true]);
  });

  it("refuses a table of the wrong size or past the message's end, and keeps the one it had", () => {
    const { vm, nic } = addNic(4);
    sendTable(
      vm,
      nic,
      table(() => 1),
    );
    sendTable(vm, nic, table(() => 3).slice(0, 15), { count: 15 });
    expect(nic.device.stats.errors.get("send-table-size-wrong")).toBe(1);
    sendTable(
      vm,
      nic,
      table(() => 3),
      { offset: 4096, at: 40 },
    );
    expect(nic.device.stats.errors.get("send-table-offset-too-big")).toBe(1);
    expect(nic.device.stats.sendTablesApplied).toBe(1);
    expect(txQueues(vm, nic).map((n) => n > 0)).toEqual([false, true, false, false]);
  });

  it("on a single-queue NIC the table is taken but every frame still goes on queue 0", () => {
    const { vm, nic } = addNic(1);
    sendTable(
      vm,
      nic,
      table(() => 3),
    );
    expect(nic.device.stats.sendTablesApplied).toBe(1);
    expect(bucketsOf(nic, 256)).toEqual(new Set([0]));
    expect(txQueues(vm, nic)[0]).toBeGreaterThan(0);
  });

  it("ethtool -L runs rndis_set_subchannel again, which puts tx_table[i] = i % num_chn back", () => {
    const { vm, nic } = addNic(4);
    sendTable(
      vm,
      nic,
      table(() => 0),
    );
    expect(bucketsOf(nic, 512)).toEqual(new Set([0]));
    const r = nic.device.setChannels(2);
    expect(r.ok).toBe(true);
    vm.runIdle();
    expect(bucketsOf(nic, 512)).toEqual(new Set([0, 1]));
  });
});
