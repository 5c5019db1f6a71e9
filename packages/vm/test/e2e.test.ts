import type { Era } from "@ivm/hypercall";
import { describe, expect, it } from "vitest";
import { runTraffic } from "../src/traffic.js";
import { Vm } from "../src/vm.js";
import { CASES } from "./cases.js";

const MiB = 2 ** 20;
const PACKETS = 100_000;

/** Pages strategy (6) makes host-visible at boot: its default 32 MiB pool. */
const POOL_PAGES: Readonly<Record<string, number>> = { "shared-pool": (32 * 2 ** 20) / 4096 };

describe.each(CASES)("netvsc end to end with $name", (c) => {
  const runs: { era: Era; isolation: boolean }[] = [
    ...c.eras.map((era) => ({ era, isolation: true })),
    { era: c.eras[0]!, isolation: false },
  ];
  it.each(runs)(
    "isolation $isolation, $era era: 100k mixed frames verified, clean remove",
    ({ era, isolation }) => {
      const vm = Vm.boot({ memory: 512 * MiB, era, isolation, strategy: c });
      const visibleAtBoot = vm.hostVisibleOutsideSwiotlb();
      const added = vm.addNic();
      if (!added.ok) throw added.error;
      const nic = added.nic;
      const report = runTraffic(vm, nic, { packets: PACKETS, seed: 42 });
      expect(report.txFrames + report.rxQueued).toBe(PACKETS);
      expect(report.txDropped).toBe(0);
      expect(report.rxFrames).toBe(report.rxQueued);
      expect(report.rxVerified).toBe(report.rxQueued);
      expect(report.rxCorrupt).toBe(0);
      expect(nic.host.counters.txFramesVerified).toBe(report.txFrames);
      expect(nic.host.counters.txBadFrames).toBe(0);
      expect(nic.device.stats.txPackets).toBe(report.txFrames);
      expect(nic.device.stats.rxPackets).toBe(report.rxFrames);
      expect(vm.memory.checkInvariants()).toEqual([]);
      expect(vm.memory.mmu.totalFaults).toBe(0);
      expect(vm.hyperv.hostView.refused).toBe(0);

      const { leakedBuffers } = vm.removeNic(nic);
      expect(leakedBuffers).toBe(0);
      expect(vm.memory.leakedPages).toBe(0);
      // Only the swiotlb pool (and strategy (6)'s boot-time pool) stays host-visible.
      expect(vm.hostVisibleOutsideSwiotlb()).toBe(visibleAtBoot);
      expect(visibleAtBoot).toBe(isolation ? (POOL_PAGES[c.name] ?? 0) : 0);
      expect(vm.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
      expect(vm.memory.buddy.pagesOwnedBy("netvsc-tx")).toBe(0);
      expect(vm.dma.counters.liveMappings).toBe(0);
      expect(vm.memory.checkInvariants()).toEqual([]);
      if (!isolation) expect(vm.hyperv.hypervisor.counters.hypercalls).toBe(0);
    },
    60_000,
  );
});
