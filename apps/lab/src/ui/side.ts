import {
  type DecodedEvent,
  type DecodedPart,
  decodeEvent,
  formatBytes,
  PageState,
  type Recording,
  STEP_COUNTERS,
} from "../model/index.js";
import { legend, MemoryMap, type PageCategories, pageCategories } from "./map.js";
import { CATEGORIES } from "./palette.js";

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function hexView(part: DecodedPart, limit = 768): string {
  const { bytes, base } = part;
  const end = Math.min(bytes.length, base + part.length);
  const shown = Math.min(end, base + limit);
  const lines: string[] = [];
  for (let row = base - (base % 16); row < shown; row += 16) {
    let hex = "";
    let ascii = "";
    for (let i = row; i < row + 16; i++) {
      if (i < base || i >= shown) {
        hex += "   ";
        ascii += " ";
        continue;
      }
      const b = bytes[i]!;
      hex += `<span data-o="${i - base}">${b.toString(16).padStart(2, "0")}</span> `;
      ascii += b >= 0x20 && b < 0x7f ? esc(String.fromCharCode(b)) : ".";
    }
    lines.push(`${(row - base).toString(16).padStart(4, "0")}  ${hex} ${ascii}`);
  }
  if (shown < end) lines.push(`… ${end - shown} more bytes`);
  return lines.join("\n");
}

function partHtml(part: DecodedPart, index: number): string {
  const rows = part.fields
    .map(
      (f) =>
        `<tr class="field${f.mismatch ? " mismatch" : ""}" ${f.offset !== undefined ? `data-off="${f.offset}" data-size="${f.size}"` : ""} data-field="${esc(f.name)}"><td class="num">${f.offset ?? ""}</td><td class="num">${f.size ?? ""}</td><td class="mono">${esc(f.name)}</td><td class="mono" data-value>${esc(f.value)}${f.mismatch ? " ⚠ bytes disagree" : ""}</td></tr>`,
    )
    .join("");
  const pfns = part.pfns
    ? `<div class="pfns" data-pfn-runs="${part.pfns.length}">PFN ranges: ${part.pfns
        .slice(0, 64)
        .map((r) => `0x${r.first.toString(16)}${r.count > 1 ? `+${r.count}` : ""}`)
        .join(", ")}${part.pfns.length > 64 ? ` … ${part.pfns.length - 64} more ranges` : ""}</div>`
    : "";
  const table = rows
    ? `<table><thead><tr><th class="num">offset</th><th class="num">size</th><th>field</th><th>value</th></tr></thead><tbody>${rows}</tbody></table>`
    : "";
  const hex = part.length > 0 ? `<div class="hex" data-part="${index}">${hexView(part)}</div>` : "";
  return `<h3>${esc(part.title)}</h3>${part.note ? `<p class="skip">${esc(part.note)}</p>` : ""}${table}${pfns}${hex}`;
}

/** One strategy's column: its map, the event in hand, mappings, what the host can read, counters. */
export class SidePanel {
  readonly rec: Recording;
  readonly el: HTMLElement;
  readonly map: MemoryMap | undefined;
  readonly state: PageState;
  #cats: PageCategories | undefined;
  #catsVersion = -1;
  #decoded: DecodedEvent | undefined;
  onPick: ((step: number) => void) | undefined;

  constructor(rec: Recording, parent: HTMLElement) {
    this.rec = rec;
    this.state = new PageState(rec.initial);
    this.el = document.createElement("section");
    this.el.className = "side";
    this.el.dataset.strategy = rec.strategy;
    parent.append(this.el);
    const head = `<h2>(${rec.approach}) ${esc(rec.strategy)} <small data-kernel="${esc(rec.kernel)}">Linux ${esc(rec.kernel)}${rec.hardened ? " hardened" : ""} · ${esc(rec.era)} era</small></h2>`;
    if (rec.skipped) {
      this.el.innerHTML = `${head}<p class="skip" data-skipped>${esc(rec.skipped)}</p>`;
      this.map = undefined;
      return;
    }
    this.el.innerHTML = `${head}
      <p class="counts" data-boot-ms="${rec.bootMs.toFixed(0)}" data-record-ms="${rec.recordMs.toFixed(0)}">
        ${formatBytes(rec.pages * 4096)} guest booted in <b>${rec.bootMs.toFixed(0)} ms</b>; ${rec.events.length.toLocaleString("en-US")} events recorded in ${rec.recordMs.toFixed(0)} ms.
      </p>
      <div class="event" aria-live="polite"><span class="phase"></span> <span class="event-title"></span></div>
      <div class="mapwrap"><canvas class="map" aria-label="guest-physical memory map"></canvas></div>
      <div class="maptools">
        <button data-zoom="in" title="+">zoom in</button><button data-zoom="out" title="−">zoom out</button>
        <button data-zoom="whole" title="0">whole memory</button><button data-zoom="event">zoom to the event's pages</button>
        <button data-zoom="rx">receive buffer</button>
        <span class="tip" aria-live="off"></span>
      </div>
      <div class="legend">${legend()}</div>
      <p class="counts map-counts"></p>
      <h3>What the host can read now</h3><p class="counts host-read"></p>
      <h3>Counters at this step</h3><table class="counters"></table>
      <h3>Findings of the booted kernel (as of this step)</h3><div class="findings" aria-live="polite"></div>
      <div class="summary"></div>
      <h3>Buffer and ring mappings (vmalloc range)</h3><table class="mappings"></table>
      <h3>Event in hand</h3><div class="decoded"></div>
      <h3>Events around this step</h3><div class="events" role="listbox" aria-label="events"></div>`;
    const canvas = this.el.querySelector("canvas")!;
    this.map = new MemoryMap(canvas);
    const tip = this.el.querySelector(".tip")!;
    this.map.onHover = (t) => {
      tip.textContent = t;
    };
    this.el.querySelector(".maptools")!.addEventListener("click", (e) => {
      const z = (e.target as HTMLElement).dataset.zoom;
      if (!z || !this.map) return;
      if (z === "in") this.map.zoom(1);
      if (z === "out") this.map.zoom(-1);
      if (z === "whole") this.map.whole();
      if (z === "event") this.#focusEvent();
      if (z === "rx") this.#focusOwner("netvsc-rx");
    });
    this.el.querySelector(".events")!.addEventListener("click", (e) => {
      const s = (e.target as HTMLElement).closest<HTMLElement>("[data-step]")?.dataset.step;
      if (s !== undefined) this.onPick?.(Number(s));
    });
    const decoded = this.el.querySelector(".decoded")!;
    decoded.addEventListener("mouseover", (e) => this.#hover(e, true));
    decoded.addEventListener("mouseout", (e) => this.#hover(e, false));
  }

  #hover(e: Event, on: boolean): void {
    const tr = (e.target as HTMLElement).closest<HTMLElement>("tr[data-off]");
    if (!tr) return;
    const section = tr.closest("table")?.nextElementSibling;
    const hex = section?.classList.contains("hex") ? section : section?.nextElementSibling;
    if (!hex) return;
    const off = Number(tr.dataset.off);
    const size = Number(tr.dataset.size);
    for (let i = off; i < off + Math.min(size, 4096); i++) {
      hex.querySelector(`span[data-o="${i}"]`)?.classList.toggle("hl", on);
    }
  }

  #focusEvent(): void {
    const runs = this.#decoded?.parts.flatMap((p) => p.pfns ?? []) ?? [];
    if (!this.map || runs.length === 0) return;
    const first = Math.min(...runs.map((r) => r.first));
    const last = Math.max(...runs.map((r) => r.first + r.count));
    if (first < this.rec.pages) this.map.focus(first, Math.min(last, this.rec.pages) - first);
  }

  #focusOwner(category: string): void {
    if (!this.map || !this.#cats) return;
    const c = CATEGORIES.indexOf(category);
    const first = this.#cats.cats.indexOf(c);
    if (first < 0) return;
    const last = this.#cats.cats.lastIndexOf(c);
    this.map.focus(first, last - first + 1);
  }

  /** Shows step `step` of this recording. */
  render(step: number): void {
    if (this.rec.skipped || !this.map) return;
    const rec = this.rec;
    this.state.seek(rec.diffs, step);
    if (this.#catsVersion !== this.state.version) {
      this.#cats = pageCategories(this.state.packed, rec.tags);
      this.#catsVersion = this.state.version;
    }
    const { cats, byCat, visibleByCat } = this.#cats!;
    const event = step > 0 ? rec.events[step - 1] : undefined;
    this.#decoded = event ? decodeEvent(event) : undefined;
    const phase = this.el.querySelector<HTMLElement>(".phase")!;
    phase.textContent = event ? event.phase : "boot";
    phase.className = `phase ${event?.phase ?? ""}`;
    const title = this.el.querySelector<HTMLElement>(".event-title")!;
    title.textContent = `step ${step} of ${rec.events.length}: ${this.#decoded?.title ?? "the booted guest, before device add"}`;
    title.dataset.step = String(step);
    this.map.highlight(this.#decoded?.parts.flatMap((p) => p.pfns ?? []) ?? []);
    this.map.show(this.state.packed, cats, rec.tags, rec.vtomPfn, this.state.version);

    // Text for the map: pages per category and host-visible pages per category.
    this.el.querySelector(".map-counts")!.innerHTML = CATEGORIES.map((c, i) =>
      byCat[i] ? `<span data-count="${c}">${c}: ${byCat[i]!.toLocaleString("en-US")}</span>` : "",
    )
      .filter(Boolean)
      .join(" · ");
    const visible = visibleByCat.reduce((a, b) => a + b, 0);
    this.el.querySelector(".host-read")!.innerHTML =
      `<b data-host-visible="${visible}">${visible.toLocaleString("en-US")} pages (${formatBytes(visible * 4096)})</b> through the shared alias` +
      (visible
        ? `: ${CATEGORIES.map((c, i) =>
            visibleByCat[i] ? `${c} ${visibleByCat[i]!.toLocaleString("en-US")}` : "",
          )
            .filter(Boolean)
            .join(", ")}`
        : "") +
      ". Everything else is private: a host read there is refused and counted.";

    const n = STEP_COUNTERS.length;
    this.el.querySelector(".counters")!.innerHTML = STEP_COUNTERS.map(
      (name, i) =>
        `<tr><td>${name}</td><td class="num" data-counter="${name}">${rec.counters[step * n + i]!.toLocaleString("en-US")}</td></tr>`,
    ).join("");
    this.#renderFindings(step);
    this.#renderSummary(step);
    this.#renderMappings(step);
    const decoded = this.el.querySelector(".decoded")!;
    decoded.innerHTML = this.#decoded
      ? this.#decoded.parts.map(partHtml).join("")
      : "<p>Step forward to see the first event of device add.</p>";
    if (this.#decoded) {
      for (const [k, v] of Object.entries(this.#decoded.facts))
        decoded.setAttribute(`data-fact-${k.toLowerCase()}`, String(v));
    }
    this.#renderEvents(step);
  }

  /** vm.findings reported at or before this step (a finding carries the step whose event reported it). */
  #renderFindings(step: number): void {
    const shown = this.rec.findings.filter((f) => f.step <= step);
    const el = this.el.querySelector<HTMLElement>(".findings")!;
    el.dataset.count = String(shown.length);
    el.innerHTML = shown.length
      ? `<table><thead><tr><th>id</th><th>invariant</th><th>what</th><th>where</th><th class="num">step</th></tr></thead><tbody>${shown
          .map(
            (f) =>
              `<tr data-finding="${esc(f.id)}"><td class="mono">${esc(f.id)}</td><td>${esc(f.invariant)}</td><td>${esc(f.what)}</td><td class="mono">${esc(f.where)}</td><td class="num">${f.step}</td></tr>`,
          )
          .join("")}</tbody></table>`
      : `<p class="none">none: nothing Linux ${esc(this.rec.kernel)} did so far differs from its fixed successors.</p>`;
  }

  #renderSummary(step: number): void {
    const s = this.rec.summary;
    const el = this.el.querySelector(".summary")!;
    const addEnd = this.rec.phaseStart.traffic - 1;
    if (step < addEnd) {
      el.innerHTML = `<p class="counts">Device add's totals appear at its last step (${addEnd}).</p>`;
      return;
    }
    const end = step === this.rec.events.length;
    const rx = s.buffers.rx;
    const tx = s.buffers.tx;
    const rows: [string, string][] = [
      ["device add", s.deviceAdd.ok ? "ok" : `failed: ${s.error ?? "?"}`],
      ["hypercalls (rx + tx)", `${rx?.hypercalls ?? 0} + ${tx?.hypercalls ?? 0}`],
      ["GPADL messages (rx + tx)", `${rx?.gpadlMessages ?? 0} + ${tx?.gpadlMessages ?? 0}`],
      ["live mappings (rx + tx)", `${rx?.liveMappings ?? 0} + ${tx?.liveMappings ?? 0}`],
      ["PTE pages used (rx + tx)", String((rx?.ptePages ?? 0) + (tx?.ptePages ?? 0))],
      ["vmalloc address space (rx + tx)", formatBytes((rx?.vmallocBytes ?? 0) + (tx?.vmallocBytes ?? 0))],
      ["device-add hypercalls (all)", String(s.deviceAdd.hypercalls)],
      ["device-add GPADL messages (all)", String(s.deviceAdd.gpadlMessages)],
      ["device-add channel messages", String(s.deviceAdd.channelMessages)],
      ["page-table pages added", String(s.deviceAdd.pageTablePagesAdded)],
      ["swiotlb slots", String(s.swiotlbSlots)],
      ["NIC channels (queues)", String(s.channels)],
    ];
    if (end) {
      rows.push(
        [
          "packets sent / received / verified",
          `${s.packets.sent} / ${s.packets.received} / ${s.packets.verified}`,
        ],
        ["host-visible pages after remove", String(s.hostVisiblePagesAfterRemove)],
        ["leaked pages", String(s.leakedPages)],
        ["faults", String(s.faults)],
      );
    }
    el.innerHTML = `<h3>${end ? "The run's totals (as ivm-demo --json reports them)" : "Device add's totals (the rest at the last step)"}</h3><table>${rows
      .map(([k, v]) => `<tr><td>${k}</td><td class="num" data-summary="${k}">${esc(v)}</td></tr>`)
      .join("")}</table>`;
  }

  #renderMappings(step: number): void {
    const rows = this.rec.mappings[step] ?? [];
    const el = this.el.querySelector(".mappings")!;
    if (rows.length === 0) {
      el.innerHTML = "<tr><td>no buffer or ring mappings at this step</td></tr>";
      return;
    }
    el.innerHTML = `<tr><th>start</th><th class="num">bytes</th><th>owner</th><th>kind</th><th>reaches</th><th>first pfn</th></tr>${rows
      .map((m) => {
        const alias = m.sharedPages === 0 ? "private" : m.sharedPages === m.pages ? "shared" : "mixed";
        const label =
          alias === "private"
            ? "private alias"
            : alias === "shared"
              ? "shared alias (| vTOM)"
              : `mixed: ${m.sharedPages} of ${m.pages} pages shared`;
        return `<tr data-alias="${alias}"><td class="mono">${m.start}</td><td class="num">${formatBytes(m.bytes)}</td><td>${esc(m.tag)}</td><td>${esc(m.kind)}</td><td class="alias-${alias}">${label}</td><td class="mono">0x${m.firstPfn.toString(16)}</td></tr>`;
      })
      .join("")}`;
  }

  #renderEvents(step: number): void {
    const el = this.el.querySelector<HTMLElement>(".events")!;
    const from = Math.max(1, step - 6);
    const to = Math.min(this.rec.events.length, step + 8);
    const items: string[] = [];
    if (from === 1)
      items.push(`<div data-step="0" class="${step === 0 ? "cur" : ""}">0 · booted guest</div>`);
    for (let s = from; s <= to; s++) {
      const e = this.rec.events[s - 1]!;
      items.push(
        `<div role="option" data-step="${s}" class="${s === step ? "cur" : ""}" aria-selected="${s === step}">${s} · ${e.phase} · ${esc(decodeEvent(e).title)}</div>`,
      );
    }
    el.innerHTML = items.join("");
  }
}
