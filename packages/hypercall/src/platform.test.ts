import { FindingLog, getProfile } from "@ivm/kernel";
import { describe, expect, it } from "vitest";
import { bootPlatform } from "./platform.js";

describe("bootPlatform: the first step of every boot", () => {
  it("reads vTOM from the CPUID the host advertises and builds memory in the era's mode", () => {
    const p = bootPlatform({ bytes: 64 * 2 ** 20, era: "pte-bit" });
    expect(p.isolation.sharedGpaBoundary).toBe(2 ** 46);
    expect(p.memory.isolated).toBe(true);
    expect(p.memory.vtomMode).toBe("pte-bit");
    expect(p.hyperv.isolation).toBe(p.isolation);
    // the layer works over the memory it was booted with
    const va = p.memory.vmalloc.vzalloc(4096, { tag: "t" })!;
    p.hyperv.setMemory.decrypted(va, 1);
    expect(p.hyperv.hypervisor.counters.pagesMadeVisible).toBe(1);
  });

  it("boots a VM without isolation, address-bit by default, running the given kernel", () => {
    const findings = new FindingLog();
    const profile = getProfile("6.1");
    const p = bootPlatform({ bytes: 16 * 2 ** 20, isolation: "none", kernel: { profile, findings } });
    expect(p.memory.isolated).toBe(false);
    expect(p.memory.vtomMode).toBe("address-bit");
    expect(p.hyperv.profile).toBe(profile);
    expect(p.hyperv.findings).toBe(findings);
  });
});
