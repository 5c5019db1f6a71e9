import { PAGE_SIZE } from "@ivm/memory";
import { sharedPool } from "@ivm/strategy-shared-pool";
import { vmallocRemap } from "@ivm/strategy-vmalloc-remap";
import { describe, expect, it } from "vitest";
import { runTraffic } from "../src/traffic.js";
import { Vm } from "../src/vm.js";
import { CASES } from "./cases.js";

const MiB = 2 ** 20;
const SMALL = { rxSections: 24, txSections: 6, ringBytes: 4 * PAGE_SIZE } as const;

describe("Vm.checkInvariants", () => {
  it.each(CASES)("holds after every step of add, traffic and remove with $name", (c) => {
    for (const era of c.eras) {
      const vm = Vm.boot({ memory: 64 * MiB, era, swiotlbSlots: 1024, strategy: c });
      expect(vm.checkInvariants()).toEqual([]);
      const added = vm.addNic(SMALL);
      if (!added.ok) throw added.error;
      expect(vm.checkInvariants()).toEqual([]);
      const r = runTraffic(vm, added.nic, { packets: 200, seed: 3 });
      expect(r.rxVerified).toBe(r.rxQueued);
      expect(vm.checkInvariants()).toEqual([]);
      vm.removeNic(added.nic);
      expect(vm.checkInvariants()).toEqual([]);
    }
  });

  it("reports a private page made host-visible behind the allocator's back (I8) and the fault it causes (I7)", () => {
    const vm = Vm.boot({ memory: 64 * MiB, swiotlbSlots: 1024, strategy: vmallocRemap });
    const va = vm.memory.kmalloc.kzalloc(64, { tag: "private-heap" })!;
    const pfn = vm.memory.virtToPfn(va);
    vm.hyperv.hypercalls.markGpaVisibility([pfn], 1);
    const v = vm.checkInvariants();
    expect(v.map((x) => x.invariant)).toEqual(["I8"]);
    expect(v[0]!.pfn).toBe(pfn);
    expect(() => vm.memory.mmu.read(va, new Uint8Array(4))).toThrow(/private-alias-to-shared-page/);
    expect(
      vm
        .checkInvariants()
        .map((x) => x.invariant)
        .sort(),
    ).toEqual(["I7", "I8"]);
  });

  it("reports a free page that is still host-visible (I1) and a free leaked page (I4)", () => {
    const vm = Vm.boot({ memory: 64 * MiB, swiotlbSlots: 1024, strategy: sharedPool });
    const pfn = vm.memory.buddy.allocPages(0, { tag: "x" })!;
    vm.memory.buddy.freePages(pfn, 0);
    vm.memory.phys.setHostVisible(pfn, true);
    expect(vm.checkInvariants().map((x) => x.invariant)).toContain("I1");
  });

  it("a failed add leaves no device on either side: the host rescinds its offer, the guest releases it", () => {
    const vm = Vm.boot({ memory: 64 * MiB, swiotlbSlots: 1024, strategy: vmallocRemap });
    vm.hyperv.hypervisor.faults.failCall(2); // the receive buffer's decryption
    const r = vm.addNic(SMALL);
    expect(r.ok).toBe(false);
    expect(vm.nics).toEqual([]);
    expect(vm.conn.channels.size).toBe(0);
    expect([...vm.server.channels.values()].filter((c) => c.state !== "rescinded")).toEqual([]);
    expect(vm.checkInvariants()).toEqual([]);
  });
});
