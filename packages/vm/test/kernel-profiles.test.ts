import { PROFILE_NAMES, profiles, UnknownKernelError } from "@ivm/kernel";
import { PAGE_SIZE } from "@ivm/memory";
import { sharedPool } from "@ivm/strategy-shared-pool";
import { vmallocRemap } from "@ivm/strategy-vmalloc-remap";
import { vtomPte } from "@ivm/strategy-vtom-pte";
import { describe, expect, it } from "vitest";
import { FAULT_NAMES, VM_FAULTS } from "../src/faults.js";
import { addNicMeasured } from "../src/measure.js";
import { Vm } from "../src/vm.js";

const MiB = 2 ** 20;
const SMALL = { rxSections: 24, txSections: 6, ringBytes: 4 * PAGE_SIZE } as const;
const remap = { strategy: vmallocRemap } as const;
const pte = { strategy: vtomPte } as const;
const CVE_2024 = /^CVE-2024-369(09|11|12|13)$/;

/** A guest at default NIC sizes (a 16 MiB receive buffer: 4,096 pages, nine visibility batches). */
function boot(kernel: string, fault: (typeof FAULT_NAMES)[number] | undefined, s: typeof remap | typeof pte) {
  return Vm.boot({
    memory: 512 * MiB,
    kernel,
    ...(fault ? { fault } : {}),
    swiotlbSlots: 1024,
    strategy: s.strategy,
  });
}

describe("Vm.boot({ kernel })", () => {
  it.each(PROFILE_NAMES)(
    "boots %s: one profile and one finding log in every layer, the era its own",
    (name) => {
      const vm = Vm.boot({
        memory: 64 * MiB,
        kernel: name,
        swiotlbSlots: 1024,
        strategy: sharedPool,
      });
      expect(vm.kernel.name).toBe(name);
      expect(vm.kernel.hardened).toBe(false);
      expect(vm.era).toBe(profiles[name].era);
      expect(vm.memory.vtomMode).toBe(profiles[name].era);
      expect(vm.hyperv.profile).toBe(vm.kernel);
      expect(vm.conn.kernel.profile).toBe(vm.kernel);
      expect(vm.hyperv.findings).toBe(vm.findingLog);
      expect(vm.conn.kernel.findings).toBe(vm.findingLog);
      const added = vm.addNic(SMALL);
      if (!added.ok) throw added.error;
      vm.removeNic(added.nic);
      // an honest host and no fault: no kernel does anything its successors would not
      expect(vm.audit()).toEqual({ violations: [], findings: [] });
    },
  );

  it("takes a KernelProfile object, and `hardened` keeps the lab's stricter checks", () => {
    const vm = Vm.boot({ memory: 64 * MiB, kernel: profiles["6.1"], hardened: true, ...anyKernel() });
    expect(vm.kernel).toMatchObject({ name: "6.1", era: "address-bit", hardened: true });
    expect(vm.conn.kernel.profile.hardened).toBe(true);
  });

  it("keeps `era` as the shorthand for the era's representative kernel (5.17, 6.9), hardened as before profiles", () => {
    expect(Vm.boot({ memory: 64 * MiB, ...anyKernel() }).kernel).toMatchObject({
      name: "5.17",
      hardened: true,
    });
    const vm = Vm.boot({
      memory: 64 * MiB,
      era: "pte-bit",
      swiotlbSlots: 1024,
      strategy: vtomPte,
    });
    expect(vm.kernel).toMatchObject({ name: "6.9", era: "pte-bit", hardened: true });
  });

  it("refuses an unknown kernel and an era that contradicts the kernel", () => {
    expect(() => Vm.boot({ memory: 64 * MiB, kernel: "4.19", ...anyKernel() })).toThrow(UnknownKernelError);
    expect(() => Vm.boot({ memory: 64 * MiB, kernel: "6.12", era: "address-bit", ...anyKernel() })).toThrow(
      /kernel 6.12 is a pte-bit kernel, not address-bit/,
    );
  });

  it("strategy (1) on 5.17 at default sizes still costs 9 + 1 visibility hypercalls and 147 + 10 GPADL messages", () => {
    const vm = boot("5.17", undefined, remap);
    const { nic, cost } = addNicMeasured(vm);
    expect(cost.ok).toBe(true);
    expect(cost.buffers.rx).toMatchObject({ pages: 4096, hypercalls: 9, gpadlMessages: 147 });
    expect(cost.buffers.tx).toMatchObject({ hypercalls: 1, gpadlMessages: 10 });
    vm.removeNic(nic!);
    expect(vm.audit()).toEqual({ violations: [], findings: [] });
  });
});

function anyKernel() {
  return {
    swiotlbSlots: 1024,
    strategy: sharedPool,
  };
}

describe("findings are not violations", () => {
  it("5.17 frees a ring it could not make private again (CVE-2024-36909): a finding, no I1/I8, the guest goes on", () => {
    const vm = Vm.boot({ memory: 64 * MiB, kernel: "5.17", swiotlbSlots: 1024, ...remap });
    // the ring GPADL's decryption at vmbus_open: 3 of its 8 pages change, then the hypervisor refuses
    vm.hyperv.hypervisor.faults.partialReps(1, 3);
    vm.hyperv.hypervisor.faults.failCall(2);
    expect(vm.addNic(SMALL).ok).toBe(false);
    expect(vm.findings.map((f) => f.id)).toContain("CVE-2024-36909");
    // kernel-exact: vmbus_free_ring really returned the half-shared ring to the allocator
    expect(vm.memory.buddy.freedWhileVisiblePages).toBe(3);
    expect(vm.audit().violations).toEqual([]);
    const again = vm.addNic(SMALL);
    if (!again.ok) throw again.error;
    vm.removeNic(again.nic);
    expect(vm.checkInvariants()).toEqual([]);
  });

  it("hardened, the same kernel keeps those pages out of the allocator instead", () => {
    const vm = Vm.boot({ memory: 64 * MiB, kernel: "5.17", hardened: true, swiotlbSlots: 1024, ...remap });
    vm.hyperv.hypervisor.faults.partialReps(1, 3);
    vm.hyperv.hypervisor.faults.failCall(2);
    expect(vm.addNic(SMALL).ok).toBe(false);
    expect(vm.findings.map((f) => f.id)).toContain("CVE-2024-36909");
    expect(vm.memory.buddy.freedWhileVisiblePages).toBe(0);
    expect(vm.memory.leakedPages).toBeGreaterThan(0);
    expect(vm.checkInvariants()).toEqual([]);
  });

  it("still reports a free host-visible page no kernel path freed (I1)", () => {
    const vm = Vm.boot({ memory: 64 * MiB, kernel: "5.17", swiotlbSlots: 1024, ...remap });
    const pfn = vm.memory.buddy.allocPages(0, { tag: "x" })!;
    vm.memory.buddy.freePages(pfn, 0);
    vm.memory.phys.setHostVisible(pfn, true);
    expect(vm.checkInvariants().map((v) => v.invariant)).toContain("I1");
  });
});

describe("named faults", () => {
  it("are a documented registry: each has a phase and a summary", () => {
    expect(FAULT_NAMES).toEqual(["decrypt-fail", "reencrypt-fail", "gpadl-msginfo-nomem"]);
    for (const name of FAULT_NAMES) expect(VM_FAULTS[name].summary.length).toBeGreaterThan(20);
  });

  it("reencrypt-fail on 5.17 with vmalloc-remap: the kernel frees what it could not re-encrypt — CVE findings, not violations", () => {
    const vm = boot("5.17", "reencrypt-fail", remap);
    const added = vm.addNic();
    if (!added.ok) throw added.error;
    const before = vm.hyperv.hypervisor.counters.pagesMadePrivate;
    vm.removeNic(added.nic);
    expect(vm.fault).toMatchObject({ name: "reencrypt-fail", fired: true });
    // the first batch (510 pages) of the receive buffer did go private again before the refusal
    expect(vm.hyperv.hypervisor.counters.pagesMadePrivate - before).toBeGreaterThanOrEqual(510);
    const ids = vm.findings.map((f) => f.id);
    expect(ids.some((id) => CVE_2024.test(id))).toBe(true);
    for (const f of vm.findings) expect(f.profile).toBe("5.17");
    // kernel-exact, free_netvsc_device vfree'd the half-shared buffer: nothing leaked, the pages back in
    // the allocator still host-visible — findings, not I1
    expect(vm.memory.leakedPages).toBe(0);
    expect(vm.memory.buddy.freedWhileVisiblePages).toBe(4096 - 510);
    expect(vm.hostVisibleOutsideSwiotlb()).toBe(4096 - 510);
    expect(vm.audit().violations).toEqual([]);
  });

  it("reencrypt-fail on 6.12 with vtom-pte: the fixed kernel leaks the pages (counted, never reused) and reports nothing", () => {
    const vm = boot("6.12", "reencrypt-fail", pte);
    const added = vm.addNic();
    if (!added.ok) throw added.error;
    const { leakedBuffers } = vm.removeNic(added.nic);
    expect(vm.fault).toMatchObject({ name: "reencrypt-fail", fired: true });
    expect(leakedBuffers).toBe(1);
    expect(vm.memory.leakedPages).toBeGreaterThan(0);
    expect(vm.audit()).toEqual({ violations: [], findings: [] });
  });

  it("decrypt-fail on 5.17: the failed add frees a half-shared buffer (CVE findings); on 6.18 it leaks it with no finding", () => {
    const old = boot("5.17", "decrypt-fail", remap);
    const a = old.addNic();
    expect(a.ok).toBe(false);
    expect(old.fault).toMatchObject({ name: "decrypt-fail", fired: true });
    expect(old.findings.map((f) => f.id).some((id) => CVE_2024.test(id))).toBe(true);
    expect(old.checkInvariants()).toEqual([]);

    const fixed = boot("6.18", "decrypt-fail", pte);
    expect(fixed.addNic().ok).toBe(false);
    expect(fixed.fault?.fired).toBe(true);
    expect(fixed.memory.leakedPages).toBeGreaterThan(0);
    expect(fixed.audit()).toEqual({ violations: [], findings: [] });
  });

  it("decrypt-fail on 6.12: no 2024 CVE, but the msginfo leak 6.18 fixed (510164539f16) is still there", () => {
    const vm = boot("6.12", "decrypt-fail", pte);
    expect(vm.addNic().ok).toBe(false);
    expect(vm.findings.map((f) => f.id)).toEqual(["510164539f16"]);
    expect(vm.checkInvariants()).toEqual([]);
  });

  it("gpadl-msginfo-nomem: the add fails with -ENOMEM, nothing is leaked and no kernel has a finding there", () => {
    for (const [kernel, s] of [
      ["5.17", remap],
      ["6.12", pte],
    ] as const) {
      const vm = boot(kernel, "gpadl-msginfo-nomem", s);
      const r = vm.addNic();
      expect(r.ok).toBe(false);
      expect(vm.fault).toMatchObject({ fired: true });
      expect(vm.memory.leakedPages).toBe(0);
      expect(vm.audit()).toEqual({ violations: [], findings: [] });
    }
  });

  it("says why a batch fault did not fire: a receive buffer of one batch has no second", () => {
    const vm = Vm.boot({
      memory: 64 * MiB,
      kernel: "5.17",
      fault: "decrypt-fail",
      swiotlbSlots: 1024,
      ...remap,
    });
    const added = vm.addNic(SMALL);
    if (!added.ok) throw added.error;
    expect(vm.fault).toMatchObject({ fired: false });
    expect(vm.fault?.detail).toMatch(/took 1 batch\(es\).*batch 2 never came/);
    expect(vm.findings).toEqual([]);
  });
});
