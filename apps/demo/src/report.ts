import { PAGE_PALETTE } from "@ivm/catalog";
import type {
  FindingView,
  MemoryPicture,
  ReportModel,
  StrategyReport,
  TimelineEvent,
} from "./report-model.js";

/** The page colours the web lab uses too (Okabe–Ito, @ivm/catalog). */
const PALETTE: Readonly<Record<string, string>> = PAGE_PALETTE;
const EVENT_COLOUR: Record<TimelineEvent["kind"], string> = {
  hypercall: "#D55E00",
  gpadl: "#0072B2",
  channel: "#009E73",
  nvsp: "#CC79A7",
};

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(n % 2 ** 30 ? 2 : 0)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(n % 2 ** 20 ? 2 : 0)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(n % 2 ** 10 ? 1 : 0)} KiB`;
  return `${n} B`;
}

/** The physical picture: one square per cell, coloured by owner; host-visible cells outlined and echoed in the shared-alias band. */
function pictureSvg(p: MemoryPicture): string {
  const cols = 128;
  const size = 6;
  const rows = Math.ceil(p.cellOwner.length / cols);
  const bandGap = 28;
  const height = rows * size * 2 + bandGap + 24;
  const parts: string[] = [];
  parts.push(
    `<text x="0" y="10" class="lbl">private alias — guest physical 0 … ${fmtBytes(p.pages * 4096)}</text>`,
  );
  p.cellOwner.forEach((owner, i) => {
    const x = (i % cols) * size;
    const y = 14 + Math.floor(i / cols) * size;
    const cat = p.categories[owner] ?? "kernel";
    parts.push(
      `<rect x="${x}" y="${y}" width="${size - 1}" height="${size - 1}" fill="${PALETTE[cat] ?? "#bbbbbb"}" data-cat="${esc(cat)}"/>`,
    );
  });
  const alias = 14 + rows * size + bandGap;
  parts.push(
    `<text x="0" y="${alias - 4}" class="lbl">shared alias — pfn | vTOM (0x${p.vtom.toString(16)}): host-visible pages</text>`,
  );
  p.cellVisible.forEach((visible, i) => {
    if (visible === 0) return;
    const x = (i % cols) * size;
    const y = alias + Math.floor(i / cols) * size;
    const share = visible / p.pagesPerCell;
    parts.push(
      `<rect class="vis" x="${x}" y="${y}" width="${size - 1}" height="${size - 1}" fill="#0072B2" fill-opacity="${(0.3 + 0.7 * share).toFixed(2)}"><title>${visible} host-visible pages</title></rect>`,
    );
  });
  return `<svg class="mem" viewBox="0 0 ${cols * size} ${height}" width="${cols * size * 1.5}" role="img" aria-label="guest physical memory">${parts.join("")}</svg>`;
}

function legend(): string {
  return `<div class="legend">${Object.entries(PALETTE)
    .map(([k, c]) => `<span><i style="background:${c}"></i>${esc(k)}</span>`)
    .join(
      "",
    )}<span><i style="background:#0072B2"></i>host-visible pages in the shared alias (darker: more of the cell)</span></div>`;
}

function timelineSvg(events: readonly TimelineEvent[]): string {
  const total = events.reduce((s, e) => s + e.count, 0);
  if (total === 0) return "<p>No hypercalls or messages.</p>";
  const width = 900;
  let x = 0;
  const bars = events.map((e) => {
    const w = Math.max(1, (e.count / total) * width);
    const bar = `<rect x="${x.toFixed(1)}" y="0" width="${w.toFixed(1)}" height="22" fill="${EVENT_COLOUR[e.kind]}"><title>${esc(e.label)} ×${e.count}</title></rect>`;
    x += w;
    return bar;
  });
  const rows = events
    .map(
      (e) =>
        `<tr class="ev ev-${e.kind}"><td><i style="background:${EVENT_COLOUR[e.kind]}"></i>${esc(e.kind)}</td><td>${esc(e.label)}</td><td class="num">${e.count}</td></tr>`,
    )
    .join("");
  return `<svg class="timeline" viewBox="0 0 ${width} 22" width="${width}" role="img" aria-label="device-add timeline">${bars.join("")}</svg><table class="events"><tr><th>kind</th><th>event (in order)</th><th>count</th></tr>${rows}</table>`;
}

/** The findings table: one row per finding (id, kernel, the lab invariant it breaks, what, where). */
function findingsTable(findings: readonly FindingView[], withStrategy: boolean): string {
  const rows = findings
    .map(
      (f) =>
        `<tr class="finding" data-finding="${esc(f.id)}"><td><code>${esc(f.id)}</code></td><td>${esc(f.profile)}</td>${withStrategy ? `<td>${esc(f.strategy)}</td>` : ""}<td>${esc(f.invariant)}</td><td>${esc(f.what)}</td><td><code>${esc(f.where)}</code></td></tr>`,
    )
    .join("");
  return `<table class="findings"><tr><th>id</th><th>kernel</th>${withStrategy ? "<th>strategy</th>" : ""}<th>invariant</th><th>what the kernel does</th><th>where</th></tr>${rows}</table>`;
}

/** The report-wide findings section: every strategy's, or a line saying there were none. */
function findingsSection(strategies: readonly StrategyReport[]): string {
  const all = strategies.flatMap((s) => s.findings);
  const body =
    all.length === 0
      ? `<p class="no-findings">No findings: the booted kernels did nothing their fixed successors do not.</p>`
      : `<p>What the booted kernel would do that its fixed successors do not — not failures of the model.</p>${findingsTable(all, true)}`;
  return `<section class="findings-summary"><h2>Findings</h2>${body}</section>`;
}

function faultLine(s: StrategyReport): string {
  if (!s.fault) return "";
  return `<p class="fault ${s.fault.fired ? "fired" : "missed"}">Fault <b>${esc(s.fault.name)}</b> ${s.fault.fired ? "fired" : "did not fire"}: ${esc(s.fault.detail)}</p>`;
}

function strategySection(s: StrategyReport): string {
  if (!s.ran) {
    return `<section class="strategy skipped" data-strategy="${esc(s.strategy)}"><h2>${esc(s.strategy)} <small>${esc(s.era)}, Linux ${esc(s.kernel)}</small></h2><p class="skip">${esc(s.skipReason ?? "not run")}</p>${faultLine(s)}${s.findings.length > 0 ? `<h3>Findings</h3>${findingsTable(s.findings, false)}` : ""}</section>`;
  }
  const counters = Object.entries(s.counters)
    .map(
      ([k, v]) =>
        `<tr><td>${esc(k)}</td><td class="num" data-counter="${esc(k)}">${esc(String(v))}</td></tr>`,
    )
    .join("");
  const maps = s.mappings
    .map(
      (m) =>
        `<tr class="map map-${m.alias}"><td><code>${esc(m.start)}</code></td><td class="num">${fmtBytes(m.bytes)}</td><td>${esc(m.tag)}</td><td>${esc(m.kind)}</td><td>→ ${m.alias === "shared" ? "<b>shared alias</b> (above vTOM)" : m.alias === "private" ? "private alias" : "mixed"}</td></tr>`,
    )
    .join("");
  return `<section class="strategy" data-strategy="${esc(s.strategy)}">
<h2>${esc(s.strategy)} <small>${esc(s.era)}, Linux ${esc(s.kernel)}</small></h2>
${faultLine(s)}
<div class="cols">
<div><h3>Guest physical memory after device add</h3>${s.picture ? pictureSvg(s.picture) : ""}</div>
<div><h3>Counters</h3><table class="counters">${counters}</table></div>
</div>
<h3>Virtual mappings of the buffers</h3>
<table class="mappings"><tr><th>start</th><th>size</th><th>tag</th><th>kind</th><th>reaches</th></tr>${maps}</table>
<h3>Device add: hypercalls and messages</h3>${timelineSvg(s.timeline)}
${s.findings.length > 0 ? `<h3>Findings</h3>${findingsTable(s.findings, false)}` : ""}
</section>`;
}

/** One self-contained HTML file: inline CSS and SVG, no scripts, no network. */
export function renderReport(model: ReportModel): string {
  const settings = Object.entries(model.settings)
    .map(([k, v]) => `<span><b>${esc(k)}</b> ${esc(String(v))}</span>`)
    .join(" ");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(model.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;border-top:2px solid #ddd;padding-top:12px} h2 small{color:#666;font-weight:normal}
h3{font-size:14px;margin:12px 0 6px} .settings span{margin-right:14px;color:#444}
.cols{display:flex;gap:24px;flex-wrap:wrap} table{border-collapse:collapse} td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
.num{text-align:right;font-variant-numeric:tabular-nums} .legend span{margin-right:12px;white-space:nowrap}
.legend i,.events i{display:inline-block;width:12px;height:12px;border:1px solid #888;margin-right:4px;vertical-align:-2px}
.lbl{font-size:9px;fill:#444} .map-shared td:last-child{color:#0072B2} .skip{color:#D55E00}
.findings td:first-child code{color:#D55E00} .fault.missed{color:#D55E00} .no-findings{color:#009E73}
</style></head><body>
<h1>${esc(model.title)}</h1>
<p class="settings">${settings}</p>
<p class="generated">Generated ${esc(model.generated)}. Every number is measured by the model's counters.</p>
${legend()}
${findingsSection(model.strategies)}
${model.strategies.map(strategySection).join("\n")}
</body></html>
`;
}
