import { describe, expect, it } from "vitest";
import { compareTable } from "../src/compare.js";
import { historyCases, historyTable } from "../src/history.js";
import type { ResultRecord } from "../src/records.js";
import { toMarkdown } from "../src/render.js";
import { run } from "./helpers.js";

const quick = ["--json", "--no-out", "--jobs", "1", "--packets", "50", "--memory", "512MiB"];
const records = (out: string): ResultRecord[] => (JSON.parse(out) as { records: ResultRecord[] }).records;

describe("ivm-bench compare --kernel", () => {
  it("measures the same strategy across kernels, each record keyed by its kernel and fault", async () => {
    const { code, out } = await run(
      "compare",
      "--strategy",
      "vtom-pte",
      "vmalloc-remap",
      "--kernel",
      "5.17",
      "6.12",
      "--fault",
      "reencrypt-fail",
      ...quick,
    );
    expect(code).toBe(0);
    const rs = records(out);
    // each strategy only on the kernels it was written for, in catalog then kernel order
    expect(rs.map((r) => `${r.key.strategy}/${r.key.kernel}/${r.key.era}`)).toEqual([
      "vmalloc-remap/5.17/address-bit",
      "vtom-pte/6.12/pte-bit",
    ]);
    const [old, fixed] = rs;
    expect(old!.key.fault).toBe("reencrypt-fail");
    expect(old!.metrics["fault.fired"]).toBe(true);
    expect(String(old!.metrics["findings.ids"])).toMatch(/CVE-2024-369/);
    expect(fixed!.metrics.findings).toBe(0);
    expect(fixed!.metrics["remove.leakedPages"]).toBeGreaterThan(0);
    // the add costs do not depend on the fault
    expect([old!.metrics["rx.hypercalls"], old!.metrics["tx.hypercalls"]]).toEqual([9, 1]);
    expect([old!.metrics["rx.gpadlMessages"], old!.metrics["tx.gpadlMessages"]]).toEqual([147, 10]);
    const md = toMarkdown(compareTable(rs));
    expect(md).toContain("| (1) vmalloc-remap | 5.17 (address-bit) |");
    expect(md).toMatch(/\| findings \|\n/);
  }, 60_000);

  it("keeps records of the era shorthand keyed as before (no kernel, no findings column)", async () => {
    const { out } = await run("compare", "--strategy", "vtom-pte", ...quick);
    const [r] = records(out);
    expect(r!.key).not.toHaveProperty("kernel");
    expect(compareTable([r!]).head).not.toContain("findings");
  });

  it("refuses an unknown kernel, or a kernel no selected strategy was written for (exit 2, one line)", async () => {
    for (const [argv, message] of [
      [["--kernel", "3.10"], /unknown kernel "3\.10"/],
      [
        ["--kernel", "6.12", "--strategy", "page-blocks"],
        /page-blocks was written for Linux 5\.17 only .*not 6\.12/,
      ],
      [["--kernel", "6.12", "--era", "address-bit"], /kernel 6\.12 runs in the pte-bit era, not address-bit/],
      [["--fault", "nope"], /unknown fault "nope"/],
    ] as const) {
      const r = await run("compare", ...argv, "--no-out");
      expect(r.code).toBe(2);
      expect(r.out).toBe("");
      expect(r.err).toMatch(message);
      expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    }
  });
});

describe("ivm-bench history", () => {
  it("is approach (1) on 5.17 beside approach (5) on 6.4 on, each clean and with reencrypt-fail", () => {
    const cases = historyCases({ memory: 2 ** 31, seed: 1, packets: 10 });
    expect(cases.map((c) => `${c.strategy}/${c.kernel}/${c.fault ?? "clean"}`)).toEqual([
      "vmalloc-remap/5.17/clean",
      "vmalloc-remap/5.17/reencrypt-fail",
      ...["6.4", "6.6", "6.9", "6.12", "6.18"].flatMap((k) => [
        `vtom-pte/${k}/clean`,
        `vtom-pte/${k}/reencrypt-fail`,
      ]),
    ]);
  });

  it("shows on 5.17 the findings the fixed kernels do not have", async () => {
    const { code, out } = await run(
      "history",
      "--json",
      "--no-out",
      "--jobs",
      "1",
      "--packets",
      "20",
      "--memory",
      "512MiB",
    );
    expect(code).toBe(0);
    const table = historyTable(records(out));
    const row = (kernel: string) => table.rows.find((r) => String(r[1]).startsWith(`${kernel} `))!;
    expect(row("5.17")[0]).toBe("(1) vmalloc-remap");
    expect(row("5.17")[10]).toMatch(/CVE-2024-36911 CVE-2024-36912/);
    expect(row("6.4")[10]).toMatch(/CVE-2024-36911/); // 6.4–6.8 predate the 2024 fixes
    for (const k of ["6.9", "6.12", "6.18"]) {
      expect(row(k)[10]).toBe("0");
      expect(Number(String(row(k)[8]).replace(/,/g, ""))).toBeGreaterThan(0); // leaked, counted, never reused
    }
    expect(row("5.17")[6]).toBe("9 + 1");
    expect(row("5.17")[7]).toBe("147 + 10");
  }, 120_000);
});
