import { ALLOCATED, FREE, HOST_VISIBLE, LEAKED, pageFlags, pageOrder, pageOwner } from "../model/index.js";
import { CATEGORIES, type Category, categoryOf, PALETTE } from "./palette.js";

export interface PageCategories {
  /** Category index of every page (expanded from the block heads; leaked pages as "leaked"). */
  readonly cats: Uint8Array;
  /** Pages per category, and host-visible pages per category. */
  readonly byCat: Float64Array;
  readonly visibleByCat: Float64Array;
}

/** Categories and their counts for one step, in one pass over the pages (rebuilt once per step shown). */
export function pageCategories(packed: Uint32Array, tags: readonly string[]): PageCategories {
  const tagCat = tags.map((t) => CATEGORIES.indexOf(categoryOf(t)));
  const free = CATEGORIES.indexOf("free");
  const kernel = CATEGORIES.indexOf("kernel");
  const leaked = CATEGORIES.indexOf("leaked");
  const cats = new Uint8Array(packed.length);
  const byCat = new Float64Array(CATEGORIES.length);
  const visibleByCat = new Float64Array(CATEGORIES.length);
  let p = 0;
  while (p < packed.length) {
    const head = pageFlags(packed[p]!);
    const isBlock = (head & (FREE | ALLOCATED)) !== 0;
    const n = isBlock ? Math.min(2 ** pageOrder(packed[p]!), packed.length - p) : 1;
    const blockCat = !isBlock ? kernel : head & FREE ? free : (tagCat[pageOwner(packed[p]!)] ?? kernel);
    for (let q = p; q < p + n; q++) {
      const f = pageFlags(packed[q]!);
      const c = f & LEAKED ? leaked : blockCat;
      cats[q] = c;
      byCat[c]!++;
      if (f & HOST_VISIBLE) visibleByCat[c]!++;
    }
    p += n;
  }
  return { cats, byCat, visibleByCat };
}

const RGB = CATEGORIES.map((c) => {
  const hex = PALETTE[c] ?? "#bbbbbb";
  return [
    parseInt(hex.slice(1, 3), 16),
    parseInt(hex.slice(3, 5), 16),
    parseInt(hex.slice(5, 7), 16),
  ] as const;
});
const HIDDEN = [238, 238, 238] as const;

export interface MapView {
  /** First page shown. */
  start: number;
  /** Pages per cell (a power of two). */
  perCell: number;
  /** Screen pixels per cell side. */
  cellPx: number;
}

/**
 * The guest-physical map on one canvas: the private alias (GPA = pfn × 4 KiB) on top, the shared alias
 * (pfn | vTOM) below, each cell one or more pages. A cell takes the category most of its pages have
 * (anything allocated beats free, so a small buffer stays visible); in the shared alias only
 * host-visible pages are drawn, since nothing else is reachable there. Drawn through an ImageData of one
 * pixel per cell, so 512k pages cost one pass over a typed array, not a DOM node each.
 */
export class MemoryMap {
  readonly canvas: HTMLCanvasElement;
  readonly view: MapView = { start: 0, perCell: 1, cellPx: 1 };
  #pages = 0;
  #cats: Uint8Array = new Uint8Array(0);
  #packed: Uint32Array = new Uint32Array(0);
  #highlight: { first: number; count: number }[] = [];
  onHover: ((text: string) => void) | undefined;
  #tags: readonly string[] = [];
  #vtom = 0;
  #version = -1;
  /** The two bands' cells for the last state and view drawn (stepping through traffic rarely changes pages). */
  #bands: { key: string; images: ImageData[] } | undefined;

  constructor(canvas: HTMLCanvasElement) {
    this.canvas = canvas;
    canvas.tabIndex = 0;
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoom(e.deltaY < 0 ? 1 : -1, this.#pageAt(e.offsetX, e.offsetY));
    });
    let drag: { y: number; start: number } | undefined;
    canvas.addEventListener("pointerdown", (e) => {
      drag = { y: e.offsetY, start: this.view.start };
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointerup", () => {
      drag = undefined;
    });
    canvas.addEventListener("pointermove", (e) => {
      if (drag) {
        const rows = Math.round((drag.y - e.offsetY) / this.view.cellPx);
        this.#setStart(drag.start + rows * this.#cols() * this.view.perCell);
        this.draw();
        return;
      }
      const p = this.#pageAt(e.offsetX, e.offsetY);
      this.onHover?.(p === undefined ? "" : this.describe(p.page, p.shared));
    });
  }

  /** Shows a new page state (category per page and the packed state, for hovering). */
  show(
    packed: Uint32Array,
    cats: Uint8Array,
    tags: readonly string[],
    vtomPfn: number,
    version: number,
  ): void {
    const fresh = this.#pages !== packed.length;
    this.#version = version;
    this.#pages = packed.length;
    this.#packed = packed;
    this.#cats = cats;
    this.#tags = tags;
    this.#vtom = vtomPfn;
    if (fresh) this.whole();
    else this.draw();
  }

  /** Outlines PFN runs (the event in hand's pages) on the map. */
  highlight(runs: { first: number; count: number }[]): void {
    this.#highlight = runs;
  }

  describe(page: number, shared: boolean): string {
    const v = this.#packed[page];
    if (v === undefined) return "";
    const f = pageFlags(v);
    const cat = CATEGORIES[this.#cats[page]!] ?? "?";
    const gpa = shared ? page + this.#vtom : page;
    const bits = [
      f & HOST_VISIBLE ? "host-visible" : "private",
      f & LEAKED ? "LEAKED" : "",
      f & FREE ? `free head order ${pageOrder(v)}` : "",
      f & ALLOCATED ? `block head order ${pageOrder(v)}, owner ${this.#tags[pageOwner(v)] ?? "?"}` : "",
    ].filter(Boolean);
    return `${shared ? "shared alias" : "private alias"} GPA 0x${(gpa * 4096).toString(16)} · pfn 0x${page.toString(16)} · ${cat} · ${bits.join(", ")}${shared && !(f & HOST_VISIBLE) ? " · not reachable by the host" : ""}`;
  }

  #cols(): number {
    return Math.max(1, Math.floor(this.canvas.width / this.view.cellPx));
  }

  /** Rows per alias band. */
  #rows(): number {
    return Math.max(1, Math.floor((this.canvas.height - 14) / 2 / this.view.cellPx));
  }

  #setStart(start: number): void {
    const span = this.#cols() * this.#rows() * this.view.perCell;
    const max = Math.max(0, this.#pages - span);
    this.view.start = Math.max(0, Math.min(max, Math.round(start)));
  }

  #pageAt(x: number, y: number): { page: number; shared: boolean } | undefined {
    const scale = this.canvas.width / this.canvas.clientWidth;
    const px = x * scale;
    const py = y * scale;
    const band = (this.canvas.height - 14) / 2;
    const shared = py > band + 14;
    const by = shared ? py - band - 14 : py;
    const col = Math.floor(px / this.view.cellPx);
    const row = Math.floor(by / this.view.cellPx);
    if (col >= this.#cols() || row >= this.#rows() || by < 0) return undefined;
    const page = this.view.start + (row * this.#cols() + col) * this.view.perCell;
    return page < this.#pages ? { page, shared } : undefined;
  }

  /** Fits the whole memory into each band. */
  whole(): void {
    this.#resize();
    this.view.cellPx = 1;
    this.view.perCell = 1;
    while (this.#cols() * this.#rows() * this.view.perCell < this.#pages) this.view.perCell *= 2;
    this.view.start = 0;
    this.draw();
  }

  /** One step in (+1) or out (−1), keeping `at` under the pointer. */
  zoom(direction: 1 | -1, at?: { page: number }): void {
    const v = this.view;
    const anchor = at?.page ?? v.start + Math.floor((this.#cols() * this.#rows() * v.perCell) / 2);
    const offsetCells = Math.floor((anchor - v.start) / v.perCell);
    if (direction > 0) {
      if (v.perCell > 1) v.perCell /= 2;
      else if (v.cellPx < 48) v.cellPx *= 2;
    } else if (v.cellPx > 1) v.cellPx /= 2;
    else if (this.#cols() * this.#rows() * v.perCell < this.#pages) v.perCell *= 2;
    const cells = Math.min(offsetCells, this.#cols() * this.#rows() - 1);
    this.#setStart(anchor - cells * v.perCell);
    this.draw();
  }

  /** Zooms so that a PFN run fills the bands (down to single pages). */
  focus(first: number, count: number): void {
    this.#resize();
    const v = this.view;
    v.cellPx = 1;
    v.perCell = 1;
    while (this.#cols() * this.#rows() * v.perCell < count) v.perCell *= 2;
    while (v.perCell === 1 && v.cellPx < 48 && this.#cols() * this.#rows() >= count * 4) v.cellPx *= 2;
    this.#setStart(first - this.#cols() * v.perCell);
    this.draw();
  }

  #resize(): void {
    const w = Math.max(200, Math.floor(this.canvas.clientWidth * (window.devicePixelRatio || 1)));
    const h = Math.max(120, Math.floor(this.canvas.clientHeight * (window.devicePixelRatio || 1)));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
  }

  /** The cells of one band as an ImageData (one pixel per cell). */
  #band(shared: boolean, cols: number, rows: number): ImageData {
    const img = new ImageData(cols, rows);
    const data = img.data;
    const per = this.view.perCell;
    const counts = new Uint32Array(CATEGORIES.length);
    const freeCat = CATEGORIES.indexOf("free");
    for (let cell = 0; cell < cols * rows; cell++) {
      const first = this.view.start + cell * per;
      if (first >= this.#pages) break;
      const last = Math.min(this.#pages, first + per);
      counts.fill(0);
      let visible = 0;
      for (let p = first; p < last; p++) {
        const c = this.#cats[p]!;
        if (shared) {
          if (pageFlags(this.#packed[p]!) & HOST_VISIBLE) {
            counts[c]!++;
            visible++;
          }
        } else counts[c]!++;
      }
      let best = -1;
      for (let c = 0; c < counts.length; c++) {
        if (counts[c] === 0) continue;
        if (best < 0 || (best === freeCat && c !== freeCat) || (c !== freeCat && counts[c]! > counts[best]!))
          best = c;
      }
      const rgb = shared && visible === 0 ? HIDDEN : best < 0 ? HIDDEN : RGB[best]!;
      const o = cell * 4;
      data[o] = rgb[0];
      data[o + 1] = rgb[1];
      data[o + 2] = rgb[2];
      data[o + 3] = 255;
    }
    return img;
  }

  draw(): void {
    if (this.#pages === 0) return;
    this.#resize();
    const ctx = this.canvas.getContext("2d")!;
    const cols = this.#cols();
    const rows = this.#rows();
    const band = (this.canvas.height - 14) / 2;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.imageSmoothingEnabled = false;
    const off = document.createElement("canvas");
    off.width = cols;
    off.height = rows;
    const octx = off.getContext("2d")!;
    const key = `${this.#version}:${this.view.start}:${this.view.perCell}:${cols}x${rows}`;
    if (this.#bands?.key !== key) {
      this.#bands = { key, images: [this.#band(false, cols, rows), this.#band(true, cols, rows)] };
    }
    for (const shared of [false, true]) {
      octx.putImageData(this.#bands.images[shared ? 1 : 0]!, 0, 0);
      const y = shared ? band + 14 : 0;
      ctx.drawImage(off, 0, 0, cols, rows, 0, y, cols * this.view.cellPx, rows * this.view.cellPx);
      if (this.view.cellPx >= 8) {
        // Grid lines once a page is big enough to point at.
        ctx.strokeStyle = "rgba(0,0,0,0.15)";
        ctx.lineWidth = 1;
        ctx.beginPath();
        for (let c = 0; c <= cols; c++) {
          ctx.moveTo(c * this.view.cellPx + 0.5, y);
          ctx.lineTo(c * this.view.cellPx + 0.5, y + rows * this.view.cellPx);
        }
        for (let r = 0; r <= rows; r++) {
          ctx.moveTo(0, y + r * this.view.cellPx + 0.5);
          ctx.lineTo(cols * this.view.cellPx, y + r * this.view.cellPx + 0.5);
        }
        ctx.stroke();
      }
      this.#drawHighlight(ctx, y, cols, rows);
    }
    const span = cols * rows * this.view.perCell;
    const end = Math.min(this.#pages, this.view.start + span);
    ctx.fillStyle = "#333";
    ctx.font = `${Math.round(11 * (window.devicePixelRatio || 1))}px system-ui, sans-serif`;
    ctx.fillText(
      `▲ private alias · ▼ shared alias (pfn | vTOM, host-visible pages only) · pfn 0x${this.view.start.toString(16)}–0x${(end - 1).toString(16)} · ${this.view.perCell} page${this.view.perCell > 1 ? "s" : ""}/cell`,
      4,
      band + 11,
    );
  }

  #drawHighlight(ctx: CanvasRenderingContext2D, y: number, cols: number, rows: number): void {
    if (this.#highlight.length === 0) return;
    ctx.strokeStyle = "#D55E00";
    ctx.lineWidth = Math.max(1, Math.min(3, this.view.cellPx / 4));
    const per = this.view.perCell;
    const px = this.view.cellPx;
    for (const run of this.#highlight.slice(0, 2000)) {
      const a = Math.floor((run.first - this.view.start) / per);
      const b = Math.floor((run.first + run.count - 1 - this.view.start) / per);
      if (b < 0 || a >= cols * rows) continue;
      for (let cell = Math.max(0, a); cell <= Math.min(b, cols * rows - 1); ) {
        const row = Math.floor(cell / cols);
        const rowEnd = Math.min(b, (row + 1) * cols - 1, cols * rows - 1);
        const c0 = cell % cols;
        const c1 = rowEnd % cols;
        ctx.strokeRect(c0 * px, y + row * px, (c1 - c0 + 1) * px, px);
        cell = rowEnd + 1;
      }
    }
  }
}

export function legend(): string {
  return CATEGORIES.map((c: Category) => `<span><i style="background:${PALETTE[c]}"></i>${c}</span>`).join(
    "",
  );
}
