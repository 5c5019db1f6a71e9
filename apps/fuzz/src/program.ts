import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { STRATEGIES } from "@ivm/catalog";
import {
  type CliIo,
  EXIT,
  each,
  parseFault,
  parseKernel,
  parseShard,
  processIo as processStreams,
  readInput,
  type Shard,
  shardName,
  shardOf,
  toolCommand,
  writableOutput,
} from "@ivm/catalog/cli";
import { PROFILE_NAMES, type ProfileName } from "@ivm/kernel";
import { FAULT_NAMES, type FaultName } from "@ivm/vm";
import cliProgress from "cli-progress";
import { type Command, CommanderError, InvalidArgumentError, Option } from "commander";
import pkg from "../package.json" with { type: "json" };
import type { SessionInput } from "./actions.js";
import {
  DEFAULT_SESSION_LENGTH,
  planCampaign,
  runTask,
  SESSIONS_PER_TASK,
  summarise,
  type TaskResult,
} from "./campaign.js";
import { runChurn } from "./churn.js";
import { enumerateFaults } from "./faults.js";
import { parseSessionInput } from "./replay.js";
import { runSession } from "./session.js";
import {
  asSummary,
  type FuzzConfig,
  type FuzzSummary,
  findingsOf,
  mergeSummaries,
  sortFailures,
  type TargetSection,
  totalViolations,
} from "./summary.js";
import { mergeInto, type Tally } from "./tally.js";
import { selectTargets, type Target, targetName } from "./targets.js";

/** Where the tool writes; tests pass their own. */
export interface Io extends CliIo {
  /** Draw a progress bar on stderr (only when stderr is a terminal). */
  readonly progress: boolean;
}

const processIo: Io = { ...processStreams, progress: process.stderr.isTTY === true };

function int(name: string, min: number, max: number) {
  return (text: string): number => {
    const n = Number(text.replace(/_/g, ""));
    if (text.trim() === "" || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

const NAMES = STRATEGIES.map((s) => s.name);

function strategyArg(text: string): string {
  if (text !== "all" && !NAMES.includes(text))
    throw new InvalidArgumentError(`unknown strategy; choose all or ${NAMES.join(", ")}`);
  return text;
}

/** `--replay '<json>'` or `--replay @file`, read and checked while the arguments are parsed. */
function replayArg(text: string): SessionInput {
  if (text.startsWith("@")) return readInput(text.slice(1), parseSessionInput);
  try {
    return parseSessionInput(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function summaryArg(file: string): { file: string; summary: FuzzSummary } {
  return { file, summary: readInput(file, (text) => asSummary(JSON.parse(text))) };
}

interface Options {
  readonly iterations: number;
  readonly seed: number;
  readonly strategy: string;
  readonly era: string;
  readonly kernel?: ProfileName;
  readonly exact: boolean;
  readonly fault?: FaultName;
  readonly json: boolean;
  readonly workers: number;
  readonly sessionLength: number;
  readonly faults: boolean;
  readonly churn: number;
  readonly replay?: SessionInput;
  readonly shard?: Shard;
  readonly out?: string;
  readonly merge?: readonly { file: string; summary: FuzzSummary }[];
}

const HELP = `
Examples:
  ivm-fuzz -n 1000000                              every strategy and era, one worker per core
  ivm-fuzz -n 100000 --seed 7 --strategy vtom-pte --json
  ivm-fuzz -n 10000 --faults --churn 100            plus every single-fault point and churn cycles
  ivm-fuzz --replay @failure.json                   re-run the shrunk input a failing campaign printed
  ivm-fuzz -n 1000000 --shard 3/8 --out shard-3.json   one of 8 batch jobs (a disjoint slice)
  ivm-fuzz --merge shard-*.json                     the 8 shards' totals, as one run would give

--json prints (and --out writes) one object: { "tool": "ivm-fuzz", "version", "config", "shard",
"inputs", "sessions", "wallMs", "inputsPerSecond", "workers", "seed", "targets", "counters",
"violations", "failures", "faults"?, "churn"? } (see apps/fuzz/README.md). Progress goes to stderr,
and only when stderr is a terminal.

Exit codes:
  0  no invariant violation
  1  a violation was found (the campaign, a fault point, churn, a replayed input or merged shards)
  2  a bad argument or an unreadable --replay/--merge file, or a bad --out path (one line on
     stderr, before anything runs)`;

export function buildProgram(io: Io = processIo): Command {
  return toolCommand(
    "ivm-fuzz",
    pkg.version,
    "Adversarial-host campaign against the isolated-guest model: fuzzed host inputs, every single-fault point, hot add/remove churn. Exits 1 on any invariant violation.",
    io,
  )
    .option(
      "-n, --iterations <n>",
      "adversarial inputs (actions) to try",
      int("iterations", 1, Number.MAX_SAFE_INTEGER),
      10_000,
    )
    .option("-s, --seed <s>", "campaign seed", int("seed", 0, 2 ** 32 - 1), 1)
    .addOption(
      new Option("--strategy <name>", "a strategy from the catalog, or all")
        .default("all")
        .argParser(strategyArg),
    )
    .addOption(
      new Option("--era <era>", "address-bit, pte-bit or all")
        .choices(["address-bit", "pte-bit", "all"])
        .default("all"),
    )
    .addOption(
      new Option(
        "--kernel <version>",
        `boot this kernel (${PROFILE_NAMES.join(", ")}) with every strategy written for it; findings by id`,
      ).argParser(parseKernel),
    )
    .option(
      "--exact",
      "with --kernel: run the kernel's own logic for the host values no kernel checks (ring indices, the rep count), reporting what it does as findings",
      false,
    )
    .addOption(
      new Option(
        "--fault <name>",
        `arm a named fault in every session (${FAULT_NAMES.join(", ")})`,
      ).argParser(parseFault),
    )
    .option("--json", "print the summary as one JSON object (below)", false)
    .option(
      "-w, --workers <n>",
      "worker threads (1: run in this thread)",
      int("workers", 1, 256),
      availableParallelism(),
    )
    .option(
      "--session-length <n>",
      "actions per session (one VM boot each)",
      int("session-length", 1, 100_000),
      DEFAULT_SESSION_LENGTH,
    )
    .option("--faults", "also enumerate every single-fault point of every selected strategy", false)
    .option(
      "--churn <cycles>",
      "also run hot add/remove churn cycles per strategy",
      int("churn", 0, 1_000_000),
      0,
    )
    .addOption(
      new Option("--replay <input>", "run one session input (JSON, or @file) printed by a failing campaign")
        .argParser(replayArg)
        .conflicts(["shard", "merge"]),
    )
    .addOption(
      new Option(
        "--shard <i/n>",
        "run only shard i of n (1-based): a disjoint slice of the campaign's tasks and of the fault and churn targets",
      ).argParser(parseShard),
    )
    .addOption(
      new Option("--out <file>", "also write the JSON summary here (for --merge)").argParser(writableOutput),
    )
    .addOption(
      new Option(
        "--merge <files...>",
        "join the --out summaries of shards 1..n of one campaign (runs nothing)",
      )
        .argParser(each(summaryArg))
        .conflicts(["shard"]),
    )
    .addHelpText("after", HELP);
}

async function campaign(o: Options, targets: readonly Target[], io: Io): Promise<FuzzSummary> {
  const plan = planCampaign(o.iterations, o.seed, targets, o.sessionLength, SESSIONS_PER_TASK, o.fault);
  const tasks = shardOf(plan.tasks, o.shard);
  const bar = io.progress
    ? new cliProgress.SingleBar(
        {
          format: "fuzz {bar} {value}/{total} inputs | {rate}/s | eta {eta_formatted}",
          etaBuffer: 20,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const started = performance.now();
  bar?.start(
    tasks.reduce((n, t) => n + t.sessions * t.sessionLength, 0),
    0,
    { rate: 0 },
  );
  const results: TaskResult[] = [];
  let done = 0;
  const onDone = (r: TaskResult): void => {
    results.push(r);
    done += r.inputs;
    bar?.update(done, { rate: Math.round(done / ((performance.now() - started) / 1000)) });
  };
  if (o.workers <= 1 || tasks.length <= 1) {
    for (const t of tasks) onDone(runTask(t));
  } else {
    const { default: Tinypool } = await import("tinypool");
    const pool = new Tinypool({
      filename: fileURLToPath(new URL("./worker.js", import.meta.url)),
      minThreads: o.workers,
      maxThreads: o.workers,
    });
    await Promise.all(tasks.map(async (t) => onDone((await pool.run(t)) as TaskResult)));
    await pool.destroy();
  }
  bar?.stop();
  const report = summarise(results, {
    wallMs: performance.now() - started,
    workers: Math.max(1, o.workers),
    seed: o.seed,
    targets: targets.map(targetName),
  });
  const config: FuzzConfig = {
    iterations: o.iterations,
    seed: o.seed,
    strategy: o.strategy,
    era: o.era,
    sessionLength: o.sessionLength,
    faults: o.faults,
    churn: o.churn,
    kernel: o.kernel ?? null,
    exact: o.exact,
    fault: o.fault ?? null,
  };
  return {
    tool: "ivm-fuzz",
    version: pkg.version,
    config,
    shard: o.shard ?? null,
    ...report,
    findings: findingsOf(report.counters),
    failures: sortFailures(report.failures),
  };
}

function faultSection(targets: readonly Target[]): TargetSection {
  const tally: Tally = new Map();
  const t0 = performance.now();
  const summaries = targets.map((t) => enumerateFaults(t, tally));
  return {
    wallMs: performance.now() - t0,
    targets: summaries.map(({ failures, ...s }) => ({ ...s, failures: failures.length })),
    counters: Object.fromEntries(tally),
    failures: summaries.flatMap((s) => s.failures.map((f) => ({ target: s.target, ...f }))),
  };
}

function churnSection(targets: readonly Target[], cycles: number, seed: number): TargetSection {
  const t0 = performance.now();
  const runs = targets.map((t) => runChurn(t, cycles, seed));
  const tally: Tally = new Map();
  for (const r of runs) mergeInto(tally, r.tally);
  return {
    wallMs: performance.now() - t0,
    targets: runs.map(({ tally: _t, violations: v, ...r }) => ({ ...r, violations: v.length })),
    failures: runs.flatMap((r) => r.violations.map((v) => ({ target: r.target, ...v }))),
  };
}

function printSummary(r: FuzzSummary, write: (line: string) => void): void {
  const secs = r.wallMs / 1000;
  const rate = Math.max(r.inputsPerSecond, 0);
  write(
    `\n${r.inputs.toLocaleString("en")} adversarial inputs in ${r.sessions.toLocaleString("en")} sessions, ` +
      `${secs.toFixed(1)} s on ${r.workers} worker(s): ${Math.round(rate).toLocaleString("en")} inputs/s` +
      (rate > 0 ? ` (1M inputs ≈ ${(1e6 / rate / 60).toFixed(1)} min)` : ""),
  );
  write(
    `strategies: ${r.targets.join(", ")}; kernel ${r.config.kernel ?? "each era's (5.17, 6.9)"}${r.config.fault ? `; fault ${r.config.fault}` : ""}; seed ${r.seed}${r.shard ? `; shard ${shardName(r.shard)}` : ""}`,
  );
  write("\nrejections and outcomes by reason (every layer's counters, summed):");
  // findings have their own section below
  const shown = Object.entries(r.counters).filter(([k]) => !k.startsWith("finding"));
  const width = Math.max(...shown.map(([k]) => k.length), 10);
  for (const [k, v] of shown) write(`  ${k.padEnd(width)} ${v.toLocaleString("en")}`);
  const findings = Object.entries(r.findings);
  write(`\nfindings (what the booted kernel does; never a failure): ${findings.length === 0 ? "none" : ""}`);
  for (const [id, t] of findings)
    write(
      `  ${id.padEnd(32)} ${t.count.toLocaleString("en")} in ${t.sessions.toLocaleString("en")} session(s)`,
    );
  write(`\ninvariant violations: ${r.violations}`);
  for (const f of r.failures) {
    write(`\nFAILED (fast-check seed ${f.seed}, path "${f.path}"):`);
    for (const v of f.violations) write(`  ${v.check} at ${v.step}: ${v.detail}`);
    write(`  shrunk input (replay with --replay '<json>'):\n  ${f.input}`);
  }
  if (r.faults !== undefined) write(`\nsingle-fault enumeration: ${JSON.stringify(r.faults, null, 2)}`);
  if (r.churn !== undefined) write(`\nchurn: ${JSON.stringify(r.churn, null, 2)}`);
}

async function run(o: Options, merged: FuzzSummary | undefined, io: Io): Promise<number> {
  const write = (line: string): void => io.out(`${line}\n`);
  if (o.replay !== undefined) {
    const r = runSession(o.replay);
    write(JSON.stringify({ actions: r.actions, violations: r.violations }, null, 2));
    return r.violations.length > 0 ? EXIT.found : EXIT.ok;
  }
  let summary: FuzzSummary;
  if (merged) {
    summary = merged;
  } else {
    const targets = selectTargets(o.strategy, o.era, o.kernel, o.exact);
    const base = await campaign(o, targets, io);
    const mine = shardOf(targets, o.shard);
    summary = {
      ...base,
      ...(o.faults ? { faults: faultSection(mine) } : {}),
      ...(o.churn > 0 ? { churn: churnSection(mine, o.churn, o.seed) } : {}),
    };
  }
  if (o.out) writeFileSync(o.out, `${JSON.stringify(summary, null, 2)}\n`);
  if (o.json) write(JSON.stringify(summary, null, 2));
  else printSummary(summary, write);
  return totalViolations(summary) > 0 ? EXIT.found : EXIT.ok;
}

/** Runs the CLI; resolves to the exit code (0 clean, 1 a violation, 2 bad arguments or input files). */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const program = buildProgram(io);
  try {
    program.parse([...argv], { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    throw e;
  }
  const o = program.opts<Options>();
  // What the arguments select, and whether merged files belong together, are usage errors too.
  let merged: FuzzSummary | undefined;
  try {
    if (o.merge) merged = mergeSummaries(o.merge);
    else if (o.replay === undefined) {
      if (o.exact && o.kernel === undefined) throw new Error("--exact needs --kernel");
      selectTargets(o.strategy, o.era, o.kernel, o.exact);
    }
  } catch (e) {
    io.err(`error: ${(e as Error).message}\n`);
    return EXIT.usage;
  }
  return run(o, merged, io);
}
