import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import pkg from "../package.json" with { type: "json" };
import { main } from "../src/program.js";
import type { FuzzSummary } from "../src/summary.js";

const dir = mkdtempSync(join(tmpdir(), "ivm-fuzz-cli-"));
const file = (name: string): string => join(dir, name);
const VERSION = pkg.version;

async function fuzz(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t), progress: false });
  return { code, out, err };
}

const honest = {
  strategy: "vtom-pte",
  era: "pte-bit",
  memoryMiB: 64,
  rxSections: 12,
  txSections: 3,
  ringPages: 4,
  actions: [{ k: "traffic", tx: 2, rx: 2, seed: 1 }],
};
const tiny = ["-n", "80", "--session-length", "10", "--workers", "1", "--seed", "5"];

describe("ivm-fuzz: bad input is one line and exit 2, before anything runs", () => {
  writeFileSync(file("not-json.json"), "{");
  writeFileSync(file("other.json"), JSON.stringify({ bench: "compare", records: [] }));
  writeFileSync(file("bad-kind.json"), JSON.stringify({ ...honest, actions: [{ k: "explode" }] }));
  it.each([
    [["--strategy", "nope"], /--strategy.*unknown strategy; choose all or vmalloc-remap/],
    [["--era", "6.4"], /Allowed choices are address-bit, pte-bit, all/],
    [
      ["--strategy", "vtom-pte", "--era", "address-bit"],
      /no strategy "vtom-pte" runs in the address-bit era/,
    ],
    [["-n", "0"], /iterations must be an integer from 1/],
    [["-n", "many"], /iterations must be an integer/],
    [["--workers", "0"], /workers must be an integer from 1 to 256/],
    [["--seed", "-1"], /seed must be an integer from 0/],
    [["--churn", "1.5"], /churn must be an integer/],
    [["--replay", "xx"], /--replay.*not JSON/],
    [["--replay", "{}"], /strategy\/era undefined\/undefined is not one of/],
    [["--replay", JSON.stringify({ ...honest, memoryMiB: 1 })], /memoryMiB must be an integer from 32/],
    [["--replay", `@${file("bad-kind.json")}`], /action 0 has unknown kind "explode"/],
    [["--replay", "@/nonexistent.json"], /cannot read \/nonexistent.json: no such file/],
    [["--replay", `@${file("not-json.json")}`], /not-json.json: /],
    [["--shard", "0/2"], /--shard.*1 ≤ i ≤ n/],
    [["--shard", "3/2"], /shard 3 of 2 does not exist/],
    [["--shard", "a/b"], /--shard/],
    [["--merge", "/nonexistent.json"], /cannot read \/nonexistent.json/],
    [["--merge", file("other.json")], /not an ivm-fuzz summary/],
    [["--out", dir], /--out.*is a directory/],
  ])("%j", async (argv, message) => {
    const r = await fuzz(...argv);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    expect(r.out).toBe("");
  });

  it("--version prints the app's version; --help lists the exit codes with examples", async () => {
    expect(await fuzz("--version")).toEqual({ code: 0, out: `${VERSION}\n`, err: "" });
    const help = await fuzz("--help");
    expect(help.code).toBe(0);
    expect(help.out).toContain("Examples:");
    expect(help.out).toMatch(/Exit codes:\n {2}0 {2}no invariant violation\n {2}1 {2}a violation was found/);
    expect(help.out).toMatch(/\n {2}2 {2}a bad argument/);
  });

  it("replays a well-formed input (JSON or @file) and exits 0 when it keeps the invariants", async () => {
    writeFileSync(file("honest.json"), JSON.stringify(honest));
    for (const arg of [JSON.stringify(honest), `@${file("honest.json")}`]) {
      const r = await fuzz("--replay", arg);
      expect(r.code).toBe(0);
      expect(JSON.parse(r.out)).toEqual({ actions: 1, violations: [] });
    }
  });
});

describe("ivm-fuzz --shard i/n, --out and --merge", () => {
  /** Everything but time: what must be the same for merged shards and one run. */
  const totals = (s: FuzzSummary) => {
    const { wallMs: _w, inputsPerSecond: _r, workers: _k, shard: _s, faults, churn, ...rest } = s;
    return {
      ...rest,
      faults: faults && { ...faults, wallMs: 0 },
      churn: churn && { ...churn, wallMs: 0 },
    };
  };

  it("shards are disjoint slices whose merge gives the unsharded campaign's totals", async () => {
    // --faults shards the same way as --churn (by target) and merges through the same code; it is left
    // out here because enumerating every fault point of two targets three times takes half a minute.
    const args = [...tiny, "--strategy", "shared-pool", "--churn", "2"];
    const whole = await fuzz(...args, "--json");
    expect(whole.code).toBe(0);
    const one = JSON.parse(whole.out) as FuzzSummary;
    expect(one).toMatchObject({ tool: "ivm-fuzz", version: VERSION, shard: null, inputs: 80, sessions: 8 });
    expect(one.config).toEqual({
      iterations: 80,
      seed: 5,
      strategy: "shared-pool",
      era: "all",
      sessionLength: 10,
      faults: false,
      churn: 2,
      kernel: null,
      exact: false,
      fault: null,
    });
    expect(typeof one.findings).toBe("object"); // by id; merged shards give the same (checked in totals)
    const shards: FuzzSummary[] = [];
    for (const i of [1, 2]) {
      const r = await fuzz(...args, "--shard", `${i}/2`, "--out", file(`shard-${i}.json`));
      expect(r.code).toBe(0);
      shards.push(JSON.parse(readFileSync(file(`shard-${i}.json`), "utf8")) as FuzzSummary);
    }
    // Disjoint: each shard ran one of the two tasks of 4 sessions, and one of the two targets' faults and churn.
    expect(shards.map((s) => [s.shard, s.sessions])).toEqual([
      [{ index: 1, count: 2 }, 4],
      [{ index: 2, count: 2 }, 4],
    ]);
    expect(shards.map((s) => s.churn?.targets.map((t) => t.target))).toEqual([
      ["shared-pool/address-bit"],
      ["shared-pool/pte-bit"],
    ]);
    expect(shards[0]!.counters).not.toEqual(one.counters);
    const merged = await fuzz("--merge", file("shard-2.json"), file("shard-1.json"), "--json");
    expect(merged.code).toBe(0);
    expect(totals(JSON.parse(merged.out) as FuzzSummary)).toEqual(totals(one));
    const text = await fuzz("--merge", file("shard-1.json"), file("shard-2.json"));
    expect(text.out).toContain("80 adversarial inputs in 8 sessions");
    expect(text.out).toContain("invariant violations: 0");
  }, 120_000);

  it("refuses to merge an incomplete, duplicated or mixed set of shards (exit 2)", async () => {
    const a = [...tiny, "--strategy", "vtom-pte"];
    await fuzz(...a, "--shard", "1/2", "--out", file("v1.json"), "--json");
    await fuzz(...a, "--shard", "2/2", "--out", file("v2.json"), "--json");
    await fuzz(...a, "--seed", "6", "--shard", "2/2", "--out", file("w2.json"), "--json");
    for (const [files, message] of [
      [["v1.json"], /shard 2\/2 missing/],
      [["v1.json", "v1.json"], /both shard 1\/2/],
      [["v1.json", "w2.json"], /w2.json is from another campaign/],
    ] as const) {
      const r = await fuzz("--merge", ...files.map(file));
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
      expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    }
    expect((await fuzz("--merge", file("v1.json"), file("v2.json"))).code).toBe(0);
  }, 60_000);
});
