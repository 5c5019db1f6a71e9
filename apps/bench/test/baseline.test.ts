import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { compareWithBaseline } from "../src/baseline.js";
import type { ResultRecord } from "../src/records.js";
import { run } from "./helpers.js";

const run0 = { at: "2026-01-01T00:00:00.000Z", node: "v20.19.0", cpus: 2 };
const speed = (c: string, x: number, extra = 0): ResultRecord => ({
  bench: "speed",
  key: { case: c, strategy: "vmalloc-remap" },
  metrics: { xMemcpy: x, packetsPerSecond: 1000 + extra },
  timing: { xMemcpy: "lower" },
  run: run0,
});
const count = (hypercalls: number): ResultRecord => ({
  bench: "compare",
  key: { strategy: "vmalloc-remap", era: "address-bit", seed: 1 },
  metrics: { "rx.hypercalls": hypercalls, "rx.pagesByOrder": [4096, 0] },
  run: run0,
});

describe("--baseline", () => {
  it("flags a timing ratio worse than the threshold, in its better direction", () => {
    const base = [speed("a", 100), speed("b", 100), speed("c", 100)];
    const now = [speed("a", 109, 500), speed("b", 125), speed("c", 70)];
    const report = compareWithBaseline(now, base, 0.1);
    expect(report.differences.map((d) => [d.key.includes("case=b"), d.verdict])).toEqual([
      [true, "regression"],
      [false, "improvement"],
    ]);
    expect(report.failures).toBe(1);
    // absolute rates (machine-dependent) are not compared: only the metrics `timing` lists
    expect(report.differences.some((d) => d.metric === "packetsPerSecond")).toBe(false);
  });

  it("reports any change of a count, and keys missing on either side", () => {
    const report = compareWithBaseline([count(10)], [count(9), { ...count(9), key: { strategy: "x" } }], 0.1);
    expect(report.differences).toEqual([
      expect.objectContaining({ metric: "rx.hypercalls", before: 9, after: 10, verdict: "changed" }),
    ]);
    expect(report.failures).toBe(1);
    expect(report.missing).toHaveLength(1);
    expect(compareWithBaseline([count(9)], [count(9)], 0.1).failures).toBe(0);
  });

  it("exits 1 on a regression and 0 within the threshold", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ivm-bench-"));
    const base = join(dir, "base.jsonl");
    const now = join(dir, "now.jsonl");
    writeFileSync(base, `${JSON.stringify(speed("a", 100))}\n`);
    writeFileSync(now, `${JSON.stringify(speed("a", 115))}\n`);
    const strict = await run("speed", "--merge", now, "--baseline", base);
    expect(strict.code).toBe(1);
    expect(strict.out).toMatch(/regression .*xMemcpy .*\+15\.0 %/s);
    expect((await run("speed", "--merge", now, "--baseline", base, "--threshold", "20")).code).toBe(0);
  });
});
