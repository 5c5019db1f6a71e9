import { describe, expect, it } from "vitest";
import type { ResultRecord } from "../src/records.js";
import { num } from "../src/render.js";
import {
  MQ_FRAMES,
  MQ_QUEUES,
  RX_FRAMES,
  runSpeed,
  runSpeedSection,
  SPEED_SECTIONS,
  type SpeedSectionOptions,
  speedSteps,
  speedTables,
  TX_FRAMES,
} from "../src/speed.js";

describe("speed sections", () => {
  it("hands every section, in order, to the isolation runner with plain options and the same run", async () => {
    const calls: { section: string; options: SpeedSectionOptions; at: string }[] = [];
    const labels: string[] = [];
    const records = await runSpeed(
      { seed: 7, time: 10, guests: [4 * 2 ** 30], onStep: (l) => labels.push(l) },
      async (section, options, step, run) => {
        calls.push({ section, options, at: run.at });
        step(`in ${section}`);
        return [
          { bench: "speed", key: { case: "memcpy", bytes: 4096, section }, metrics: {}, timing: {}, run },
        ];
      },
    );
    expect(calls.map((c) => c.section)).toEqual([...SPEED_SECTIONS]);
    // Options cross to a worker thread: no function in them.
    for (const c of calls) expect(c.options).toEqual({ seed: 7, time: 10, guests: [4 * 2 ** 30] });
    expect(new Set(calls.map((c) => c.at)).size).toBe(1);
    expect(labels).toEqual(SPEED_SECTIONS.map((s) => `in ${s}`));
    expect(records.map((r) => r.key.section)).toEqual([...SPEED_SECTIONS]);
  });

  it("runs only the sections asked for, in their usual order, and counts only their steps", async () => {
    const calls: string[] = [];
    const records = await runSpeed(
      { seed: 1, time: 10, guests: [4 * 2 ** 30], sections: ["fuzz", "datapath"] },
      async (section, _options, _step, run) => {
        calls.push(section);
        return [
          { bench: "speed", key: { case: "memcpy", bytes: 4096, section }, metrics: {}, timing: {}, run },
        ];
      },
    );
    expect(calls).toEqual(["datapath", "fuzz"]);
    expect(records).toHaveLength(2);
    const datapath = TX_FRAMES.length + RX_FRAMES.length + 2 * MQ_FRAMES.length;
    expect(speedSteps({ guests: [1, 2], sections: ["datapath", "fuzz"] })).toBe(1 + datapath + 1 + 1);
    expect(speedSteps({ guests: [1, 2], sections: ["construction"] })).toBe(1 + 2);
    // all sections: each one's baseline step, then its cases (device: one per strategy and era)
    const device = speedSteps({ guests: [], sections: ["device"] }) - 1;
    expect(device).toBeGreaterThanOrEqual(6);
    expect(speedSteps({ guests: [1, 2] })).toBe(SPEED_SECTIONS.length + 2 + device + datapath + 3 + 1);
  });

  it("prints only the tables of the sections a run measured", async () => {
    const records = await runSpeedSection("buddy", { seed: 1, time: 10, guests: [] }, () => {});
    expect(speedTables(records).map((t) => t.title)).toEqual([
      "Buddy allocator (4 GiB, alloc then free in shuffled order)",
    ]);
  });

  it("measures a section's own memcpy baseline first, and divides each case by a memcpy timed in turn with it", async () => {
    const steps: string[] = [];
    const records = await runSpeedSection("buddy", { seed: 1, time: 10, guests: [] }, (l) => steps.push(l));
    const [memcpy, ...cases] = records as [ResultRecord, ...ResultRecord[]];
    expect(memcpy.key).toEqual({ case: "memcpy", bytes: 4096, section: "buddy" });
    expect(steps[0]).toBe("memcpy baseline (buddy)");
    expect(cases.map((r) => r.key.pattern)).toEqual(["order-0", "orders 0-6 (uptime weights)", "order-10"]);
    const ns = Number(memcpy.metrics.nsPerPage);
    expect(ns).toBeGreaterThan(0);
    for (const r of cases) {
      const paired = Number(r.metrics.memcpyNsPerPage);
      expect(paired).toBeGreaterThan(0);
      expect(Number(r.metrics.xMemcpyPage)).toBeCloseTo(Number(r.metrics.nsPerOp) / paired, 9);
    }
    // The buddy table shows each case's paired memcpy and names the section's first one in a note.
    const table = speedTables(records).find((t) => t.title.startsWith("Buddy"));
    expect(table?.head).toContain("memcpy ns per page");
    expect(table?.rows.map((row) => row[3])).toEqual(
      cases.map((r) => num(Number(r.metrics.memcpyNsPerPage), 0)),
    );
    // As the renderer writes it (a loaded machine can take ≥ 1 µs a page: "1,240 ns").
    expect(table?.notes?.[1]).toContain(`${num(ns, 0)} ns`);
  });

  it("shows older results (no paired memcpy) with a dash", () => {
    const run: ResultRecord["run"] = { at: "2026-01-01T00:00:00.000Z", node: "v20", cpus: 2 };
    const old: ResultRecord = {
      bench: "speed",
      key: { case: "buddy", pattern: "order-0", memory: 4 * 2 ** 30, seed: 1 },
      metrics: { opsPerSecond: 1, nsPerOp: 50, xMemcpyPage: 0.2 },
      timing: {},
      run,
    };
    const table = speedTables([old]).find((t) => t.title.startsWith("Buddy"));
    expect(table?.rows[0]?.[3]).toBe("—");
  });
});

describe("the data path section", () => {
  it("runs a single-queue NIC at every size and a multi-queue NIC at MQ_FRAMES, every frame verified", async () => {
    const steps: string[] = [];
    const records = await runSpeedSection("datapath", { seed: 3, time: 1, guests: [] }, (l) => steps.push(l));
    const cases = records.filter((r) => r.key.case === "datapath");
    const single = cases.filter((r) => r.key.queues === undefined);
    const multi = cases.filter((r) => r.key.queues !== undefined);
    expect(single.map((r) => `${r.key.direction} ${r.key.frameBytes}`)).toEqual([
      ...TX_FRAMES.map((b) => `tx ${b}`),
      ...RX_FRAMES.map((b) => `rx ${b}`),
    ]);
    expect(multi.map((r) => `${r.key.direction} ${r.key.frameBytes} ${r.key.queues}`)).toEqual([
      ...MQ_FRAMES.map((b) => `tx ${b} ${MQ_QUEUES}`),
      ...MQ_FRAMES.map((b) => `rx ${b} ${MQ_QUEUES}`),
    ]);
    for (const r of cases) {
      expect(r.metrics.verified).toBe(true);
      expect(Number(r.metrics.framesMoved)).toBeGreaterThan(0);
    }
    expect(steps).toContain(`data path rx ${MQ_FRAMES[0]} B, ${MQ_QUEUES} queues`);
    const table = speedTables(records).find((t) => t.title.startsWith("Data path"));
    expect(table?.head).toContain("queues");
    expect(table?.rows.map((row) => row[2])).toEqual(cases.map((r) => String(r.key.queues ?? 1)));
  });
});
