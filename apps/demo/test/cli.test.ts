import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { STRATEGIES } from "@ivm/catalog";
import { outputColumns } from "@ivm/catalog/cli";
import { describe, expect, it } from "vitest";
import pkg from "../package.json" with { type: "json" };
import { main } from "../src/cli.js";
import { type DemoDocument, plan, runOne } from "../src/run.js";
import { parseSize } from "../src/size.js";
import { comparisonTable, transposedTables } from "../src/table.js";

const VERSION = pkg.version;

/** Runs the demo in-process as if stdout were a pipe `columns` wide (ASCII borders, no progress). */
function demo(argv: string[], columns = 100): { code: number; out: string; err: string } {
  let out = "";
  let err = "";
  const code = main(argv, {
    out: (t) => (out += t),
    err: (t) => (err += t),
    columns,
    ascii: true,
    progress: false,
  });
  return { code, out, err };
}

const small = ["--memory", "256MiB", "--packets", "40", "--uptime", "none", "--no-report"];
const widest = (text: string): number =>
  Math.max(
    ...text
      .trimEnd()
      .split("\n")
      .map((l) => l.length),
  );

describe("ivm-demo arguments", () => {
  it("parses sizes with units", () => {
    expect(parseSize("512MiB")).toBe(512 * 2 ** 20);
    expect(parseSize("8GiB")).toBe(8 * 2 ** 30);
    expect(parseSize("2G")).toBe(2 * 2 ** 30);
    expect(() => parseSize("lots")).toThrow(/not a size/);
    expect(() => parseSize("1MiB")).toThrow(/at least/);
  });

  it("exits with 2 and one line on stderr, before running anything, on any bad argument or report path", () => {
    const dir = mkdtempSync(join(tmpdir(), "ivm-demo-"));
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    for (const [argv, message] of [
      [["--bogus"], /unknown option '--bogus'/],
      [["--strategy", "nope"], /unknown strategy; choose all or vmalloc-remap/],
      [["--era", "6.4"], /Allowed choices are address-bit, pte-bit/],
      [["--memory", "huge"], /not a size/],
      [["--packets", "-3"], /expected an integer from 0/],
      [["--seed", "1.5"], /expected an integer/],
      [["--isolation", "maybe"], /expected "on" or "off"/],
      [["--report", dir], /cannot write .*: is a directory/],
      [["--report", join(file, "report.html")], /cannot write .*is a file/],
    ] as const) {
      const r = demo([...argv]);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.trimEnd().split("\n"), argv.join(" ")).toHaveLength(1);
      expect(r.err).toMatch(message);
    }
  });

  it("prints its package's version with --version, and exit codes and examples with --help", () => {
    const v = demo(["--version"]);
    expect(v).toEqual({ code: 0, out: `${VERSION}\n`, err: "" });
    const help = demo(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("Examples:");
    expect(help.out).toMatch(/Exit codes:\n {2}0 .*\n {2}2 {2}a bad argument/);
    expect(help.out).toContain('{ "tool": "ivm-demo", "version"');
  });

  it("sizes output to the terminal, to COLUMNS in a pipe, else to 100 columns", () => {
    expect(outputColumns({ isTTY: true, columns: 132 }, { COLUMNS: "80" })).toBe(132);
    expect(outputColumns({ isTTY: false }, { COLUMNS: "80" })).toBe(80);
    expect(outputColumns({ isTTY: false }, {})).toBe(100);
    expect(outputColumns({}, { COLUMNS: "wide" })).toBe(100);
  });
});

describe("ivm-demo output", () => {
  it("fits 80 columns with every strategy (stacked tables, one column per strategy and era)", () => {
    const r = demo(small, 80);
    expect(r.code).toBe(0);
    expect(r.err).toBe(""); // no progress lines when stderr is not a terminal
    expect(widest(r.out)).toBeLessThanOrEqual(80);
    expect(r.out).toMatch(/^[ -~\n]*$/); // ASCII only into a pipe: one byte per column
    for (const s of STRATEGIES) expect(r.out).toContain(s.name);
    expect(r.out).toContain("| GPADL msgs rx+tx | 147 + 10");
  }, 60_000);

  it("prints one JSON document, and its results fit 100 columns or the --wide table", () => {
    const r = demo([...small, "--json", "--strategy", "vmalloc-remap,vtom-pte", "--rx-sections", "500"]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out) as DemoDocument;
    expect(Object.keys(doc)).toEqual(["tool", "version", "config", "kernel", "strategies", "findings"]);
    expect(doc.kernel).toBeNull(); // each strategy on its own era's kernel, named in each result
    expect(doc.strategies.map((s) => s.kernel)).toEqual(["5.17", "6.9"]);
    expect(doc.findings).toEqual([]);
    expect(doc.tool).toBe("ivm-demo");
    expect(doc.version).toBe(VERSION);
    expect(doc.config).toEqual({
      strategies: ["vmalloc-remap", "vtom-pte"],
      era: "each",
      memory: 256 * 2 ** 20,
      rxSections: 500,
      txSections: 170,
      uptime: "none",
      packets: 40,
      seed: 1,
      isolation: true,
      fault: null,
      cpus: 8,
    });
    expect(doc.strategies.map((s) => `${s.strategy}/${s.era}`)).toEqual([
      "vmalloc-remap/address-bit",
      "vtom-pte/pte-bit",
    ]);
    expect(doc.strategies[0]!.buffers.rx?.sections).toBe(500);
    const many = [...doc.strategies, ...doc.strategies, ...doc.strategies];
    const table = transposedTables(many, 100, { ascii: true });
    expect(widest(table)).toBeLessThanOrEqual(100);
    expect(widest(transposedTables(many, 100, { ascii: true }))).toBeGreaterThan(80); // uses the room
    expect(widest(comparisonTable(many, { ascii: true }))).toBeGreaterThan(150);
  }, 60_000);
});

describe("one demo run", () => {
  const options = {
    strategies: STRATEGIES,
    era: "each" as const,
    memory: 256 * 2 ** 20,
    uptime: "none" as const,
    packets: 200,
    seed: 3,
    isolation: true,
    picture: false,
  };

  it("plans each strategy in each era it supports unless an era is forced", () => {
    expect(plan(options).map((p) => `${p.entry.name}/${p.era}`)).toContain("shared-pool/pte-bit");
    expect(plan({ ...options, era: "pte-bit" })).toHaveLength(STRATEGIES.length);
  });

  it("reports a strategy that cannot run in the chosen era instead of crashing", () => {
    const r = runOne(STRATEGIES.find((s) => s.name === "vmalloc-remap")!, "pte-bit", options).result;
    expect(r.ran).toBe(false);
    expect(r.skipReason).toMatch(/address-bit era/);
  });

  it("produces the documented JSON fields with the fact sheet's numbers for strategy (1)", () => {
    const r = runOne(STRATEGIES.find((s) => s.name === "vmalloc-remap")!, "address-bit", options).result;
    expect(r).toMatchObject({
      strategy: "vmalloc-remap",
      era: "address-bit",
      ran: true,
      buffers: {
        rx: { sections: 9709, pages: 4096, hypercalls: 9, gpadlMessages: 147, liveMappings: 2 },
        tx: { sections: 170, pages: 255, hypercalls: 1, gpadlMessages: 10, liveMappings: 2 },
      },
      hostVisiblePagesAfterRemove: 0,
      leakedPages: 0,
      faults: 0,
    });
    expect(r.packets.verified).toBe(200);
    expect(r.swiotlb).toMatchObject({ slots: 32768, pages: 16384, bootHypercalls: 33 });
    expect(r.pagesByOrder[0]).toBe(4096 + 255);
  });
});

describe("ivm-demo --kernel and --fault", () => {
  const json = (argv: string[]): DemoDocument => {
    const r = demo([...small, "--json", ...argv]);
    expect(r.code).toBe(0);
    return JSON.parse(r.out) as DemoDocument;
  };

  it("5.17, vmalloc-remap, reencrypt-fail: the document names the kernel and lists a CVE-2024-369xx finding", () => {
    const doc = json(["--kernel", "5.17", "--strategy", "vmalloc-remap", "--fault", "reencrypt-fail"]);
    expect(doc.kernel).toEqual({ name: "5.17", era: "address-bit", hardened: false });
    expect(doc.config).toMatchObject({ era: "address-bit", fault: "reencrypt-fail" });
    const [run] = doc.strategies;
    expect(run).toMatchObject({ kernel: "5.17", ran: true, fault: { name: "reencrypt-fail", fired: true } });
    expect(doc.findings.length).toBe(run!.findingCount);
    expect(doc.findings.some((f) => /^CVE-2024-369(09|11|12|13)$/.test(f.id))).toBe(true);
    for (const f of doc.findings) {
      expect(Object.keys(f).sort()).toEqual([
        "era",
        "id",
        "invariant",
        "profile",
        "strategy",
        "what",
        "where",
      ]);
      expect(f).toMatchObject({ profile: "5.17", strategy: "vmalloc-remap" });
    }
  }, 60_000);

  it("6.12, vtom-pte, reencrypt-fail: no finding, and the pages it could not re-encrypt are leaked", () => {
    const doc = json(["--kernel", "6.12", "--strategy", "vtom-pte", "--fault", "reencrypt-fail"]);
    expect(doc.kernel).toEqual({ name: "6.12", era: "pte-bit", hardened: false });
    expect(doc.findings).toEqual([]);
    expect(doc.strategies[0]!.leakedPages).toBeGreaterThan(0);
    expect(doc.strategies[0]!.fault?.fired).toBe(true);
  }, 60_000);

  it("says in one line why a strategy does not run on the kernel, and shows findings under the table", () => {
    const skip = demo([...small, "--kernel", "6.12", "--strategy", "vmalloc-remap"]);
    expect(skip.code).toBe(0);
    expect(skip.out).toMatch(
      /vmalloc-remap, pte-bit: not run: vmalloc-remap was written for Linux 5\.17–6\.3/,
    );
    const found = demo([
      ...small,
      "--kernel",
      "5.17",
      "--strategy",
      "vmalloc-remap",
      "--fault",
      "reencrypt-fail",
    ]);
    expect(found.out).toContain("Linux 5.17 (address-bit)");
    expect(found.out).toMatch(
      /Findings \(what the booted kernel would do; not failures of the model\):\n- CVE-2024-369/,
    );
    expect(found.out).toMatch(/\| findings +\| [1-9]/);
  }, 60_000);

  it("checks --kernel, --fault and --hardened before anything runs (exit 2, one line)", () => {
    for (const [argv, message] of [
      [["--kernel", "9.9"], /unknown kernel "9\.9"; choose 5\.17, 6\.1, 6\.1\.91/],
      [["--fault", "cosmic-ray"], /unknown fault "cosmic-ray"; choose decrypt-fail, reencrypt-fail/],
      [["--kernel", "5.17", "--era", "pte-bit"], /kernel 5\.17 runs in the address-bit era; drop --era/],
      [["--hardened"], /--hardened needs --kernel/],
    ] as const) {
      const r = demo([...argv]);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.trimEnd().split("\n")).toHaveLength(1);
      expect(r.err).toMatch(message);
    }
  });
});

describe("ivm-demo --cpus and --queues (multi-queue netvsc)", () => {
  it("--queues 8 --cpus 8: 8 channels, each with its ring block and GPADL messages, traffic verified on each", () => {
    const r = demo([
      ...small,
      "--packets",
      "2000",
      "--json",
      "--queues",
      "8",
      "--cpus",
      "8",
      "--strategy",
      "vmalloc-remap",
    ]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out) as DemoDocument;
    expect(doc.config).toMatchObject({ cpus: 8, queues: 8 });
    const run = doc.strategies[0]!;
    expect(run.channels.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const c of run.channels) {
      expect(c).toMatchObject({
        ringPages: 258,
        ringBlockPages: 512,
        ringGpadlMessages: 10,
        trafficVerified: true,
      });
      expect(c.txFrames).toBeGreaterThan(0);
      expect(c.rxFrames).toBeGreaterThan(0);
    }
    expect(run.nic).toEqual({
      channels: 8,
      ringPages: 8 * 512,
      bufferPages: 4096 + 255,
      pages: 8 * 512 + 4096 + 255,
      ringGpadlMessages: 80,
    });
    expect(run.packets.verified).toBe(2000);
    expect(run.hostVisiblePagesAfterRemove).toBe(0);
    expect(run.leakedPages).toBe(0);
  }, 60_000);

  it("by default the guest has 8 vCPUs and the compared NIC is the kernel's multi-queue one", () => {
    const r = demo([...small, "--packets", "800", "--json", "--strategy", "vmalloc-remap,vtom-pte"]);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out) as DemoDocument;
    expect(doc.config.cpus).toBe(8);
    expect(doc.config.queues).toBeUndefined();
    // Both era kernels (5.17: min(8, cpus); 6.9: the same rule) open one channel per vCPU here.
    for (const run of doc.strategies) {
      expect(run.channels, run.strategy).toHaveLength(8);
      expect(run.channels.every((c) => c.trafficVerified && c.txFrames > 0)).toBe(true);
      const ringPages = run.channels.reduce((n, c) => n + c.ringBlockPages, 0);
      const bufferPages = (run.buffers.rx?.pages ?? 0) + (run.buffers.tx?.pages ?? 0);
      expect(run.nic).toMatchObject({ channels: 8, ringPages, bufferPages, pages: ringPages + bufferPages });
      expect(run.hostVisiblePagesAfterRemove).toBe(0);
    }
    const table = demo([...small, "--strategy", "vmalloc-remap"]);
    expect(table.out).toContain("8 vCPUs;");
    expect(table.out).toMatch(/\| channels +\| 8 /);
  }, 60_000);

  it("--cpus 1: the single-channel NIC, and the table shows channels and NIC pages", () => {
    const r = demo([...small, "--strategy", "vmalloc-remap", "--cpus", "1"]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("1 vCPU;");
    expect(r.out).toMatch(/\| channels +\| 1 /);
    expect(r.out).toMatch(/\| NIC pages r\+b +\| 512 \+ 4351 /);
    const doc = JSON.parse(
      demo([...small, "--json", "--strategy", "vmalloc-remap", "--cpus", "1"]).out,
    ) as DemoDocument;
    expect(doc.strategies[0]!.channels).toHaveLength(1);
    expect(doc.strategies[0]!.nic.pages).toBe(
      doc.strategies[0]!.nic.ringPages + doc.strategies[0]!.nic.bufferPages,
    );
  }, 60_000);

  it("refuses bad counts before anything runs (exit 2, one line)", () => {
    for (const [argv, message] of [
      [["--cpus", "0"], /expected an integer from 1/],
      [["--cpus", "65"], /expected an integer from 1 to 64/],
      [["--queues", "two"], /expected an integer/],
      [["--queues", "9"], /--queues 9 is more than the guest's 8 CPUs/],
      [["--queues", "2", "--cpus", "1"], /--queues 2 is more than the guest's 1 CPU /],
      [["--queues", "4", "--cpus", "3"], /--queues 4 is more than the guest's 3 CPUs/],
    ] as const) {
      const r = demo([...small, ...argv]);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.trimEnd().split("\n"), argv.join(" ")).toHaveLength(1);
      expect(r.err).toMatch(message);
    }
  });
});
