import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import pkg from "../package.json" with { type: "json" };
import { keyOf, type ResultRecord, readRecords } from "../src/records.js";
import { run } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "ivm-bench-shard-"));
const file = (name: string): string => join(dir, name);
const VERSION = pkg.version;

/** What a record measured, without when and where it ran. */
const measured = (records: readonly ResultRecord[]) =>
  records.map((r) => ({ key: keyOf(r), metrics: r.metrics }));

describe("ivm-bench: bad input is one line and exit 2, before anything runs", () => {
  writeFileSync(file("bad.jsonl"), '{"bench":"compare","key":{},"metrics":{}}\nnot json\n');
  writeFileSync(file("speed.jsonl"), '{"bench":"speed","key":{"case":"x"},"metrics":{}}\n');
  writeFileSync(file("compare.jsonl"), '{"bench":"compare","key":{"strategy":"x"},"metrics":{}}\n');
  it.each([
    [
      ["speed", "--baseline", "/nonexistent.jsonl"],
      /--baseline.*cannot read \/nonexistent.jsonl: no such file/,
    ],
    [["compare", "--baseline", file("bad.jsonl")], /bad.jsonl:2: not a JSON line/],
    [["compare", "--baseline", file("speed.jsonl")], /speed.jsonl: no compare records/],
    [["compare", "--baseline", dir], /cannot read .*: is a directory/],
    [
      ["fragmentation", "--merge", file("speed.jsonl"), "/nope.jsonl"],
      /speed.jsonl: no fragmentation records/,
    ],
    [["compare", "--merge", "/nope.jsonl"], /cannot read \/nope.jsonl/],
    [["compare", "--out", dir], /--out.*cannot write .*: is a directory/],
    [["fragmentation", "--chart", join(file("speed.jsonl"), "c.svg")], /cannot write .* is a file/],
    [["compare", "--shard", "0/3"], /--shard.*integers 1 ≤ i ≤ n/],
    [["compare", "--shard", "4/3"], /shard 4 of 3 does not exist/],
    [["fragmentation", "--shard", "1.5/2"], /--shard/],
    [["fragmentation", "--shard", "2"], /--shard/],
    [
      ["compare", "--shard", "1/2", "--merge", file("compare.jsonl")],
      /'--shard <i\/n>' cannot be used with option '--merge/,
    ],
    [["speed", "--shard", "1/2"], /unknown option '--shard'/],
    [["compare", "--jobs", "0"], /--jobs must be an integer/],
  ])("%j", async (argv, message) => {
    const out = file(`out-${Math.random()}.jsonl`);
    const r = await run(...argv, ...(argv.includes("--out") ? [] : ["--out", out]));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    expect(r.out).toBe("");
    expect(existsSync(out)).toBe(false); // nothing ran, nothing was saved
  });

  it("--version prints the app's version; every --help lists the exit codes", async () => {
    expect(await run("--version")).toEqual({ code: 0, out: `${VERSION}\n`, err: "" });
    for (const sub of [[], ["compare"], ["fragmentation"], ["speed"], ["report"]]) {
      const help = await run(...sub, "--help");
      expect(help.code).toBe(0);
      expect(help.out).toMatch(/Exit codes: 0 ok, 1 regression against --baseline, 2 bad arguments/);
    }
    expect((await run("compare", "--help")).out).toContain("--shard <i/n>");
  });
});

describe("ivm-bench --shard i/n and --merge", () => {
  const sweep = ["--strategy", "vtom-pte", "shared-pool", "--uptime", "light", "none", "--seeds", "2,1"];
  const frag = ["fragmentation", ...sweep, "--memory", "256MiB", "--no-chart", "--jobs", "1"];

  it("fragmentation: the shards are disjoint, their union is the unsharded sweep, merged they print the same", async () => {
    const whole = await run(...frag, "--out", file("whole.jsonl"));
    expect(whole.code).toBe(0);
    const all = readRecords(file("whole.jsonl"));
    expect(all).toHaveLength(12); // 2 uptimes × 2 seeds × (vtom-pte + shared-pool in two eras)
    const shards = [];
    for (const i of [1, 2, 3]) {
      const r = await run(...frag, "--shard", `${i}/3`, "--out", file(`frag-${i}.jsonl`));
      expect(r.code).toBe(0);
      expect(r.err).toContain(`shard ${i}/3: 4 of 12 cases`);
      shards.push(readRecords(file(`frag-${i}.jsonl`)));
    }
    const keys = shards.flatMap((s) => s.map(keyOf));
    expect(new Set(keys).size).toBe(keys.length); // disjoint
    expect([...keys].sort()).toEqual(all.map(keyOf).sort()); // union = the whole sweep
    // Merged in any file order, the shards give the unsharded records in its order, and its table.
    const files = [3, 1, 2].map((i) => file(`frag-${i}.jsonl`));
    const merged = await run("fragmentation", "--merge", ...files, "--json", "--no-chart");
    expect(merged.code).toBe(0);
    expect(measured((JSON.parse(merged.out) as { records: ResultRecord[] }).records)).toEqual(measured(all));
    const table = await run("fragmentation", "--merge", ...files, "--no-chart");
    expect(table.out).toBe(whole.out);
  }, 60_000);

  it("compare: shard 2/2 and 1/2 merged equal one run; a shard beyond the cases is empty, not an error", async () => {
    const cmp = ["compare", "--strategy", "vtom-pte", "shared-pool", "--memory", "256MiB", "--packets", "20"];
    const whole = await run(...cmp, "--jobs", "1", "--json", "--no-out");
    const all = (JSON.parse(whole.out) as { records: ResultRecord[] }).records;
    expect(all.map((r) => `${r.key.strategy}/${r.key.era}`)).toEqual([
      "vtom-pte/pte-bit",
      "shared-pool/address-bit",
      "shared-pool/pte-bit",
    ]);
    for (const i of [1, 2])
      await run(...cmp, "--jobs", "1", "--shard", `${i}/2`, "--out", file(`cmp-${i}.jsonl`));
    expect(readRecords(file("cmp-1.jsonl")).map(keyOf)).toEqual([keyOf(all[0]!), keyOf(all[2]!)]);
    expect(readRecords(file("cmp-2.jsonl")).map(keyOf)).toEqual([keyOf(all[1]!)]);
    const merged = await run("compare", "--merge", file("cmp-2.jsonl"), file("cmp-1.jsonl"), "--json");
    expect(measured((JSON.parse(merged.out) as { records: ResultRecord[] }).records)).toEqual(measured(all));
    const empty = await run(...cmp, "--shard", "5/5", "--json", "--out", file("empty.jsonl"));
    expect(empty.code).toBe(0);
    expect((JSON.parse(empty.out) as { records: ResultRecord[] }).records).toEqual([]);
    expect(existsSync(file("empty.jsonl"))).toBe(false);
  }, 60_000);
});
