import { STRATEGIES } from "@ivm/catalog";
import { describe, expect, it } from "vitest";
import { main } from "../src/cli.js";
import { plan, runOne } from "../src/run.js";
import { parseSize } from "../src/size.js";

describe("ivm-demo arguments", () => {
  it("parses sizes with units", () => {
    expect(parseSize("512MiB")).toBe(512 * 2 ** 20);
    expect(parseSize("8GiB")).toBe(8 * 2 ** 30);
    expect(parseSize("2G")).toBe(2 * 2 ** 30);
    expect(() => parseSize("lots")).toThrow(/not a size/);
    expect(() => parseSize("1MiB")).toThrow(/at least/);
  });

  it("exits with 2 on a bad flag, an unknown strategy, a bad era or a bad size", () => {
    for (const argv of [
      ["--bogus"],
      ["--strategy", "nope"],
      ["--era", "6.4"],
      ["--memory", "huge"],
      ["--isolation", "maybe"],
    ]) {
      expect(main(argv)).toBe(2);
    }
  });
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
