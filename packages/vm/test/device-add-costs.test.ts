import { pageBlocks } from "@ivm/strategy-page-blocks";
import { vmallocRemap } from "@ivm/strategy-vmalloc-remap";
import { vtomPte } from "@ivm/strategy-vtom-pte";
import { describe, expect, it } from "vitest";
import { addNicMeasured } from "../src/measure.js";
import { Vm } from "../src/vm.js";

const MiB = 2 ** 20;

describe("device-add costs, read from the model's counters", () => {
  it("strategy (1) at default sizes: 9 + 1 hypercalls, 147 + 10 GPADL messages, two mappings each, PFN array freed", () => {
    const vm = Vm.boot({ memory: 512 * MiB, strategy: vmallocRemap });
    const { nic, cost } = addNicMeasured(vm);
    expect(cost.ok).toBe(true);
    const { rx, tx } = cost.buffers;
    expect(rx).toMatchObject({
      sections: 9709,
      pages: 4096,
      hypercalls: 9,
      gpadlMessages: 147,
      liveMappings: 2,
    });
    expect(tx).toMatchObject({
      sections: 170,
      pages: 255,
      hypercalls: 1,
      gpadlMessages: 10,
      liveMappings: 2,
    });
    // Two VAs of 16 MiB + a guard page each; PTE pages: 8 for the 16 MiB-aligned alias plus 8–9 for the original.
    expect(rx!.vmallocBytes).toBe(2 * (16 * MiB + 4096));
    expect(rx!.ptePages).toBeGreaterThanOrEqual(16);
    expect(rx!.ptePages).toBeLessThanOrEqual(17);
    // Persistent: vmalloc's page arrays — 32 KiB in a nested vmalloc (whose own 8-entry page array is a
    // 64-byte kmalloc) and 2040 B kmalloc'd; temporary: the PFN arrays hv_map_memory frees.
    expect(rx!.strategy).toMatchObject({ persistentMetadataBytes: 32768 + 64, transientPeakBytes: 32768 });
    expect(tx!.strategy).toMatchObject({ persistentMetadataBytes: 2040, transientPeakBytes: 2040 });
    expect(vm.memory.kmalloc.statsFor("hv-map-pfns").live).toBe(0);
    expect(rx!.strategy!.pagesByOrder[0]).toBe(4096);
    vm.removeNic(nic!);
  });

  it("strategy (5) in the pte-bit era: one mapping per buffer, no temporary arrays", () => {
    const vm = Vm.boot({ memory: 512 * MiB, era: "pte-bit", strategy: vtomPte });
    const { cost } = addNicMeasured(vm);
    expect(cost.buffers.rx).toMatchObject({ hypercalls: 9, gpadlMessages: 147, liveMappings: 1 });
    expect(cost.buffers.tx).toMatchObject({ hypercalls: 1, gpadlMessages: 10, liveMappings: 1 });
    expect(cost.buffers.rx!.strategy!.transientPeakBytes).toBe(0);
  });

  it("strategy (4) gets four 4 MiB blocks on a fresh guest and falls back on an aged one; (1) does not care", () => {
    const fresh = Vm.boot({ memory: 512 * MiB, strategy: pageBlocks });
    const a = addNicMeasured(fresh);
    expect(a.cost.buffers.rx!.strategy!.pagesByOrder[10]).toBe(4);
    expect(a.cost.order10Failures).toBe(0);
    expect(a.cost.buffers.rx!.liveMappings).toBe(1);

    const aged = Vm.boot({
      memory: 512 * MiB,
      uptime: "heavy",
      seed: 5,
      strategy: pageBlocks,
    });
    const b = addNicMeasured(aged);
    expect(b.cost.ok).toBe(true);
    expect(b.cost.order10Failures).toBeGreaterThan(0);
    expect(b.cost.buffers.rx!.strategy!.pagesByOrder[10]).toBe(0);
    expect(b.cost.buffers.rx!.strategy!.pagesByOrder[0]).toBe(4096);
    // The failed order-10 attempt was not free: the allocator compacted (and stalled) for it.
    expect(b.cost.buffers.rx!.strategy!.allocatorWork.compactionStalls).toBeGreaterThan(0);
    expect(b.cost.buffers.rx!.strategy!.allocatorWork.allocStalls).toBeGreaterThan(0);

    const agedRemap = Vm.boot({
      memory: 512 * MiB,
      uptime: "moderate",
      seed: 5,
      strategy: vmallocRemap,
    });
    const c = addNicMeasured(agedRemap);
    expect(c.cost.ok).toBe(true);
    expect(c.cost.order10Failures).toBe(0);
    expect(c.cost.buffers.rx).toMatchObject({ hypercalls: 9, gpadlMessages: 147, liveMappings: 2 });
  });
});
