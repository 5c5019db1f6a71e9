import { STRATEGIES } from "@ivm/catalog";
import { eraProfile, getProfile } from "@ivm/kernel";
import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG, type LabConfig } from "../src/model/config.js";
import { HOST_VISIBLE, LEAKED, PageState, pageFlags } from "../src/model/page-state.js";
import { type Recording, record, STEP_COUNTERS } from "../src/model/recorder.js";
import { demoResult, firstGpadlHeader, reencryptionFails } from "./direct.js";

const small: LabConfig = { ...DEFAULT_CONFIG, memory: 256 * 2 ** 20, uptime: "light", packets: 300, seed: 3 };

function expectSameAsDemo(rec: Recording, config: LabConfig): void {
  const d = demoResult(config, rec.strategy);
  const s = rec.summary;
  expect(s.buffers).toEqual(d.buffers);
  expect(s.deviceAdd).toEqual({
    ok: d.deviceAdd.ok,
    hypercalls: d.deviceAdd.hypercalls,
    gpadlMessages: d.deviceAdd.gpadlMessages,
    channelMessages: d.deviceAdd.channelMessages,
    pageTablePagesAdded: d.deviceAdd.pageTablePagesAdded,
  });
  expect(s.hostVisiblePagesAfterRemove).toBe(d.hostVisiblePagesAfterRemove);
  expect(s.leakedPages).toBe(d.leakedPages);
  expect(s.faults).toBe(d.faults);
  expect(s.packets).toEqual({
    sent: d.packets.sent,
    received: d.packets.received,
    verified: d.packets.verified,
  });
}

describe("the recorder runs the demo's scenario on the real packages", () => {
  it.each(STRATEGIES.map((s) => s.name))(
    "%s: the demo's numbers, and the diffs replay to the model's state",
    (name) => {
      // Each strategy on its first era's representative kernel, as the lab ran it before profiles.
      const config: LabConfig = {
        ...small,
        kernel: eraProfile(STRATEGIES.find((s) => s.name === name)!.eras[0]!).name,
      };
      const rec = record(config, name);
      expect(rec.skipped).toBeUndefined();
      expectSameAsDemo(rec, config);
      expect(new Set(rec.events.map((e) => e.kind))).toEqual(new Set(["hypercall", "message", "packet"]));
      expect(rec.phaseStart.add).toBeLessThan(rec.phaseStart.traffic);
      expect(rec.phaseStart.traffic).toBeLessThan(rec.phaseStart.remove);
      // Replaying every diff forward lands on the model's own counts; back again on the booted state.
      const state = new PageState(rec.initial);
      const n = STEP_COUNTERS.length;
      for (const step of [rec.phaseStart.traffic - 1, rec.events.length]) {
        state.seek(rec.diffs, step);
        const visible = state.packed.filter((p) => (pageFlags(p) & HOST_VISIBLE) !== 0).length;
        const leaked = state.packed.filter((p) => (pageFlags(p) & LEAKED) !== 0).length;
        expect(visible).toBe(rec.counters[step * n + STEP_COUNTERS.indexOf("host-visible pages")]);
        expect(leaked).toBe(rec.counters[step * n + STEP_COUNTERS.indexOf("leaked pages")]);
      }
      state.seek(rec.diffs, 0);
      expect(state.packed).toEqual(rec.initial);
      expect(rec.missedPages).toBe(0);
    },
  );
});

describe("decoded events", () => {
  it("place every decoded field where the bytes hold it, and name the first GPADL header's handle and PFNs", async () => {
    const { decodeEvent } = await import("../src/model/decode.js");
    const rec = record(small, "vmalloc-remap");
    const kinds = new Set<string>();
    for (const e of rec.events) {
      const d = decodeEvent(e);
      for (const p of d.parts) {
        for (const f of p.fields) expect(f.mismatch, `${d.title}: ${f.name}`).toBeUndefined();
        kinds.add(p.title.split(/[:(]/)[0]!.trim());
      }
    }
    expect(kinds).toEqual(
      new Set(["hypercall", "input page", "channel message", "ring packet", "NVSP message", "RNDIS message"]),
    );
    // The first GPADL header as VMBus's decoder reads it straight off the connection, independently.
    const first = firstGpadlHeader(small, "vmalloc-remap");
    const header = rec.events.map(decodeEvent).find((d) => d.facts.kind === "gpadl-header")!;
    expect(header.facts.gpadl).toBe(first.gpadl);
    expect(header.facts.pfnCount).toBe(first.pfns);
  });
});

describe("faults from the UI", () => {
  it("the n-th hypercall failing: the failed call is in the recording and the leak count is the model's", async () => {
    const { Vm, addNicMeasured } = await import("@ivm/vm");
    const { decodeEvent } = await import("../src/model/decode.js");
    const entry = STRATEGIES.find((s) => s.name === "vmalloc-remap")!;
    const leaks: number[] = [];
    for (const k of [1, 2, 5]) {
      const config: LabConfig = { ...small, failHypercall: k };
      const rec = record(config, "vmalloc-remap");
      const vm = Vm.boot({ memory: small.memory, uptime: small.uptime, seed: small.seed, strategy: entry });
      vm.hyperv.hypervisor.faults.failCall(k);
      const { cost } = addNicMeasured(vm);
      expect(rec.summary.deviceAdd.ok).toBe(cost.ok);
      expect(rec.summary.leakedPages).toBe(vm.memory.leakedPages);
      leaks.push(rec.summary.leakedPages);
      const failed = rec.events.filter((e) => e.kind === "hypercall" && e.hypercall!.result !== 0);
      expect(
        failed.map(
          (e) => e.hypercall!.seq - rec.events.find((x) => x.kind === "hypercall")!.hypercall!.seq + 1,
        ),
      ).toEqual([k]);
      expect(decodeEvent(failed[0]!).title).toMatch(/→ AccessDenied$/);
      const n = STEP_COUNTERS.length;
      expect(rec.counters[rec.events.length * n + STEP_COUNTERS.indexOf("failed hypercalls")]).toBe(1);
    }
    expect(leaks.some((n) => n > 0)).toBe(true);
  });
});

describe("kernel profiles", () => {
  it("5.17 with re-encryption failing: the kernel's finding, at the step of the remove that reported it", async () => {
    const config: LabConfig = { ...small, kernel: "5.17", hardened: false, failReencrypt: true };
    const rec = record(config, "vmalloc-remap");
    const vm = reencryptionFails(config, "vmalloc-remap");
    expect(rec.kernel).toBe("5.17");
    expect(rec.findings.map(({ step: _, ...f }) => f)).toEqual(vm.findings);
    expect(rec.findings.length).toBeGreaterThan(0);
    expect(rec.findings[0]!.id).toMatch(/^CVE-2024-369\d\d$/);
    const n = STEP_COUNTERS.length;
    const at = rec.findings[0]!.step;
    expect(at).toBeGreaterThanOrEqual(rec.phaseStart.remove);
    const count = (step: number) => rec.counters[step * n + STEP_COUNTERS.indexOf("findings")];
    expect(count(at - 1)).toBe(0);
    expect(count(at)).toBeGreaterThan(0);
    expect(count(rec.events.length)).toBe(vm.findingLog.count());
  });

  it("6.12 with vtom-pte: no finding, and the pages that could not be re-encrypted leak", async () => {
    const config: LabConfig = { ...small, kernel: "6.12", hardened: false, failReencrypt: true };
    const rec = record(config, "vtom-pte");
    const vm = reencryptionFails(config, "vtom-pte");
    expect(rec.findings).toEqual([]);
    expect(rec.summary.leakedPages).toBe(vm.memory.leakedPages);
    expect(rec.summary.leakedPages).toBeGreaterThan(0);
  });

  it("a strategy not written for the kernel is not booted, and says why in the descriptor's words", () => {
    const entry = STRATEGIES.find((s) => s.name === "vmalloc-remap")!;
    const rec = record({ ...small, kernel: "6.12" }, "vmalloc-remap");
    const booted = { ...getProfile("6.12"), hardened: true };
    expect(rec.skipped).toBe(entry.unsupportedOn(booted));
    expect(rec.skipped).toMatch(/^vmalloc-remap was written for Linux 5\.17–6\.3 .*not 6\.12$/);
    expect(rec.events).toHaveLength(0);
  });

  it("records a multi-queue NIC (CPUs 4, queues 4) as the demo runs it: 4 channels, the same add costs", () => {
    const config: LabConfig = { ...small, cpus: 4, queues: 4 };
    const rec = record(config, "vmalloc-remap");
    expect(rec.summary.channels).toBe(4);
    expect(demoResult(config, "vmalloc-remap").nic.channels).toBe(4);
    expectSameAsDemo(rec, config);
  });

  it("records the ring packets of every channel, sub-channels included, in both directions", () => {
    const rec = record({ ...small, cpus: 4, queues: 4 }, "vmalloc-remap");
    const packets = rec.events.filter((e) => e.kind === "packet");
    const relids = (dir: string) => new Set(packets.filter((e) => e.direction === dir).map((e) => e.relid));
    expect(relids("guest-to-host").size).toBe(4);
    expect(relids("host-to-guest").size).toBe(4);
    // The step counter counts them all, and each sub-channel's share is a real part of the total.
    const n = STEP_COUNTERS.length;
    expect(rec.counters[rec.counters.length - n + STEP_COUNTERS.indexOf("ring packets")]).toBe(
      packets.length,
    );
    const primary = packets.filter((e) => e.relid === packets[0]!.relid).length;
    expect(primary).toBeLessThan(packets.length / 2);
  });
});
