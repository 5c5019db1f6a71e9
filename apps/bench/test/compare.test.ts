import { describe, expect, it } from "vitest";
import { compareTable } from "../src/compare.js";
import type { ResultRecord } from "../src/records.js";
import { toMarkdown } from "../src/render.js";
import { run } from "./helpers.js";

describe("ivm-bench compare", () => {
  it("measures strategy (1) with the fact sheet's numbers, in the documented JSON shape", async () => {
    const { code, out } = await run(
      "compare",
      "--strategy",
      "vmalloc-remap",
      "--json",
      "--no-out",
      "--jobs",
      "1",
      "--packets",
      "200",
    );
    expect(code).toBe(0);
    const doc = JSON.parse(out) as { bench: string; records: ResultRecord[] };
    expect(doc.bench).toBe("compare");
    expect(doc.records).toHaveLength(1);
    const [r] = doc.records;
    expect(r!.key).toEqual({
      strategy: "vmalloc-remap",
      era: "address-bit",
      isolated: true,
      memory: 2 * 2 ** 30,
      uptime: "none",
      seed: 1,
      rxSections: 9709,
      txSections: 170,
      packets: 200,
    });
    expect(r!.run).toMatchObject({ node: process.version });
    const m = r!.metrics;
    // kernel-netvsc-swiotlb-mm.md §1 and §5: 9 + 1 visibility hypercalls, 147 + 10 GPADL messages, two mappings each
    expect([m["rx.hypercalls"], m["tx.hypercalls"]]).toEqual([9, 1]);
    expect([m["rx.gpadlMessages"], m["tx.gpadlMessages"]]).toEqual([147, 10]);
    expect([m["rx.liveMappings"], m["tx.liveMappings"]]).toEqual([2, 2]);
    expect([m["rx.pages"], m["tx.pages"]]).toEqual([4096, 255]);
    expect(m["rx.pagesByOrder"]).toEqual([4096, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // 2 × (16 MiB + guard), the alias 16 MiB-aligned; the temporary PFN array is 32 KiB
    expect(m["rx.vmallocBytes"]).toBe(2 * (16 * 2 ** 20 + 4096));
    expect(m["rx.transientPeakBytes"]).toBe(32 * 1024);
    expect(m.ok).toBe(true);
    expect(m["traffic.verified"]).toBe(true);
    expect(m["remove.hostVisibleLeft"]).toBe(0);
    for (const path of ["txSection", "txBounce", "rx"])
      expect(m[`copy.${path}.bytesPerPacket`]).toBeGreaterThan(0);
    expect(m.loc).toBeGreaterThan(10);
  });

  it("renders the same records as a Markdown table", async () => {
    const { out } = await run("compare", "--strategy", "vtom-pte", "--json", "--no-out", "--packets", "50");
    const md = toMarkdown(compareTable((JSON.parse(out) as { records: ResultRecord[] }).records));
    expect(md).toContain("| (5) vtom-pte | pte-bit | 9,709 / 170 | 1 + 1 |");
    expect(md).toContain("| 9 + 1 | 147 + 10 |");
  });

  it("--cpus 4 --queues 4: a multi-queue NIC, its channels and rings + buffers per NIC", async () => {
    const multiQueue = ["--cpus", "4", "--queues", "4"];
    const { code, out } = await run(
      "compare",
      "--strategy",
      "vmalloc-remap",
      ...multiQueue,
      "--json",
      "--no-out",
    );
    expect(code).toBe(0);
    const [r] = (JSON.parse(out) as { records: ResultRecord[] }).records;
    expect(r!.key).toMatchObject({ cpus: 4, queues: 4 });
    const m = r!.metrics;
    expect([m["nic.channels"], m["nic.ringPages"], m["nic.bufferPages"]]).toEqual([4, 4 * 512, 4096 + 255]);
    expect(m["nic.pages"]).toBe(4 * 512 + 4096 + 255);
    expect(m["nic.ringGpadlMessages"]).toBe(40);
    expect(m["traffic.verified"]).toBe(true);
    const md = toMarkdown(compareTable([r!]));
    expect(md).toContain("| 147 + 10 | 4 | 2,048 + 4,351 |");
  });

  it("refuses --queues above --cpus before running (exit 2, one line)", async () => {
    const r = await run("compare", "--queues", "8", "--cpus", "4", "--no-out");
    expect(r.code).toBe(2);
    expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/--queues 8 is more than the guest's 4 CPUs/);
    expect((await run("compare", "--cpus", "0", "--no-out")).code).toBe(2);
  });
});
