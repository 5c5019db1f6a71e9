import {
  configFromQuery,
  configToQuery,
  eraOf,
  isGpadlMessage,
  KERNELS,
  type LabConfig,
  type Recording,
  recordOffThread,
  strategyChoices,
  UPTIMES,
} from "./model/index.js";
import { SidePanel } from "./ui/side.js";
import { buildTimeline, type Timeline } from "./ui/timeline.js";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const form = $<HTMLFormElement>("config");
const status = $<HTMLElement>("status");
const sidesEl = $<HTMLElement>("sides");
const scrub = $<HTMLInputElement>("scrub");
const stepInfo = $<HTMLElement>("stepinfo");

let config: LabConfig | undefined;
let sides: SidePanel[] = [];
let timeline: Timeline = { length: 1, sideStep: [], phaseStart: [1, 1, 1] };
let step = 0;
let playing: number | undefined;
/** Boots started; a recording that arrives after a newer boot began is dropped. */
let boots = 0;

function fillSelect(id: string, options: { value: string; label: string }[]): void {
  $<HTMLSelectElement>(id).innerHTML = options
    .map((o) => `<option value="${o.value}">${o.label}</option>`)
    .join("");
}

const strategies = strategyChoices();
fillSelect(
  "strategy",
  strategies.map((s) => ({ value: s.name, label: `(${s.approach}) ${s.name} — ${s.summary}` })),
);
fillSelect("compare", [
  { value: "", label: "— none —" },
  ...strategies.map((s) => ({ value: s.name, label: `(${s.approach}) ${s.name}` })),
]);
fillSelect(
  "kernel",
  KERNELS.map((k) => ({ value: k, label: `Linux ${k}` })),
);
/** The era beside the kernel select: a derived property of the profile, never chosen on its own. */
function showEra(): void {
  const kernel = $<HTMLSelectElement>("kernel").value;
  const el = $<HTMLElement>("era");
  el.textContent = `${eraOf({ kernel: kernel as LabConfig["kernel"] })} era`;
}
$<HTMLSelectElement>("kernel").addEventListener("change", showEra);
fillSelect(
  "uptime",
  UPTIMES.map((u) => ({ value: u, label: u })),
);

function toForm(c: LabConfig): void {
  const set = (id: string, v: string): void => {
    $<HTMLInputElement>(id).value = v;
  };
  set("strategy", c.strategy);
  set("compare", c.compare);
  set("kernel", c.kernel);
  showEra();
  set("mem", `${c.memory / 2 ** 20}MiB`);
  set("rx", String(c.rxSections));
  set("tx", String(c.txSections));
  set("uptime", c.uptime);
  set("packets", String(c.packets));
  set("seed", String(c.seed));
  set("failhc", String(c.failHypercall));
  set("cpus", String(c.cpus));
  set("q", String(c.queues));
  $<HTMLInputElement>("iso").checked = c.isolation;
  $<HTMLInputElement>("hard").checked = c.hardened;
  $<HTMLInputElement>("failre").checked = c.failReencrypt;
}

function fromForm(): { config: LabConfig; problems: string[] } {
  const data = new FormData(form);
  const q = new URLSearchParams();
  for (const key of [
    "s",
    "b",
    "kernel",
    "mem",
    "rx",
    "tx",
    "uptime",
    "packets",
    "seed",
    "failhc",
    "cpus",
    "q",
  ]) {
    q.set(key, String(data.get(key) ?? "").trim());
  }
  q.set("iso", data.get("iso") ? "1" : "0");
  q.set("hard", data.get("hard") ? "1" : "0");
  q.set("failre", data.get("failre") ? "1" : "0");
  const { config, problems } = configFromQuery(q.toString());
  return { config, problems };
}

let urlTimer: number | undefined;
function writeUrl(push: boolean): void {
  if (!config) return;
  const url = `${location.pathname}?${configToQuery(config, step)}`;
  if (push) history.pushState(null, "", url);
  else {
    clearTimeout(urlTimer);
    urlTimer = window.setTimeout(() => history.replaceState(null, "", url), 120);
  }
}

let frame = 0;
function render(): void {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const t0 = performance.now();
    sides.forEach((s, i) => {
      s.render(timeline.sideStep[i]?.[step] ?? 0);
    });
    scrub.value = String(step);
    const phase = timeline.phaseStart.filter((p) => p <= step).length;
    stepInfo.textContent = `step ${step.toLocaleString("en-US")} / ${(timeline.length - 1).toLocaleString("en-US")} · ${step === 0 ? "booted" : ["device add", "traffic", "device remove"][phase - 1]}`;
    stepInfo.dataset.step = String(step);
    // How long drawing this step took (every side: map, decode, tables), for the README's numbers.
    document.body.dataset.renderMs = (performance.now() - t0).toFixed(1);
    document.body.dataset.ready = "1";
  });
}

function go(target: number): void {
  step = Math.max(0, Math.min(timeline.length - 1, target));
  document.body.dataset.ready = "0";
  writeUrl(false);
  render();
}

/** The next joint step at or after `from` where any side's event matches. */
function findNext(from: number, match: (rec: Recording, s: number) => boolean): number {
  for (let j = from; j < timeline.length; j++) {
    if (sides.some((side, i) => match(side.rec, timeline.sideStep[i]![j]!))) return j;
  }
  return step;
}

function boot(c: LabConfig, atStep: number, push: boolean, problems: readonly string[] = []): void {
  toForm(c);
  stopPlaying();
  status.className = "";
  status.textContent = "booting…";
  document.body.dataset.ready = "0";
  const names = [c.strategy, ...(c.compare && c.compare !== c.strategy ? [c.compare] : [])];
  const generation = ++boots;
  Promise.all(names.map((n) => recordOffThread(c, n))).then(
    (recs) => {
      if (generation !== boots) return; // a newer boot started meanwhile
      config = c;
      sidesEl.innerHTML = "";
      sides = recs.map((r) => new SidePanel(r, sidesEl));
      sides.forEach((s, i) => {
        s.onPick = (sideStep) => {
          const j = timeline.sideStep[i]!.indexOf(sideStep);
          if (j >= 0) go(j);
        };
      });
      timeline = buildTimeline(recs);
      scrub.max = String(timeline.length - 1);
      const booted = recs.filter((r) => !r.skipped).map((r) => `${r.strategy} ${r.bootMs.toFixed(0)} ms`);
      status.textContent = [...problems, booted.length ? `booted: ${booted.join(", ")}` : "nothing ran"].join(
        "; ",
      );
      if (problems.length) status.className = "error";
      step = Math.min(atStep, timeline.length - 1);
      writeUrl(push);
      render();
    },
    (e: unknown) => {
      if (generation !== boots) return;
      status.className = "error";
      status.textContent = `the model refused this configuration: ${(e as Error).message}`;
    },
  );
}

function stopPlaying(): void {
  if (playing !== undefined) clearInterval(playing);
  playing = undefined;
  $<HTMLButtonElement>("play").textContent = "▶ play";
}

function togglePlay(): void {
  if (playing !== undefined) {
    stopPlaying();
    return;
  }
  const rate = Number($<HTMLSelectElement>("speed").value);
  const per = Math.max(1, Math.round(rate / 50));
  $<HTMLButtonElement>("play").textContent = "⏸ pause";
  playing = window.setInterval(
    () => {
      if (step >= timeline.length - 1) stopPlaying();
      else go(step + per);
    },
    Math.max(20, 1000 / rate),
  );
}

const phaseOf = (j: number): number => timeline.phaseStart.filter((p) => p <= j).length;
const nextPhase = (): void => {
  const next = timeline.phaseStart.find((p) => p > step);
  go(next ?? timeline.length - 1);
};
const prevPhase = (): void => {
  const cur = phaseOf(step);
  const start = timeline.phaseStart[cur - 1] ?? 0;
  go(step > start ? start : (timeline.phaseStart[cur - 2] ?? 0));
};
const nextHypercall = (): void =>
  go(findNext(step + 1, (r, s) => s > 0 && r.events[s - 1]?.kind === "hypercall"));
const nextGpadl = (): void =>
  go(
    findNext(step + 1, (r, s) => {
      const e = s > 0 ? r.events[s - 1] : undefined;
      return e !== undefined && isGpadlMessage(e);
    }),
  );

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const { config: c, problems } = fromForm();
  if (problems.length) {
    status.className = "error";
    status.textContent = problems.join("; ");
    return;
  }
  boot(c, 0, true);
});
$("first").addEventListener("click", () => go(0));
$("last").addEventListener("click", () => go(timeline.length - 1));
$("back").addEventListener("click", () => go(step - 1));
$("fwd").addEventListener("click", () => go(step + 1));
$("play").addEventListener("click", togglePlay);
$("next-phase").addEventListener("click", nextPhase);
$("prev-phase").addEventListener("click", prevPhase);
$("next-hc").addEventListener("click", nextHypercall);
$("next-gpadl").addEventListener("click", nextGpadl);
scrub.addEventListener("input", () => go(Number(scrub.value)));

document.addEventListener("keydown", (e) => {
  const t = e.target;
  if (t instanceof Element && t.closest("form") && t.tagName !== "BUTTON") return; // typing in the form
  const map = sides[0]?.map;
  const maps = (f: (m: NonNullable<typeof map>) => void) => () => {
    for (const s of sides) if (s.map) f(s.map);
  };
  const keys: Record<string, () => void> = {
    ArrowRight: () => go(step + (e.shiftKey ? 10 : 1)),
    ArrowLeft: () => go(step - (e.shiftKey ? 10 : 1)),
    PageDown: () => (e.shiftKey ? nextPhase() : go(step + 100)),
    PageUp: () => (e.shiftKey ? prevPhase() : go(step - 100)),
    Home: () => go(0),
    End: () => go(timeline.length - 1),
    " ": togglePlay,
    h: nextHypercall,
    g: nextGpadl,
    n: nextPhase,
    "+": maps((m) => m.zoom(1)),
    "=": maps((m) => m.zoom(1)),
    "-": maps((m) => m.zoom(-1)),
    "0": maps((m) => m.whole()),
  };
  const action = keys[e.key];
  if (!action || (e.key === "0" && !map)) return;
  e.preventDefault();
  action();
});

window.addEventListener("popstate", () => {
  const { config: c, step: s } = configFromQuery(location.search);
  if (config && configToQuery(c, 0) === configToQuery(config, 0)) go(s);
  else boot(c, s, false);
});
window.addEventListener("resize", () => {
  for (const s of sides) s.map?.draw();
});

const initial = configFromQuery(location.search);
boot(initial.config, initial.step, false, initial.problems);
