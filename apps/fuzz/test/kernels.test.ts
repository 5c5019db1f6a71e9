import { describe, expect, it } from "vitest";
import { main } from "../src/program.js";
import { runSession } from "../src/session.js";
import type { FuzzSummary } from "../src/summary.js";
import { FUZZ_CPUS } from "../src/world.js";

async function fuzz(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t), progress: false });
  return { code, out, err };
}

const small = ["-n", "300", "--session-length", "30", "--workers", "1", "--seed", "3", "--json"];
const CVE_2024 = /^CVE-2024-369(09|11|12|13)$/;

describe("ivm-fuzz --kernel", () => {
  it("on 5.17 rediscovers the pre-fix findings by itself and reports them by id; findings never fail the run", async () => {
    const r = await fuzz("--kernel", "5.17", ...small);
    const s = JSON.parse(r.out) as FuzzSummary;
    expect(s.config.kernel).toBe("5.17");
    expect(s.targets.every((t) => t.endsWith("/5.17"))).toBe(true);
    expect(s.targets).not.toContain("vtom-pte/5.17"); // written for 6.4 on
    const ids = Object.keys(s.findings);
    expect(ids.some((id) => CVE_2024.test(id))).toBe(true);
    for (const t of Object.values(s.findings)) {
      expect(t.count).toBeGreaterThanOrEqual(t.sessions);
      expect(t.sessions).toBeGreaterThan(0);
    }
    expect(s.violations).toBe(0);
    expect(r.code).toBe(0);
  }, 120_000);

  it("--exact runs the kernel's own logic for host values no kernel checks: findings, still no violation", async () => {
    const r = await fuzz("--kernel", "6.12", "--exact", "--strategy", "vtom-pte", ...small);
    const s = JSON.parse(r.out) as FuzzSummary;
    expect(s.config).toMatchObject({ kernel: "6.12", exact: true });
    expect(s.violations).toBe(0);
    expect(r.code).toBe(0);
  }, 120_000);

  it("on 6.12 the same campaign reports no 2024 finding and no violation", async () => {
    const r = await fuzz("--kernel", "6.12", ...small);
    const s = JSON.parse(r.out) as FuzzSummary;
    expect(s.targets).toEqual(["vtom-pte/6.12", "shared-pool/6.12"]);
    expect(Object.keys(s.findings).filter((id) => CVE_2024.test(id))).toEqual([]);
    expect(s.violations).toBe(0);
    expect(r.code).toBe(0);
  }, 120_000);

  it("a refused re-encryption of the receive buffer at remove: findings on 5.17, a counted leak and none on 6.9", () => {
    // on a Windows 10+ host netvsc closes the channels (each ring's re-encryption: the sub-channels'
    // first, then the primary's, hypercalls 1..FUZZ_CPUS) before it tears the receive buffer's GPADL
    // down (hypercall FUZZ_CPUS + 1)
    const input = {
      memoryMiB: 64,
      rxSections: 12,
      txSections: 3,
      ringPages: 4,
      actions: [{ k: "remove-fault" as const, nth: FUZZ_CPUS + 1 }],
    };
    const old = runSession({ ...input, strategy: "vmalloc-remap", era: "address-bit", kernel: "5.17" });
    expect(old.violations).toEqual([]);
    expect(old.tally.get("finding:CVE-2024-36912")).toBe(1); // vmbus_gpadl has no decrypted flag
    expect(old.tally.get("finding:CVE-2024-36911")).toBe(1); // free_netvsc_device frees the buffer
    const fixed = runSession({ ...input, strategy: "vtom-pte", era: "pte-bit", kernel: "6.9" });
    expect(fixed.violations).toEqual([]);
    expect([...fixed.tally.keys()].filter((k) => k.startsWith("finding"))).toEqual([]);
    expect(fixed.tally.get("memory:leaked-pages")).toBeGreaterThan(0);
  });

  it("checks --kernel and --fault before anything runs (one line, exit 2)", async () => {
    for (const [argv, message] of [
      [["--kernel", "5.4"], /unknown kernel "5.4"; choose 5.17, 6.1/],
      [["--kernel", "6.12", "--strategy", "vmalloc-remap"], /vmalloc-remap was written for Linux 5.17–6.3/],
      [["--kernel", "6.12", "--era", "address-bit"], /kernel 6.12 runs in the pte-bit era, not address-bit/],
      [["--fault", "meltdown"], /unknown fault "meltdown"; choose decrypt-fail/],
      [["--exact"], /--exact needs --kernel/],
    ] as const) {
      const r = await fuzz(...argv);
      expect(r.code).toBe(2);
      expect(r.out).toBe("");
      expect(r.err).toMatch(message);
      expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    }
  });
});
