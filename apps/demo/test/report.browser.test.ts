import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { STRATEGIES } from "@ivm/catalog";
import { chromium } from "playwright-core";
import { describe, expect, it } from "vitest";
import { renderReport } from "../src/report.js";
import { runOne } from "../src/run.js";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = join(import.meta.dirname, "../../..");

// CI installs Debian's chromium (.ci/run); a developer machine without it skips this one test.
describe.skipIf(!existsSync(CHROMIUM))("the HTML report in a real browser", () => {
  it("renders the memory picture, the mappings, the timeline and the right numbers, offline", async () => {
    const options = {
      strategies: STRATEGIES,
      era: "each" as const,
      memory: 256 * 2 ** 20,
      uptime: "light" as const,
      packets: 200,
      seed: 2,
      isolation: true,
      picture: true,
    };
    // strategy (1) on its own kernel with its receive buffer's re-encryption refused: findings to show
    const faulty = { ...options, kernel: "5.17" as const, fault: "reencrypt-fail" as const };
    const runs = ["vmalloc-remap", "vtom-pte"].map((name) => {
      const entry = STRATEGIES.find((s) => s.name === name)!;
      return runOne(entry, entry.eras[0]!, name === "vmalloc-remap" ? faulty : options);
    });
    const html = renderReport({
      title: "ivm-lab report test",
      generated: "test",
      settings: { memory: "256 MiB" },
      strategies: runs.map((r) => r.report),
    });
    const dir = mkdtempSync(join(tmpdir(), "ivm-report-"));
    const file = join(dir, "report.html");
    writeFileSync(file, html);
    expect(html).not.toMatch(/<script|https?:\/\//); // self-contained: no scripts, no network

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
      const requests: string[] = [];
      page.on("request", (r) => {
        if (!r.url().startsWith("file:")) requests.push(r.url());
      });
      await page.goto(`file://${file}`);
      expect(await page.locator("h1").textContent()).toBe("ivm-lab report test");
      expect(await page.locator("section.strategy").count()).toBe(2);
      const remap = page.locator('section[data-strategy="vmalloc-remap"]');
      expect(await remap.locator('[data-counter="hypercalls (rx + tx)"]').textContent()).toBe("9 + 1");
      expect(await remap.locator('[data-counter="GPADL messages (rx + tx)"]').textContent()).toBe("147 + 10");
      expect(await remap.locator('[data-counter="live mappings (rx + tx)"]').textContent()).toBe("2 + 2");
      expect(await remap.locator("tr.map-shared").count()).toBe(2); // the two vmap_pfn aliases above vTOM
      expect(await remap.locator("svg.mem rect").count()).toBeGreaterThan(1000);
      expect(await remap.locator("svg.mem rect.vis").count()).toBeGreaterThan(0);
      expect(await remap.locator("tr.ev-hypercall").count()).toBeGreaterThan(0);
      const findings = page.locator("section.findings-summary tr.finding");
      expect(await findings.count()).toBeGreaterThan(0);
      expect(await findings.first().getAttribute("data-finding")).toMatch(/^CVE-2024-369/);
      expect(await remap.locator("table.findings tr.finding").count()).toBe(await findings.count());
      expect(await remap.locator("p.fault.fired").count()).toBe(1);
      const pte = page.locator('section[data-strategy="vtom-pte"]');
      expect(await pte.locator("table.findings").count()).toBe(0);
      expect(await pte.locator('[data-counter="live mappings (rx + tx)"]').textContent()).toBe("1 + 1");
      expect(requests).toEqual([]);
      const shots = join(ROOT, "reports");
      mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: join(shots, "report-screenshot.png") });
    } finally {
      await browser.close();
    }
  }, 60_000);
});
