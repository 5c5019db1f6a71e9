import { FindingLog, getProfile, type KernelProfile, PROFILE_NAMES, withHardened } from "@ivm/kernel";
import { GuestMemory, PAGE_SIZE, PageFlag, Pte, pteFlags, pteFrame } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { HypercallError } from "./errors.js";
import { REP_COUNT_FINDING, REP_SPIN_LIMIT } from "./guest-hypercall.js";
import { createHyperv, type HypervLayer } from "./hyperv.js";
import { cpuidFor, isolationFromCpuid } from "./isolation.js";
import { hvMapMemory } from "./ivm-map.js";

const MiB = 2 ** 20;
const profiles = PROFILE_NAMES.map((name) => getProfile(name));

function boot(
  profile: KernelProfile,
  bytes = 64 * MiB,
): { mem: GuestMemory; hv: HypervLayer; findings: FindingLog } {
  const isolation = isolationFromCpuid(cpuidFor({ type: "snp" }));
  const mem = new GuestMemory({
    bytes,
    sharedGpaBoundary: isolation.sharedGpaBoundary,
    vtomMode: profile.era,
  });
  const findings = new FindingLog();
  return { mem, hv: createHyperv(mem, isolation, { profile, findings }), findings };
}

function codeOf(f: () => void): string {
  try {
    f();
  } catch (e) {
    if (e instanceof HypercallError) return e.code;
    throw e;
  }
  return "ok";
}

describe.each(profiles)("kernel $name: hypercall layer", (profile) => {
  const h = profile.hypercall;

  it(`era ${h.era.value} (${h.era.commit}): boots on memory of that era only`, () => {
    const { hv } = boot(profile);
    expect(hv.profile).toBe(profile);
    const isolation = isolationFromCpuid(cpuidFor({ type: "snp" }));
    const other = new GuestMemory({
      bytes: 64 * MiB,
      sharedGpaBoundary: isolation.sharedGpaBoundary,
      vtomMode: profile.era === "pte-bit" ? "address-bit" : "pte-bit",
    });
    expect(() => createHyperv(other, isolation, { profile })).toThrowError(/kernel/);
  });

  it(`conversion ${h.conversion.value} (${h.conversion.commit}): the PTEs as the hypervisor sees them`, () => {
    const { mem, hv } = boot(profile);
    const buf = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    const pfn = mem.virtToPfn(buf);
    const during: { present: boolean; shared: boolean }[] = [];
    hv.hypervisor.onHypercall(() => {
      const pte = mem.pageTables.get(buf);
      during.push({ present: (pteFlags(pte) & Pte.Present) !== 0, shared: pteFrame(pte) !== pfn });
    });
    hv.setMemory.decrypted(buf, 2);
    const after = mem.pageTables.get(buf);
    const expected = {
      "hypercall-only": { during: { present: true, shared: false }, afterShared: false },
      "tlb-flush": { during: { present: true, shared: true }, afterShared: true },
      "clear-present": { during: { present: false, shared: true }, afterShared: true },
    }[h.conversion.value];
    expect(during).toEqual([expected.during]);
    expect(pteFlags(after) & Pte.Present).toBe(Pte.Present);
    expect(pteFrame(after) !== pfn).toBe(expected.afterShared);
    expect(mem.phys.hasFlag(pfn, PageFlag.HostVisible)).toBe(true);
  });

  it(`errors ${h.conversionErrors.value} (${h.conversionErrors.commit}): a failed hypercall and a failed PFN array`, () => {
    const failed = boot(profile);
    const buf = failed.mem.vmalloc.vzalloc(4 * PAGE_SIZE, { tag: "buf" })!;
    failed.hv.hypervisor.faults.failCall(1);
    const onHypercall = codeOf(() => failed.hv.setMemory.decrypted(buf, 4));
    // hv_set_mem_host_visibility's kmalloc of the PFN page is the next kmalloc call
    const noMem = boot(profile);
    const buf2 = noMem.mem.vmalloc.vzalloc(4 * PAGE_SIZE, { tag: "buf" })!;
    noMem.mem.faults.failCall("kmalloc", 1);
    const onArray = codeOf(() => noMem.hv.setMemory.decrypted(buf2, 4));
    const expected = {
      wrapper: ["EFAULT", "ENOMEM"],
      eio: ["EIO", "EIO"],
      callback: ["EFAULT", "ENOMEM"],
    }[h.conversionErrors.value];
    expect([onHypercall, onArray]).toEqual(expected);
    if (h.conversionErrors.value === "eio") {
      // the -EIO keeps the hypercall's own error (and its reason) as its cause
      const again = boot(profile);
      const b3 = again.mem.vmalloc.vzalloc(4 * PAGE_SIZE, { tag: "buf" })!;
      again.hv.hypervisor.faults.failCall(1);
      let thrown: unknown;
      try {
        again.hv.setMemory.decrypted(b3, 4);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(HypercallError);
      const cause = (thrown as HypercallError).cause as HypercallError;
      expect(cause).toBeInstanceOf(HypercallError);
      expect([cause.code, (thrown as HypercallError).reason]).toEqual(["EFAULT", cause.reason]);
    }
    // the pte-bit kernels WARN "CPA VMM failure"; the address-bit wrapper returns quietly
    expect(failed.hv.setMemory.counters.vmmFailures).toBe(profile.era === "pte-bit" ? 1 : 0);
    // no rollback: the PTEs keep the shared bit, and a clear-present kernel makes them present again
    const pte = failed.mem.pageTables.get(buf);
    expect(pteFlags(pte) & Pte.Present).toBe(Pte.Present);
    expect(pteFrame(pte) !== failed.mem.virtToPfn(buf)).toBe(profile.era === "pte-bit");
  });

  it(`rep count ${h.repCount.value} (${h.repCount.commit}): kernel-exact runs the kernel's loop and reports it`, () => {
    // more than requested: the loop ends as a success, and that is a finding
    const over = boot(profile);
    const a = over.mem.vmalloc.vzalloc(10 * PAGE_SIZE, { tag: "buf" })!;
    over.hv.hypervisor.faults.impossibleCount(1, "too-many");
    over.hv.setMemory.decrypted(a, 10);
    expect(over.findings.count(REP_COUNT_FINDING)).toBe(1);
    expect(over.findings.list()[0]).toMatchObject({ profile: profile.name, invariant: "hypervisor-trust" });

    // one answer without progress: the kernel re-issues the call and goes on; nothing to report
    const once = boot(profile);
    const b = once.mem.vmalloc.vzalloc(10 * PAGE_SIZE, { tag: "buf" })!;
    once.hv.hypervisor.faults.impossibleCount(1, "no-progress");
    once.hv.setMemory.decrypted(b, 10);
    expect(once.hv.hypervisor.counters.hypercalls).toBe(2);
    expect(once.findings.count()).toBe(0);

    // never any progress: the kernel spins; the model stops after REP_SPIN_LIMIT answers and reports it
    const spin = boot(profile);
    const c = spin.mem.vmalloc.vzalloc(10 * PAGE_SIZE, { tag: "buf" })!;
    spin.hv.hypervisor.faults.stall(1);
    expect(codeOf(() => spin.hv.setMemory.decrypted(c, 10))).toBe(
      profile.era === "pte-bit" && h.conversionErrors.value === "eio" ? "EIO" : "EDEADLK",
    );
    expect(spin.hv.hypervisor.counters.hypercalls).toBe(REP_SPIN_LIMIT);
    expect(spin.findings.count(REP_COUNT_FINDING)).toBe(1);
    expect(spin.hv.hypercalls.untrustedAnswers).toBe(0);
  });

  it("rep count, hardened: both impossible answers are typed EPROTO errors, no findings", () => {
    for (const kind of ["too-many", "no-progress"] as const) {
      const { mem, hv, findings } = boot(withHardened(profile));
      const buf = mem.vmalloc.vzalloc(10 * PAGE_SIZE, { tag: "buf" })!;
      hv.hypervisor.faults.impossibleCount(1, kind);
      expect(() => hv.setMemory.decrypted(buf, 10)).toThrowError(/EPROTO/);
      expect(hv.hypercalls.untrustedAnswers).toBe(1);
      expect(findings.count()).toBe(0);
    }
  });

  it(`hv_map_memory ${h.mapMemoryPgprot.value} (${h.mapMemoryPgprot.commit})`, () => {
    const { mem } = boot(profile);
    const buf = mem.vmalloc.vzalloc(4 * PAGE_SIZE, { tag: "buf" })!;
    if (h.mapMemoryPgprot.value === "none") {
      expect(() => hvMapMemory(mem, buf, 4 * PAGE_SIZE, "alias", profile)).toThrowError(/no hv_map_memory/);
      return;
    }
    // vmap_pfn with PAGE_KERNEL_IO: present, writable special PTEs whose frames carry the vTOM bit
    const alias = hvMapMemory(mem, buf, 4 * PAGE_SIZE, "alias", profile)!;
    for (let i = 0; i < 4; i++) {
      const pte = mem.pageTables.get(alias + i * PAGE_SIZE);
      expect(pteFlags(pte)).toBe(Pte.Present | Pte.Rw | Pte.Special);
      expect(pteFrame(pte)).toBe(mem.virtToPfn(buf + i * PAGE_SIZE) + mem.vtomPfn);
    }
  });
});

describe("default profile", () => {
  it("is the memory's era's representative kernel, hardened", () => {
    const isolation = isolationFromCpuid(cpuidFor({ type: "snp" }));
    for (const era of ["address-bit", "pte-bit"] as const) {
      const mem = new GuestMemory({
        bytes: 64 * MiB,
        sharedGpaBoundary: isolation.sharedGpaBoundary,
        vtomMode: era,
      });
      const hv = createHyperv(mem, isolation);
      expect(hv.profile.era).toBe(era);
      expect(hv.profile.hardened).toBe(true);
      expect(hv.profile.name).toBe(era === "address-bit" ? "5.17" : "6.9");
    }
  });
});
