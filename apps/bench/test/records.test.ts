import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { keyOf, mergeRecords, parseRecords, type ResultRecord } from "../src/records.js";
import { run } from "./helpers.js";

const run0 = { at: "2026-01-01T00:00:00.000Z", node: "v20.19.0", cpus: 2 };
const rec = (strategy: string, seed: number, hypercalls: number): ResultRecord => ({
  bench: "compare",
  key: { strategy, era: "address-bit", isolated: true, seed, rxSections: 9709, txSections: 170 },
  metrics: { ok: true, "rx.hypercalls": hypercalls, "tx.hypercalls": 1 },
  run: run0,
});
const lines = (records: readonly ResultRecord[]) => records.map((r) => JSON.stringify(r)).join("\n");

describe("results files", () => {
  it("keys records by bench and key, whatever the field order", () => {
    const a = rec("vmalloc-remap", 1, 9);
    const b = { ...a, key: Object.fromEntries(Object.entries(a.key).reverse()) };
    expect(keyOf(a)).toBe(keyOf(b));
    expect(keyOf(a)).not.toBe(keyOf(rec("vmalloc-remap", 2, 9)));
  });

  it("reads JSON lines and --json documents alike", () => {
    const records = [rec("a", 1, 9), rec("b", 1, 9)];
    expect(parseRecords(lines(records))).toEqual(records);
    expect(parseRecords(JSON.stringify({ bench: "compare", records }))).toEqual(records);
    expect(() => parseRecords('{"bench":"compare","key":{},"metrics":{}}\nnot json', "x.jsonl")).toThrow(
      /x.jsonl:2: not a JSON line/,
    );
  });

  it("merges shards: one record per key, the later shard winning", () => {
    const merged = mergeRecords([
      [rec("vmalloc-remap", 1, 9), rec("page-blocks", 1, 9)],
      [rec("vmalloc-remap", 1, 10), rec("vtom-pte", 1, 9)],
    ]);
    expect(merged.map((r) => [r.key.strategy, r.metrics["rx.hypercalls"]])).toEqual([
      ["vmalloc-remap", 10],
      ["page-blocks", 9],
      ["vtom-pte", 9],
    ]);
  });

  it("--merge prints the merged table of two shard files without running or saving anything", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ivm-bench-"));
    const [a, b, out] = ["a.jsonl", "b.jsonl", "out.jsonl"].map((f) => join(dir, f));
    writeFileSync(a!, `${lines([rec("vmalloc-remap", 1, 9), rec("page-blocks", 1, 9)])}\n`);
    writeFileSync(b!, `${lines([rec("vtom-pte", 1, 9), rec("vmalloc-remap", 1, 9)])}\n`);
    writeFileSync(out!, "");
    const json = await run("compare", "--merge", a!, b!, "--json", "--out", out!);
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.out) as { records: ResultRecord[] };
    expect(doc.records.map((r) => r.key.strategy)).toEqual(["vmalloc-remap", "page-blocks", "vtom-pte"]);
    expect(readFileSync(out!, "utf8")).toBe("");
    const table = await run("compare", "--merge", a!, b!, "--markdown");
    expect(table.out).toContain("| (4) page-blocks |");
    expect(table.out).toContain("| (5) vtom-pte |");
  });
});
