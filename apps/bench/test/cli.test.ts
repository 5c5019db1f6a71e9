import { describe, expect, it } from "vitest";
import { run } from "./helpers.js";

describe("ivm-bench arguments", () => {
  it.each([
    [["compare", "--bogus"], /unknown option '--bogus'/],
    [["compare", "--rx-sections", "5"], /--rx-sections must be an integer from 10 to 18811/],
    [["compare", "--tx-sections", "lots"], /--tx-sections must be an integer/],
    [["compare", "--memory", "12 parsecs"], /is not a size/],
    [["compare", "--memory", "1MiB"], /guest memory must be 256MiB to 1TiB/],
    [["compare", "--strategy", "magic"], /Allowed choices are vmalloc-remap/],
    [["compare", "--uptime", "forever"], /Allowed choices are none, light, moderate, heavy/],
    [["fragmentation", "--seeds", "3-1"], /is not a seed range/],
    [["speed", "--threshold", "x%"], /threshold is a percentage/],
    [["speed", "--guests", "4GiB,lots"], /is not a size/],
    [["speed", "--section", "network"], /Allowed choices are construction, device, datapath, buddy, fuzz/],
    [["frobnicate"], /unknown command 'frobnicate'/],
    [[], /Usage: ivm-bench/],
  ])("%j exits 2 with a clear message", async (argv, message) => {
    const { code, err } = await run(...argv);
    expect(code).toBe(2);
    expect(err).toMatch(message);
  });

  it("prints help with examples and exits 0", async () => {
    const { code, out } = await run("--help");
    expect(code).toBe(0);
    expect(out).toContain("Examples:");
    expect(out).toContain("pnpm bench compare --rx-sections");
    expect(out).toMatch(/Exit codes: 0 ok, 1 regression against --baseline, 2 bad arguments/);
  });

  it("documents each subcommand's flags", async () => {
    const { code, out } = await run("compare", "--help");
    expect(code).toBe(0);
    for (const flag of [
      "--rx-sections",
      "--tx-sections",
      "--memory",
      "--uptime",
      "--seed",
      "--merge",
      "--baseline",
    ])
      expect(out).toContain(flag);
  });
});
