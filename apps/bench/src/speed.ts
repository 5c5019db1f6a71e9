import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { formatBytes, STRATEGIES, strategyByName, strategyEras } from "@ivm/catalog";
import { ALL_TARGETS, DEFAULT_SESSION_LENGTH, planCampaign, runTask, SESSIONS_PER_TASK } from "@ivm/fuzz";
import { GuestMemory, UPTIME_LEVELS } from "@ivm/memory";
import { RX_RNDIS_OVERHEAD } from "@ivm/netvsp";
import { type Nic, runTraffic, Vm } from "@ivm/vm";
import { Bench } from "tinybench";
import { type ResultRecord, runInfo } from "./records.js";
import { num, type TableData } from "./render.js";

export interface SpeedOptions {
  readonly seed: number;
  /** tinybench's time budget per task, in ms. */
  readonly time: number;
  /** Guest sizes (bytes) whose construction is timed. */
  readonly guests: readonly number[];
  readonly strategies?: readonly string[];
  /** Only these sections (run in SPEED_SECTIONS order whatever the order given); default all. */
  readonly sections?: readonly SpeedSection[];
  /** Called before each step, for a progress bar. */
  readonly onStep?: (label: string) => void;
}

export const TX_FRAMES: readonly number[] = [64, 1500, 9000, 65536];
/** One receive section (1728 B) less the RNDIS packet header: the largest frame host → guest without RSC. */
export const RX_MAX_FRAME: number = 1728 - RX_RNDIS_OVERHEAD;
export const RX_FRAMES: readonly number[] = [64, 1500, RX_MAX_FRAME];
const PAGE = 4096;
/** Pages per call of the page-memcpy baseline task. */
const PAGE_BATCH = 1024;
/** The fuzz throughput batch: 20 sessions of 200 adversarial inputs over every strategy and era. */
export const FUZZ_INPUTS = 4000;
/** shared_gpa_boundary of the memory-only construction case: bit 46, above any guest the CLI accepts. */
const VTOM = 2 ** 46;

/**
 * Mean latency (ms) of one call of `fn`, from tinybench, after a warmup of half the time budget (and at
 * least `warmup` calls). Every timed task, the memcpy baselines included, is warmed the same way, so a
 * case is not charged for the JIT compiling code it happens to run first in its isolate (with two calls
 * of warmup, the first strategy of the device section paid 17, 7, 5.5 … ms per add + remove over its
 * first blocks of 20 before settling at ≈ 3 ms, and strategies doing the same work differed 2×).
 */
async function timeIt(
  fn: () => void,
  o: { time: number; iterations: number; warmup?: number; beforeAll?: () => void },
): Promise<number> {
  const bench = new Bench({
    time: o.time,
    iterations: o.iterations,
    warmupIterations: o.warmup ?? 2,
    warmupTime: o.time / 2,
    throws: true,
  });
  bench.add("task", fn, o.beforeAll ? { beforeAll: o.beforeAll } : {});
  await bench.run();
  const result = bench.tasks[0]!.result;
  if (result.state !== "completed") throw new Error(`benchmark ${result.state}`);
  return result.latency.mean;
}

/** How many alternating slices timePaired cuts each task's time budget into. */
const PAIRED_SLICES = 10;

/**
 * Mean latencies (ms) of `fn` and of its memcpy `baseline`, measured in alternation: both are warmed
 * (as timeIt warms), then each runs in PAIRED_SLICES tinybench runs of a tenth of the budget, baseline
 * and case in turn, and each mean is its total time over its calls. A shared host moves a memcpy's speed
 * 2–3× within seconds (the L3 and the memory bus are other tenants' too), so a baseline measured once,
 * before the cases, can be off by that much for any one of them; measured in turn with the case, both see
 * the same machine and the ratio keeps only what the case itself costs.
 */
async function timePaired(
  fn: () => void,
  baseline: () => void,
  o: { time: number; iterations: number; baselineIterations: number; warmup?: number },
): Promise<{ mean: number; baselineMean: number }> {
  const total = { fn: 0, baseline: 0 };
  const calls = { fn: 0, baseline: 0 };
  // Warmed as timeIt warms (half the budget each, at least `warmup` calls); that run's one timed call
  // of each is counted like the slices'.
  const slice = async (time: number, iterations: number, warmupTime = 0): Promise<void> => {
    const bench = new Bench({
      time,
      iterations,
      warmupIterations: warmupTime > 0 ? (o.warmup ?? 2) : 0,
      warmupTime,
      throws: true,
    });
    bench.add("baseline", baseline);
    bench.add("fn", fn);
    await bench.run();
    for (const key of ["baseline", "fn"] as const) {
      const r = bench.getTask(key)!.result;
      if (r.state !== "completed") throw new Error(`benchmark ${r.state}`);
      total[key] += r.latency.mean * r.latency.samplesCount;
      calls[key] += r.latency.samplesCount;
    }
  };
  await slice(0, 1, o.time / 2);
  for (let k = 0; k < PAIRED_SLICES; k++) await slice(o.time / PAIRED_SLICES, 1);
  // Too few calls in the budget for a mean: both topped up, still in turn.
  if (calls.fn < o.iterations || calls.baseline < o.baselineIterations)
    await slice(0, Math.max(o.iterations - calls.fn, o.baselineIterations - calls.baseline, 1));
  return { mean: total.fn / calls.fn, baselineMean: total.baseline / calls.baseline };
}

/** memcpy of `frames` copies of `bytes` bytes (Uint8Array.set) into consecutive places of a 16 MiB area. */
function memcpyTask(bytes: number, frames: number): () => void {
  const src = new Uint8Array(bytes).map((_, i) => i * 31);
  // Touched once here, so that the timed copies do not include the first-touch page faults of a fresh
  // allocation (each section's isolate makes its own).
  const dst = new Uint8Array(16 * 2 ** 20 + bytes).fill(1);
  let at = 0;
  return () => {
    for (let i = 0; i < frames; i++) {
      dst.set(src, at);
      at = (at + bytes) % (16 * 2 ** 20);
    }
  };
}

/** A full collection, repeated so that freed ArrayBuffers' backing stores are really released. */
function collectGarbage(): () => Promise<void> {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  return async () => {
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
}

const footprint = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

/** Frames per timed batch: about 1–4 MiB of data per iteration. */
const batchFrames = (bytes: number): number => Math.max(64, Math.min(2048, Math.round(2 ** 21 / bytes)));

/**
 * The sections of `speed`, in run order. Each runs in its own fresh isolate (a worker thread) and
 * measures its own memcpy baseline there: the construction cases' multi-GiB typed arrays and forced
 * collections leave V8 in a state in which later hot loops compile worse (see the README, "How the
 * numbers are made"), so no section may measure another's residue.
 */
export const SPEED_SECTIONS = ["construction", "device", "datapath", "buddy", "fuzz"] as const;
export type SpeedSection = (typeof SPEED_SECTIONS)[number];

/** What a section needs: plain data, so it can cross to a worker thread. */
export type SpeedSectionOptions = Omit<SpeedOptions, "onStep">;

/** memcpy of a 4 KiB page in this isolate: the section's baseline record and its ns per page. */
async function pageBaseline(
  o: SpeedSectionOptions,
  section: SpeedSection,
  run: ResultRecord["run"],
): Promise<{ record: ResultRecord; nsPerPage: number }> {
  const pageMs = (await timeIt(memcpyTask(PAGE, PAGE_BATCH), { time: o.time, iterations: 64 })) / PAGE_BATCH;
  const nsPerPage = pageMs * 1e6;
  return {
    nsPerPage,
    record: {
      bench: "speed",
      key: { case: "memcpy", bytes: PAGE, section },
      metrics: { nsPerPage, bytesPerSecond: PAGE / (pageMs / 1000) },
      timing: {},
      run,
    },
  };
}

/**
 * One section of the speed suite, in this thread: its own memcpy baseline first, then its cases.
 * `step` is called before each case (for a progress bar).
 */
export async function runSpeedSection(
  section: SpeedSection,
  o: SpeedSectionOptions,
  step: (label: string) => void = () => {},
  run: ResultRecord["run"] = runInfo(),
): Promise<ResultRecord[]> {
  step(`memcpy baseline (${section})`);
  const { record, nsPerPage } = await pageBaseline(o, section, run);
  const cases = await SECTION_RUNNERS[section](o, nsPerPage, step, run);
  return [record, ...cases];
}

type SectionRunner = (
  o: SpeedSectionOptions,
  nsPerPage: number,
  step: (label: string) => void,
  run: ResultRecord["run"],
) => Promise<ResultRecord[]>;

const base = STRATEGIES[0]!; // (1) vmalloc-remap: the approach that landed, used for the data path

/** Guest construction time and heap + external bytes per page: Vm.boot and GuestMemory alone. */
const constructionSection: SectionRunner = async (o, nsPerPage, step, run) => {
  const out: ResultRecord[] = [];
  const gc = collectGarbage();
  /**
   * Times `build` (1–3 runs) and measures the heap + external bytes of what it built (held alive through
   * the second collection), per guest page.
   */
  const construction = async (bytes: number, build: () => { pages: number; guest: object }) => {
    const reps = bytes <= 8 * 2 ** 30 ? 3 : 1;
    let total = 0;
    let heap = 0;
    for (let i = 0; i < reps; i++) {
      await gc();
      const before = footprint();
      const t0 = performance.now();
      let built: { pages: number; guest: object } | null = build();
      total += performance.now() - t0;
      await gc();
      heap += footprint() - before;
      if (built.pages === 0) throw new Error("empty guest");
      built = null;
    }
    const ms = total / reps;
    const pages = bytes / PAGE;
    const nsPerGuestPage = (ms * 1e6) / pages;
    return {
      ms,
      nsPerPage: nsPerGuestPage,
      heapBytesPerPage: heap / reps / pages,
      xMemcpyPage: nsPerGuestPage / nsPerPage,
    };
  };
  for (const bytes of o.guests) {
    step(`construct ${formatBytes(bytes)} guest`);
    const metrics = await construction(bytes, () => {
      const vm = Vm.boot({ memory: bytes, era: base.eras[0]!, seed: o.seed, strategy: base });
      return { pages: vm.memory.buddy.totalPages, guest: vm };
    });
    out.push({
      bench: "speed",
      key: { case: "construct", memory: bytes, strategy: base.name, era: base.eras[0]! },
      metrics,
      timing: { xMemcpyPage: "lower", heapBytesPerPage: "lower" },
      run,
    });
    // The memory layer alone (GuestMemory: physical pages, buddy, kmalloc, vmalloc, page tables, MMU).
    const memoryOnly = await construction(bytes, () => {
      const memory = new GuestMemory({ bytes, sharedGpaBoundary: VTOM, vtomMode: base.eras[0]! });
      return { pages: memory.buddy.totalPages, guest: memory };
    });
    out.push({
      bench: "speed",
      key: { case: "construct-memory", memory: bytes, era: base.eras[0]! },
      metrics: memoryOnly,
      timing: { xMemcpyPage: "lower", heapBytesPerPage: "lower" },
      run,
    });
  }
  return out;
};

/** Device add + remove per buffer page, every strategy and era. */
const deviceSection: SectionRunner = async (o, _nsPerPage, step, run) => {
  const out: ResultRecord[] = [];
  const page = memcpyTask(PAGE, PAGE_BATCH);
  for (const { entry: s, era } of strategyEras(o.strategies ? { names: o.strategies } : {})) {
    step(`device add + remove: ${s.name} ${era}`);
    const vm = Vm.boot({ memory: 2 * 2 ** 30, era, seed: o.seed, strategy: s });
    let pages = 0;
    const timed = await timePaired(
      () => {
        const added = vm.addNic();
        if (!added.ok) throw added.error;
        pages = (added.nic.device.rxBuffer?.pages ?? 0) + (added.nic.device.txBuffer?.pages ?? 0);
        vm.removeNic(added.nic);
      },
      page,
      { time: o.time, iterations: 5, baselineIterations: 64 },
    );
    const ms = timed.mean;
    const memcpyNsPerPage = (timed.baselineMean * 1e6) / PAGE_BATCH;
    const usPerPage = (ms * 1000) / pages;
    out.push({
      bench: "speed",
      key: { case: "device-add-remove", strategy: s.name, era, seed: o.seed, memory: 2 * 2 ** 30 },
      metrics: {
        msPerAddRemove: ms,
        bufferPages: pages,
        usPerPage,
        memcpyNsPerPage,
        xMemcpyPage: (usPerPage * 1000) / memcpyNsPerPage,
      },
      timing: { xMemcpyPage: "lower" },
      run,
    });
  }
  return out;
};

/** Queues of the data path's multi-queue case (vCPUs as many), and the frame sizes it runs. */
export const MQ_QUEUES = 4;
export const MQ_FRAMES: readonly number[] = [1500];

/**
 * The data path end to end, every frame verified by its receiver, against a memcpy of the same frames:
 * a single-queue NIC at every size, then a NIC of MQ_QUEUES queues (one vCPU each; frames spread by the
 * flow hash on both sides) at MQ_FRAMES. The multi-queue records carry `queues` in their key.
 */
const datapathSection: SectionRunner = async (o, _nsPerPage, step, run) => {
  const out: ResultRecord[] = [];
  const configs = [
    { queues: 1, tx: TX_FRAMES, rx: RX_FRAMES },
    { queues: MQ_QUEUES, tx: MQ_FRAMES, rx: MQ_FRAMES },
  ];
  for (const config of configs) {
    const multi = config.queues > 1;
    const vm = Vm.boot({
      memory: 2 * 2 ** 30,
      era: base.eras[0]!,
      seed: o.seed,
      strategy: base,
      ...(multi ? { cpus: config.queues } : {}),
    });
    const added = vm.addNic(multi ? { queues: config.queues } : {});
    if (!added.ok) throw added.error;
    const nic: Nic = added.nic;
    for (const [direction, sizes] of [
      ["tx", config.tx],
      ["rx", config.rx],
    ] as const) {
      for (const bytes of sizes) {
        step(`data path ${direction} ${bytes} B${multi ? `, ${config.queues} queues` : ""}`);
        out.push(await datapathCase(o, vm, nic, direction, bytes, multi ? config.queues : undefined, run));
      }
    }
    vm.removeNic(nic);
  }
  return out;
};

async function datapathCase(
  o: SpeedSectionOptions,
  vm: Vm,
  nic: Nic,
  direction: "tx" | "rx",
  bytes: number,
  queues: number | undefined,
  run: ResultRecord["run"],
): Promise<ResultRecord> {
  const frames = batchFrames(bytes);
  let verified = 0;
  let moved = 0;
  const timed = await timePaired(
    () => {
      const hostBefore = nic.host.counters.txFramesVerified;
      const t = runTraffic(vm, nic, {
        packets: frames,
        sizes: [bytes],
        rxShare: direction === "rx" ? 1 : 0,
        seed: o.seed,
      });
      moved += frames;
      verified +=
        direction === "tx"
          ? Math.min(nic.host.counters.txFramesVerified - hostBefore, t.txFrames)
          : t.rxVerified;
    },
    memcpyTask(bytes, frames),
    { time: o.time, iterations: 5, baselineIterations: 64, warmup: 1 },
  );
  const simMs = timed.mean;
  const copyMs = timed.baselineMean;
  const packetsPerSecond = frames / (simMs / 1000);
  return {
    bench: "speed",
    key: {
      case: "datapath",
      direction,
      frameBytes: bytes,
      ...(queues !== undefined ? { queues } : {}),
      strategy: base.name,
      era: base.eras[0]!,
      seed: o.seed,
    },
    metrics: {
      packetsPerSecond,
      bytesPerSecond: packetsPerSecond * bytes,
      memcpyBytesPerSecond: (frames * bytes) / (copyMs / 1000),
      xMemcpy: simMs / copyMs,
      framesVerified: verified,
      framesMoved: moved,
      verified: verified === moved,
    },
    timing: { xMemcpy: "lower" },
    run,
  };
}

/** Buddy allocator operations on a 4 GiB guest: alloc then free in shuffled order. */
const buddySection: SectionRunner = async (o, _nsPerPage, step, run) => {
  const out: ResultRecord[] = [];
  const memory = new GuestMemory({ bytes: 4 * 2 ** 30 });
  const page = memcpyTask(PAGE, PAGE_BATCH);
  const weights = UPTIME_LEVELS.heavy.orderWeights;
  let state = o.seed >>> 0 || 1;
  const rand = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const pickOrder = (): number => {
    let r = rand() * totalWeight;
    for (let order = 0; order < weights.length; order++) {
      r -= weights[order]!;
      if (r < 0) return order;
    }
    return 0;
  };
  const patterns = [
    { pattern: "order-0", orders: Array.from({ length: 1024 }, () => 0) },
    { pattern: "orders 0-6 (uptime weights)", orders: Array.from({ length: 1024 }, pickOrder) },
    { pattern: "order-10", orders: Array.from({ length: 64 }, () => 10) },
  ];
  for (const p of patterns) {
    step(`buddy ${p.pattern}`);
    const freeOrder = p.orders.map((_, i) => i);
    for (let i = freeOrder.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [freeOrder[i], freeOrder[j]] = [freeOrder[j]!, freeOrder[i]!];
    }
    const pfns = new Array<number>(p.orders.length);
    const timed = await timePaired(
      () => {
        for (let i = 0; i < p.orders.length; i++) {
          const pfn = memory.buddy.allocPages(p.orders[i]!, { tag: "bench" });
          if (pfn === null) throw new Error("buddy allocator ran out");
          pfns[i] = pfn;
        }
        for (const i of freeOrder) memory.buddy.freePages(pfns[i]!, p.orders[i]!);
      },
      page,
      { time: o.time, iterations: 64, baselineIterations: 64 },
    );
    const ops = p.orders.length * 2;
    const nsPerOp = (timed.mean * 1e6) / ops;
    const memcpyNsPerPage = (timed.baselineMean * 1e6) / PAGE_BATCH;
    out.push({
      bench: "speed",
      key: { case: "buddy", pattern: p.pattern, memory: 4 * 2 ** 30, seed: o.seed },
      metrics: {
        opsPerSecond: 1e9 / nsPerOp,
        nsPerOp,
        memcpyNsPerPage,
        xMemcpyPage: nsPerOp / memcpyNsPerPage,
      },
      timing: { xMemcpyPage: "lower" },
      run,
    });
  }
  return out;
};

/**
 * The fuzz campaign as `ivm-fuzz --workers 1` runs it: a fixed seeded batch of adversarial inputs,
 * every invariant checked after every one. A short batch of another seed warms the JIT first.
 */
const fuzzSection: SectionRunner = async (o, nsPerPage, step, run) => {
  step("fuzz campaign (one thread)");
  const fuzzBatch = (inputs: number, seed: number) =>
    planCampaign(inputs, seed, ALL_TARGETS, DEFAULT_SESSION_LENGTH, SESSIONS_PER_TASK).tasks;
  for (const t of fuzzBatch(DEFAULT_SESSION_LENGTH, o.seed + 1)) runTask(t);
  let inputs = 0;
  let sessions = 0;
  let violations = 0;
  const t0 = performance.now();
  for (const t of fuzzBatch(FUZZ_INPUTS, o.seed)) {
    const r = runTask(t);
    inputs += r.inputs;
    sessions += r.sessions;
    violations += r.failure?.violations.length ?? 0;
  }
  const fuzzMs = performance.now() - t0;
  const nsPerInput = (fuzzMs * 1e6) / inputs;
  return [
    {
      bench: "speed",
      key: { case: "fuzz", inputs: FUZZ_INPUTS, sessionLength: DEFAULT_SESSION_LENGTH, seed: o.seed },
      metrics: {
        inputs,
        sessions,
        violations,
        inputsPerSecond: inputs / (fuzzMs / 1000),
        usPerInput: nsPerInput / 1000,
        xMemcpyPage: nsPerInput / nsPerPage,
      },
      timing: { xMemcpyPage: "lower" },
      run,
    },
  ];
};

const SECTION_RUNNERS: Record<SpeedSection, SectionRunner> = {
  construction: constructionSection,
  device: deviceSection,
  datapath: datapathSection,
  buddy: buddySection,
  fuzz: fuzzSection,
};

/**
 * The simulator's own speed, as ratios against an in-process memcpy measured in the same isolate:
 * guest construction time and memory per page, device add + remove per buffer page, the data path end
 * to end (every frame verified by its receiver), buddy allocator operations and fuzz throughput. Each
 * section runs in a fresh worker thread (`runIsolated`, given by the CLI), one after the other; without
 * it (tests, from the sources) the sections run in this thread.
 */
export async function runSpeed(
  o: SpeedOptions,
  runIsolated?: (
    section: SpeedSection,
    o: SpeedSectionOptions,
    step: (label: string) => void,
    run: ResultRecord["run"],
  ) => Promise<ResultRecord[]>,
): Promise<ResultRecord[]> {
  const run = runInfo();
  const step = o.onStep ?? (() => {});
  const { onStep: _, ...plain } = o;
  const out: ResultRecord[] = [];
  for (const section of selectedSections(o))
    out.push(...(await (runIsolated ?? runSpeedSection)(section, plain, step, run)));
  return out;
}

/** The sections a run takes, in SPEED_SECTIONS order. */
function selectedSections(o: Pick<SpeedOptions, "sections">): SpeedSection[] {
  const wanted = o.sections;
  return wanted === undefined ? [...SPEED_SECTIONS] : SPEED_SECTIONS.filter((s) => wanted.includes(s));
}

/** How many steps runSpeed takes (for the progress bar): each section's baseline, then its cases. */
export function speedSteps(o: Pick<SpeedOptions, "guests" | "strategies" | "sections">): number {
  const cases: Record<SpeedSection, number> = {
    construction: o.guests.length,
    device: strategyEras(o.strategies ? { names: o.strategies } : {}).length,
    datapath: TX_FRAMES.length + RX_FRAMES.length + 2 * MQ_FRAMES.length,
    buddy: 3,
    fuzz: 1,
  };
  let steps = 0;
  for (const section of selectedSections(o)) steps += 1 + cases[section];
  return steps;
}

const mb = (bytesPerSecond: number): string => num(bytesPerSecond / 1e6, 1);
const x = (v: number): string => `${num(v, v < 0.1 ? 3 : v < 10 ? 2 : 1)}×`;

export function speedTables(records: readonly ResultRecord[]): TableData[] {
  const of = (c: string) => records.filter((r) => r.bench === "speed" && r.key.case === c);
  const m = (r: ResultRecord, k: string): number => Number(r.metrics[k]);
  // Each section measured its own baseline in its own isolate (older results files have one for all).
  const baseline = (section: SpeedSection, pairedCases = false): string => {
    const memcpy = of("memcpy").find((r) => r.key.section === section || r.key.section === undefined);
    if (!memcpy) return "";
    const at = `${num(m(memcpy, "nsPerPage"), 0)} ns (${num(m(memcpy, "bytesPerSecond") / 1e9, 2)} GB/s)`;
    return pairedCases
      ? `Before its cases, this section's isolate timed a 4 KiB memcpy (Uint8Array.set) at ${at}.`
      : `Baseline: memcpy (Uint8Array.set) of a 4 KiB page in this section's isolate, ${at}; "× memcpy" = the simulator's time ÷ that of copying the same bytes.`;
  };
  // Device and buddy cases time a page memcpy in turn with themselves (older results files lack it).
  const paired = (r: ResultRecord): string =>
    r.metrics.memcpyNsPerPage === undefined ? "—" : num(m(r, "memcpyNsPerPage"), 0);
  const pairedNote =
    "\"× memcpy of a page\" = the case's time ÷ a 4 KiB memcpy timed in turn with it, in ten alternating slices (its ns per page in the memcpy column): a shared host moves a memcpy's speed 2–3× within seconds, and both see the same moments.";
  const constructionTable = (c: string): Pick<TableData, "head" | "rows"> => ({
    head: ["guest", "ms", "ns per page", "heap + external B per page", "× memcpy of a page"],
    rows: of(c).map((r) => [
      formatBytes(Number(r.key.memory)),
      num(m(r, "ms"), 0),
      num(m(r, "nsPerPage"), 2),
      num(m(r, "heapBytesPerPage"), 2),
      x(m(r, "xMemcpyPage")),
    ]),
  });
  const tables: TableData[] = [
    {
      title: "Device add + remove (2 GiB guest, default buffers)",
      head: [
        "strategy",
        "era",
        "ms per add+remove",
        "buffer pages",
        "µs per buffer page",
        "memcpy ns per page",
        "× memcpy of a page",
      ],
      rows: of("device-add-remove").map((r) => [
        `(${strategyByName(String(r.key.strategy))?.approach ?? "?"}) ${String(r.key.strategy)}`,
        String(r.key.era),
        num(m(r, "msPerAddRemove"), 1),
        num(m(r, "bufferPages")),
        num(m(r, "usPerPage"), 2),
        paired(r),
        x(m(r, "xMemcpyPage")),
      ]),
      notes: [pairedNote, baseline("device", true)],
    },
    {
      title: "Data path, end to end and verified (strategy (1), address-bit era)",
      head: ["direction", "frame", "queues", "packets/s", "MB/s", "memcpy MB/s", "× memcpy", "verified"],
      rows: of("datapath").map((r) => [
        r.key.direction === "tx" ? "guest → host" : "host → guest",
        formatBytes(Number(r.key.frameBytes)),
        String(r.key.queues ?? 1),
        num(Math.round(m(r, "packetsPerSecond"))),
        mb(m(r, "bytesPerSecond")),
        mb(m(r, "memcpyBytesPerSecond")),
        x(m(r, "xMemcpy")),
        r.metrics.verified === true ? `${num(m(r, "framesVerified"))}/${num(m(r, "framesMoved"))}` : "NO",
      ]),
      notes: [
        "memcpy MB/s: the same frames copied into a 16 MiB area, timed in turn with the case in ten alternating slices; \"× memcpy\" = the case's time ÷ that copy's.",
        "guest → host: the driver's send path (section copy or swiotlb-bounced page buffers), the host's NVSP/RNDIS parse and byte-for-byte check of every frame.",
        `host → guest: stops at ${RX_MAX_FRAME} B, one receive section (1728 B) less the RNDIS header: the model has no RSC, so larger frames cannot arrive.`,
        `${MQ_QUEUES} queues: a NIC with the primary channel and ${MQ_QUEUES - 1} vRSS sub-channels on a ${MQ_QUEUES}-vCPU guest; the flow hash spreads the frames over the queues both ways (the model runs them on one thread).`,
      ],
    },
    {
      title: "Guest construction (Vm.boot: memory, hypervisor, swiotlb, VMBus; strategy (1))",
      ...constructionTable("construct"),
      notes: [baseline("construction")],
    },
    {
      title:
        "Memory layer construction (GuestMemory alone: physical pages, buddy, kmalloc, vmalloc, page tables)",
      ...constructionTable("construct-memory"),
    },
    {
      title: "Buddy allocator (4 GiB, alloc then free in shuffled order)",
      head: ["pattern", "ops/s", "ns per op", "memcpy ns per page", "× memcpy of a page"],
      rows: of("buddy").map((r) => [
        String(r.key.pattern),
        num(Math.round(m(r, "opsPerSecond"))),
        num(m(r, "nsPerOp"), 1),
        paired(r),
        x(m(r, "xMemcpyPage")),
      ]),
      notes: [pairedNote, baseline("buddy", true)],
    },
    {
      title: "Fuzz campaign, one thread (every strategy and era, invariants after every input)",
      head: ["inputs", "sessions", "violations", "inputs/s", "µs per input", "× memcpy of a page"],
      rows: of("fuzz").map((r) => [
        num(m(r, "inputs")),
        num(m(r, "sessions")),
        num(m(r, "violations")),
        num(Math.round(m(r, "inputsPerSecond"))),
        num(m(r, "usPerInput"), 0),
        x(m(r, "xMemcpyPage")),
      ]),
      notes: [
        `A fixed batch of the run's seed: sessions of ${DEFAULT_SESSION_LENGTH} adversarial inputs, each session a booted VM, a recorded NIC add, the inputs and an honest recovery, as \`ivm-fuzz --workers 1\` runs them; the worker pool multiplies it by the threads it gets.`,
        baseline("fuzz"),
      ],
    },
  ];
  // A run of some sections (--section) prints only their tables.
  return tables.filter((t) => t.rows.length > 0);
}
