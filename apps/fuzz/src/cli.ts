import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import cliProgress from "cli-progress";
import { Command, InvalidArgumentError } from "commander";
import { fromJson, type SessionInput } from "./actions.js";
import { type CampaignReport, planCampaign, runTask, summarise, type TaskResult } from "./campaign.js";
import { runChurn } from "./churn.js";
import { enumerateFaults } from "./faults.js";
import { runSession } from "./session.js";
import { mergeInto, type Tally } from "./tally.js";
import { selectTargets, targetName } from "./targets.js";

function int(name: string, min: number) {
  return (text: string): number => {
    const n = Number(text.replace(/_/g, ""));
    if (!Number.isSafeInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

interface Options {
  readonly iterations: number;
  readonly seed: number;
  readonly strategy: string;
  readonly era: string;
  readonly json: boolean;
  readonly workers: number;
  readonly sessionLength: number;
  readonly faults: boolean;
  readonly churn: number;
  readonly replay?: string;
}

const program = new Command()
  .name("ivm-fuzz")
  .description(
    "Adversarial-host campaign against the isolated-guest model: fuzzed host inputs, every single-fault point, hot add/remove churn. Exits 1 on any invariant violation.",
  )
  .option("-n, --iterations <n>", "adversarial inputs (actions) to try", int("iterations", 1), 10_000)
  .option("-s, --seed <s>", "campaign seed", int("seed", 0), 1)
  .option("--strategy <name>", "a strategy from the catalog, or all", "all")
  .option("--era <era>", "address-bit, pte-bit or all", "all")
  .option("--json", "print the summary as JSON", false)
  .option(
    "-w, --workers <n>",
    "worker threads (1: run in this thread)",
    int("workers", 1),
    availableParallelism(),
  )
  .option("--session-length <n>", "actions per session (one VM boot each)", int("session-length", 1), 200)
  .option("--faults", "also enumerate every single-fault point of every selected strategy", false)
  .option("--churn <cycles>", "also run hot add/remove churn cycles per strategy", int("churn", 0), 0)
  .option("--replay <input>", "run one session input (JSON, or @file) printed by a failing campaign");

async function fuzz(o: Options, targets: ReturnType<typeof selectTargets>): Promise<CampaignReport> {
  const plan = planCampaign(o.iterations, o.seed, targets, o.sessionLength, 4);
  const bar = o.json
    ? undefined
    : new cliProgress.SingleBar(
        { format: "fuzz {bar} {value}/{total} inputs | {rate}/s | eta {eta_formatted}", etaBuffer: 20 },
        cliProgress.Presets.shades_classic,
      );
  const started = performance.now();
  bar?.start(plan.inputs, 0, { rate: 0 });
  const results: TaskResult[] = [];
  let done = 0;
  const onDone = (r: TaskResult): void => {
    results.push(r);
    done += r.inputs;
    const rate = Math.round(done / ((performance.now() - started) / 1000));
    bar?.update(done, { rate });
  };
  if (o.workers <= 1) {
    for (const t of plan.tasks) onDone(runTask(t));
  } else {
    const { default: Tinypool } = await import("tinypool");
    const pool = new Tinypool({
      filename: fileURLToPath(new URL("./worker.js", import.meta.url)),
      minThreads: o.workers,
      maxThreads: o.workers,
    });
    await Promise.all(plan.tasks.map(async (t) => onDone((await pool.run(t)) as TaskResult)));
    await pool.destroy();
  }
  bar?.stop();
  return summarise(results, {
    wallMs: performance.now() - started,
    workers: Math.max(1, o.workers),
    seed: o.seed,
    targets: targets.map(targetName),
  });
}

function printReport(r: CampaignReport): void {
  const secs = r.wallMs / 1000;
  console.log(
    `\n${r.inputs.toLocaleString("en")} adversarial inputs in ${r.sessions.toLocaleString("en")} sessions, ` +
      `${secs.toFixed(1)} s on ${r.workers} worker(s): ${Math.round(r.inputsPerSecond).toLocaleString("en")} inputs/s ` +
      `(1M inputs ≈ ${(1e6 / r.inputsPerSecond / 60).toFixed(1)} min)`,
  );
  console.log(`strategies: ${r.targets.join(", ")}; seed ${r.seed}`);
  console.log("\nrejections and outcomes by reason (every layer's counters, summed):");
  const width = Math.max(...Object.keys(r.counters).map((k) => k.length), 10);
  for (const [k, v] of Object.entries(r.counters))
    console.log(`  ${k.padEnd(width)} ${v.toLocaleString("en")}`);
  console.log(`\ninvariant violations: ${r.violations}`);
  for (const f of r.failures) {
    console.log(`\nFAILED (fast-check seed ${f.seed}, path "${f.path}"):`);
    for (const v of f.violations) console.log(`  ${v.check} at ${v.step}: ${v.detail}`);
    console.log(`  shrunk input (replay with --replay '<json>'):\n  ${f.input}`);
  }
}

async function main(): Promise<void> {
  program.parse();
  const o = program.opts<Options>();
  if (o.replay !== undefined) {
    const text = o.replay.startsWith("@") ? readFileSync(o.replay.slice(1), "utf8") : o.replay;
    const r = runSession(fromJson<SessionInput>(text));
    console.log(JSON.stringify({ actions: r.actions, violations: r.violations }, null, 2));
    process.exitCode = r.violations.length > 0 ? 1 : 0;
    return;
  }
  const targets = selectTargets(o.strategy, o.era);
  const report = await fuzz(o, targets);
  let violations = report.violations;
  const extra: Record<string, unknown> = {};
  if (o.faults) {
    const tally: Tally = new Map();
    const t0 = performance.now();
    const summaries = targets.map((t) => enumerateFaults(t, tally));
    extra.faults = {
      wallMs: performance.now() - t0,
      targets: summaries.map(({ failures, ...s }) => ({ ...s, failures: failures.length })),
      counters: Object.fromEntries(tally),
      failures: summaries.flatMap((s) => s.failures.map((f) => ({ target: s.target, ...f }))),
    };
    violations += summaries.reduce((n, s) => n + s.failures.length, 0);
  }
  if (o.churn > 0) {
    const t0 = performance.now();
    const runs = targets.map((t) => runChurn(t, o.churn, o.seed));
    const tally: Tally = new Map();
    for (const r of runs) mergeInto(tally, r.tally);
    extra.churn = {
      wallMs: performance.now() - t0,
      targets: runs.map(({ tally: _t, violations: v, ...r }) => ({ ...r, violations: v.length })),
      failures: runs.flatMap((r) => r.violations.map((v) => ({ target: r.target, ...v }))),
    };
    violations += runs.reduce((n, r) => n + r.violations.length, 0);
  }
  if (o.json) console.log(JSON.stringify({ ...report, ...extra }, null, 2));
  else {
    printReport(report);
    if (extra.faults !== undefined)
      console.log("\nsingle-fault enumeration:", JSON.stringify(extra.faults, null, 2));
    if (extra.churn !== undefined) console.log("\nchurn:", JSON.stringify(extra.churn, null, 2));
  }
  process.exitCode = violations > 0 ? 1 : 0;
}

await main();
