import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize } from "node:path";
import { STRATEGIES } from "@ivm/catalog";
import { getProfile } from "@ivm/kernel";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configToQuery, DEFAULT_CONFIG, type LabConfig } from "../src/model/config.js";
import { demoResult, firstGpadlHeader, reencryptionFails } from "./direct.js";

const CHROMIUM = "/usr/bin/chromium";
const LAB = join(import.meta.dirname, "..");
const DIST = join(LAB, "dist");
const ROOT = join(LAB, "../..");
// Screenshots go to reports/ on every run; `UPDATE_SCREENSHOTS=1` writes the README's copies in docs/ instead,
// so a plain test run leaves the tracked tree untouched.
const SHOTS = join(ROOT, process.env.UPDATE_SCREENSHOTS === "1" ? "docs" : "reports");
mkdirSync(SHOTS, { recursive: true });
const MIME: Record<string, string> = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".css": "text/css",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** Newest modification time under a directory (the lab's sources). */
function newest(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((t, e) => {
    const p = join(dir, e.name);
    return Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }, 0);
}

async function ensureBuilt(): Promise<void> {
  const index = join(DIST, "index.html");
  const sources = Math.max(newest(join(LAB, "src")), statSync(join(LAB, "index.html")).mtimeMs);
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return;
  // The same build `pnpm lab build` runs (the packages' dist must exist: `pnpm build` makes both).
  const { build } = await import("vite");
  await build({ root: LAB, logLevel: "warn" });
}

function serve(): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(
      /^(\.\.[/\\])+/,
      "",
    );
    const file = join(DIST, path.endsWith("/") ? `${path}index.html` : path);
    if (!file.startsWith(DIST) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function ready(page: Page): Promise<void> {
  await page.waitForSelector('body[data-ready="1"]', { timeout: 120_000 });
}

async function stepShown(page: Page): Promise<number> {
  return Number(await page.locator("#stepinfo").getAttribute("data-step"));
}

describe.skipIf(!existsSync(CHROMIUM))("the lab in a real browser", () => {
  let server: Server;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    await ensureBuilt();
    server = await serve();
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
      ],
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => server?.close(r));
  });

  it("boots the default guest, offers all six strategies, decodes the first GPADL header and ends on the demo's numbers", async () => {
    const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(base);
    await ready(page);
    const offered = await page
      .locator("#strategy option")
      .evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
    expect(offered).toEqual(STRATEGIES.map((s) => s.name));
    expect(offered).toHaveLength(6);
    const side = page.locator('section.side[data-strategy="vmalloc-remap"]');
    const bootMs = Number(await side.locator("[data-boot-ms]").getAttribute("data-boot-ms"));
    const recordMs = Number(await side.locator("[data-record-ms]").getAttribute("data-record-ms"));

    // The first GPADL header: its handle and PFN count as VMBus's decoder reads them in Node.
    const expected = firstGpadlHeader(DEFAULT_CONFIG, "vmalloc-remap");
    await page.keyboard.press("g");
    await ready(page);
    const decoded = side.locator(".decoded");
    await expect.poll(() => decoded.getAttribute("data-fact-kind")).toBe("gpadl-header");
    expect(Number(await decoded.getAttribute("data-fact-gpadl"))).toBe(expected.gpadl);
    expect(Number(await decoded.getAttribute("data-fact-pfncount"))).toBe(expected.pfns);
    expect(await decoded.locator('tr[data-field="gpadl"] [data-value]').textContent()).toContain(
      String(expected.gpadl),
    );
    // The screenshot: the receive buffer's first visibility hypercall, its input page decoded.
    await page.keyboard.press("h");
    await ready(page);
    await side.locator('[data-zoom="rx"]').click();
    mkdirSync(join(ROOT, "docs"), { recursive: true });
    await page.screenshot({ path: join(SHOTS, "lab.png"), fullPage: true });

    // How long a step takes to draw at 2 GiB (recorded for the README, never asserted: timing is bench's).
    const renders: number[] = [];
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press(i < 20 ? "ArrowRight" : "ArrowLeft");
      await ready(page);
      renders.push(Number(await page.evaluate(() => document.body.dataset.renderMs)));
    }
    renders.sort((a, b) => a - b);

    // The end of the run: the demo's --json numbers for the same configuration.
    await page.keyboard.press("End");
    await ready(page);
    const demo = demoResult(DEFAULT_CONFIG, "vmalloc-remap");
    const summary = (k: string) => side.locator(`[data-summary="${k}"]`).textContent();
    await expect.poll(() => summary("leaked pages")).toBe(String(demo.leakedPages));
    expect(await summary("GPADL messages (rx + tx)")).toBe(
      `${demo.buffers.rx!.gpadlMessages} + ${demo.buffers.tx!.gpadlMessages}`,
    );
    expect(await summary("GPADL messages (rx + tx)")).toBe("147 + 10"); // the must-show, as the demo prints
    expect(await summary("hypercalls (rx + tx)")).toBe(
      `${demo.buffers.rx!.hypercalls} + ${demo.buffers.tx!.hypercalls}`,
    );
    expect(await summary("live mappings (rx + tx)")).toBe(
      `${demo.buffers.rx!.liveMappings} + ${demo.buffers.tx!.liveMappings}`,
    );
    expect(await summary("device-add hypercalls (all)")).toBe(String(demo.deviceAdd.hypercalls));
    expect(await summary("device-add GPADL messages (all)")).toBe(String(demo.deviceAdd.gpadlMessages));
    expect(await summary("device-add channel messages")).toBe(String(demo.deviceAdd.channelMessages));
    expect(await summary("page-table pages added")).toBe(String(demo.deviceAdd.pageTablePagesAdded));
    expect(await summary("packets sent / received / verified")).toBe(
      `${demo.packets.sent} / ${demo.packets.received} / ${demo.packets.verified}`,
    );
    expect(await summary("host-visible pages after remove")).toBe(String(demo.hostVisiblePagesAfterRemove));
    expect(await summary("faults")).toBe(String(demo.faults));
    expect(errors).toEqual([]);
    mkdirSync(join(ROOT, "reports"), { recursive: true });
    writeFileSync(
      join(ROOT, "reports/lab-boot.json"),
      `${JSON.stringify({ memory: DEFAULT_CONFIG.memory, bootMs, recordMs, renderMedianMs: renders[20], renderMaxMs: renders[39] })}\n`,
    );
  }, 240_000);

  it("shows what a failed re-encryption leaks, and a reloaded link lands on the same step", async () => {
    const config: LabConfig = { ...DEFAULT_CONFIG, memory: 512 * 2 ** 20, packets: 400, failReencrypt: true };
    const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    await page.goto(`${base}?${configToQuery(config, 0)}`);
    await ready(page);
    expect(await page.locator("#failre").isChecked()).toBe(true);
    await page.keyboard.press("End");
    await ready(page);
    const side = page.locator('section.side[data-strategy="vmalloc-remap"]');
    const leaked = reencryptionFails(config, "vmalloc-remap").memory.leakedPages;
    expect(leaked).toBeGreaterThan(0);
    await expect.poll(() => side.locator('[data-summary="leaked pages"]').textContent()).toBe(String(leaked));
    expect(await side.locator('[data-counter="leaked pages"]').textContent()).toBe(
      leaked.toLocaleString("en-US"),
    );

    // A link to a step mid device add reproduces the view after a reload.
    await page.keyboard.press("Home");
    for (let i = 0; i < 3; i++) await page.keyboard.press("h");
    await ready(page);
    const step = await stepShown(page);
    expect(step).toBeGreaterThan(0);
    const title = await side.locator(".event-title").textContent();
    await expect.poll(() => page.evaluate(() => location.search)).toContain(`step=${step}`);
    await page.reload();
    await ready(page);
    expect(await stepShown(page)).toBe(step);
    expect(await side.locator(".event-title").textContent()).toBe(title);
  }, 240_000);

  it("lists the booted kernel's findings as of the step: a CVE on 5.17, none on 6.12", async () => {
    const small = { ...DEFAULT_CONFIG, memory: 512 * 2 ** 20, packets: 400, failReencrypt: true };
    const on612: LabConfig = { ...small, strategy: "vtom-pte", compare: "vmalloc-remap", kernel: "6.12" };
    const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${base}?${configToQuery(on612, 0)}`);
    await ready(page);
    expect(await page.locator("#era").textContent()).toBe("pte-bit era");
    // A strategy not written for 6.12 is not booted; its side says why, in its descriptor's words.
    const remap = STRATEGIES.find((s) => s.name === "vmalloc-remap")!;
    const skipped = page.locator('section.side[data-strategy="vmalloc-remap"] [data-skipped]');
    expect(await skipped.textContent()).toBe(remap.unsupportedOn(getProfile("6.12")));
    await page.keyboard.press("End");
    await ready(page);
    const pte = page.locator('section.side[data-strategy="vtom-pte"]');
    const node612 = reencryptionFails(on612, "vtom-pte");
    expect(node612.findings).toEqual([]);
    expect(await pte.locator(".findings").getAttribute("data-count")).toBe("0");
    expect(await pte.locator('[data-counter="findings"]').textContent()).toBe("0");
    expect(node612.memory.leakedPages).toBeGreaterThan(0);
    expect(await pte.locator('[data-counter="leaked pages"]').textContent()).toBe(
      node612.memory.leakedPages.toLocaleString("en-US"),
    );

    // Choose 5.17 and strategy (1) in the form; the re-encryption fault stays checked.
    await page.selectOption("#kernel", "5.17");
    expect(await page.locator("#era").textContent()).toBe("address-bit era");
    await page.selectOption("#strategy", "vmalloc-remap");
    await page.selectOption("#compare", "");
    expect(await page.locator("#failre").isChecked()).toBe(true);
    await page.click("#boot");
    await expect.poll(() => page.locator("section.side").count()).toBe(1);
    await ready(page);
    await expect.poll(() => page.evaluate(() => location.search)).toContain("kernel=5.17");
    const side = page.locator('section.side[data-strategy="vmalloc-remap"]');
    const findings = side.locator(".findings");
    expect(await findings.getAttribute("data-count")).toBe("0"); // booted: nothing yet
    await page.keyboard.press("End");
    await ready(page);
    const node517 = reencryptionFails({ ...small, kernel: "5.17" }, "vmalloc-remap").findings;
    expect(node517.map((f) => f.id)).toContainEqual(expect.stringMatching(/^CVE-2024-369\d\d$/));
    const ids = await findings
      .locator("tr[data-finding]")
      .evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.finding));
    expect(ids).toEqual(node517.map((f) => f.id));
    expect(await findings.textContent()).toContain(node517[0]!.where);
    expect(await side.locator('[data-counter="findings"]').textContent()).toBe(String(node517.length));
    // The finding appears at the step of the event that reported it, and stepping back hides it again.
    const at = Number(await findings.locator("tr[data-finding] td.num").first().textContent());
    const scrub = page.locator("#scrub");
    await scrub.fill(String(at - 1));
    await ready(page);
    expect(await findings.getAttribute("data-count")).toBe("0");
    await scrub.fill(String(at));
    await ready(page);
    expect(Number(await findings.getAttribute("data-count"))).toBeGreaterThan(0);

    // A link from before kernel profiles: era= picks the era's representative kernel.
    await page.goto(`${base}?era=pte-bit&s=vtom-pte&mem=256MiB&packets=0`);
    await ready(page);
    expect(await page.locator("#kernel").inputValue()).toBe("6.9");
    expect(errors).toEqual([]);
  }, 240_000);

  it("steps two strategies side by side in lockstep", async () => {
    const config: LabConfig = { ...DEFAULT_CONFIG, compare: "shared-pool" };
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const workers: string[] = [];
    page.on("worker", (w) => workers.push(w.url()));
    await page.goto(`${base}?${configToQuery(config, 0)}`);
    await ready(page);
    expect(await page.locator("section.side").count()).toBe(2);
    // Each strategy booted in its own worker, off the page's thread.
    expect(workers.filter((u) => u.includes("record-worker"))).toHaveLength(2);
    for (let i = 0; i < 2; i++) await page.keyboard.press("h");
    await ready(page);
    const titles = await page.locator("section.side .event-title").allTextContents();
    expect(titles.some((t) => t.includes("hypercall"))).toBe(true);
    const pool = page.locator('section.side[data-strategy="shared-pool"]');
    expect(await pool.locator("[data-counter=hypercalls]").textContent()).not.toBe("0");
    await page.screenshot({ path: join(SHOTS, "lab-side-by-side.png"), fullPage: true });
  }, 240_000);
});
