import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { STRATEGIES } from "@ivm/catalog";
import {
  type CliIo,
  EXIT,
  each,
  parseFault,
  parseKernel,
  parseShard,
  processIo,
  readInput,
  type Shard,
  shardName,
  shardOf,
  toolCommand,
  writableOutput,
} from "@ivm/catalog/cli";
import type { Era } from "@ivm/hypercall";
import { getProfile, PROFILE_NAMES, type ProfileName } from "@ivm/kernel";
import type { UptimeLevel } from "@ivm/memory";
import {
  NETVSC_DEFAULT_RX,
  NETVSC_DEFAULT_TX,
  NVSP_PROTOCOL_VERSION,
  ringParamMax,
} from "@ivm/netvsc-protocol";
import { FAULT_NAMES, type FaultName } from "@ivm/vm";
import { type Command, CommanderError, InvalidArgumentError, Option } from "commander";
import pkg from "../package.json" with { type: "json" };
import { fragmentationChart, renderSvg } from "./chart.js";
import { compareCases, compareRank, compareTable } from "./compare.js";
import { fragmentationCases, fragmentationRank, fragmentationTable, UPTIMES } from "./fragmentation.js";
import { historyCases, historyTable } from "./history.js";
import { intIn, memorySize, percent, seedList, sizeList } from "./options.js";
import { ERAS } from "./order.js";
import { finish, loadMerged, type OutputOptions, type RecordsFile } from "./output.js";
import { CHART_FILE, defaultOutFile } from "./paths.js";
import { DEFAULT_JOBS, progressBar, runTasks } from "./pool.js";
import { type BenchName, parseRecords, type ResultRecord } from "./records.js";
import { REPORT_DEFAULTS, runReport } from "./report.js";
import { runSpeed, SPEED_SECTIONS, type SpeedSection, speedSteps, speedTables } from "./speed.js";
import { speedIsolation } from "./speed-pool.js";

const NAMES = STRATEGIES.map((s) => s.name);
const MAX = ringParamMax(NVSP_PROTOCOL_VERSION.V61, 1728, 6144);
const GiB = 2 ** 30;

export type Io = CliIo;

const EXIT_CODES = `
Exit codes: 0 ok, 1 regression against --baseline, 2 bad arguments or an unreadable input file
(one line on stderr, before anything runs).`;

/**
 * A results file (JSON lines, or --json output) read and checked while the arguments are parsed, so a
 * missing or malformed --baseline or --merge file stops the run before it starts.
 */
function recordsFile(bench: BenchName): (file: string) => RecordsFile {
  return (file) => {
    const records = readInput(file, (text) => parseRecords(text, file)).filter((r) => r.bench === bench);
    if (records.length === 0) throw new InvalidArgumentError(`${file}: no ${bench} records`);
    return { file, records };
  };
}

/** The flags every subcommand has: output format, results file, merge, baseline. */
function common(cmd: Command, bench: BenchName): Command {
  return cmd
    .option("--json", "print one JSON document ({ bench, records }) instead of tables")
    .option("--markdown", "print Markdown tables")
    .addOption(
      new Option("--out <file>", "append the run's JSON lines to this file")
        .default(defaultOutFile(bench), `apps/bench/results/${bench}.jsonl`)
        .argParser(writableOutput),
    )
    .option("--no-out", "do not save the run")
    .addOption(
      new Option(
        "--merge <files...>",
        "print the merged table of earlier runs' or shards' results files (runs nothing)",
      ).argParser(each(recordsFile(bench))),
    )
    .addOption(
      new Option(
        "--baseline <file>",
        "compare with an earlier run (JSON lines or --json output); exit 1 on a regression",
      ).argParser(recordsFile(bench)),
    )
    .addOption(
      new Option("--threshold <percent>", "how much worse a timing may get before it is a regression")
        .default(10)
        .argParser(percent),
    );
}

const jobsOption = (): Option =>
  new Option("--jobs <n>", "worker threads for the sweep")
    .default(DEFAULT_JOBS, "all cores")
    .argParser(intIn(1, 256, "--jobs"));
const shardOption = (): Option =>
  new Option("--shard <i/n>", "run only shard i of n of the sweep (1-based; merge the shards with --merge)")
    .argParser(parseShard)
    .conflicts("merge");
const seedOption = (what: string): Option =>
  new Option("--seed <n>", what).default(1).argParser(intIn(0, 2 ** 31 - 1, "--seed"));
const strategyOption = (): Option =>
  new Option("--strategy <names...>", "only these strategies (default: all)").choices(NAMES);

interface CommonFlags extends OutputOptions {
  readonly jobs: number;
  readonly strategy?: string[];
  readonly shard?: Shard;
}

/** The sweep's cases, or shard i of n of them (a deterministic, disjoint slice; see shardOf). */
function slice<T>(cases: readonly T[], shard: Shard | undefined, io: Io): T[] {
  const mine = shardOf(cases, shard);
  if (shard) io.err(`shard ${shardName(shard)}: ${mine.length} of ${cases.length} cases\n`);
  return mine;
}

export function buildProgram(io: Io, setCode: (code: number) => void): Command {
  const write = (t: string) => io.out(`${t}\n`);
  const program = toolCommand(
    "ivm-bench",
    pkg.version,
    "Measures the seed's netvsc buffer strategies against each other on the modelled Hyper-V isolated guest, and the simulator's own speed.",
    io,
  ).addHelpText(
    "after",
    `
Examples:
  pnpm bench compare                          every strategy in each era, default buffers
  pnpm bench compare --rx-sections 2000 --tx-sections 64 --memory 8GiB --uptime moderate
  pnpm bench compare --strategy vmalloc-remap page-blocks --without-isolation --markdown
  pnpm bench fragmentation --seeds 1-10       sweep uptime levels and seeds, write the SVG chart
  pnpm bench speed                            the simulator's own speed, as ratios to memcpy
  pnpm bench compare --out a.jsonl --strategy vmalloc-remap && pnpm bench compare --merge a.jsonl b.jsonl
  pnpm bench speed --baseline apps/bench/results/speed.jsonl --threshold 15
  pnpm bench report                           regenerate the README tables and the chart
  pnpm bench fragmentation --seeds 1-100 --shard 3/8 --out shard-3.jsonl   one of 8 batch jobs
  pnpm bench fragmentation --merge shard-*.jsonl                          the 8 shards' table and chart
${EXIT_CODES}`,
  );

  common(
    program
      .command("compare")
      .description("the seed's criteria as numbers for every strategy in each era it supports")
      .addOption(strategyOption())
      .addOption(new Option("--era <eras...>", "only these eras").choices(ERAS))
      .addOption(
        new Option(
          "--kernel <versions...>",
          `boot these kernels (${PROFILE_NAMES.join(", ")}), kernel-exact: each strategy on each kernel it was written for`,
        ).argParser(each(parseKernel)),
      )
      .addOption(
        new Option("--fault <name>", `a named fault in every guest (${FAULT_NAMES.join(", ")})`).argParser(
          parseFault,
        ),
      )
      .option("--without-isolation", "also measure each strategy in a guest without isolation")
      .addOption(
        new Option(
          "--rx-sections <n>",
          "receive sections (1728 B each), measured beside the default",
        ).argParser(intIn(10, MAX.rxMaxPending, "--rx-sections")),
      )
      .addOption(
        new Option("--tx-sections <n>", "send sections (6144 B each), measured beside the default").argParser(
          intIn(10, MAX.txMaxPending, "--tx-sections"),
        ),
      )
      .addOption(new Option("--memory <size>", "guest memory").default(2 * GiB, "2GiB").argParser(memorySize))
      .addOption(
        new Option(
          "--cpus <n>",
          "guest vCPUs (1..64): the NIC is multi-queue, the kernel's default count",
        ).argParser(intIn(1, 64, "--cpus")),
      )
      .addOption(
        new Option(
          "--queues <n>",
          "channels the NIC asks for (ethtool -L combined, 1..64, at most --cpus)",
        ).argParser(intIn(1, 64, "--queues")),
      )
      .addOption(
        new Option("--uptime <level>", "aging before the device is added").choices(UPTIMES).default("none"),
      )
      .addOption(seedOption("seed of aging and traffic"))
      .addOption(
        new Option("--packets <n>", "frames in the traffic mix for bytes copied per packet")
          .default(2000)
          .argParser(intIn(1, 1_000_000, "--packets")),
      )
      .addOption(shardOption())
      .addOption(jobsOption())
      .addHelpText(
        "after",
        `
Examples:
  ivm-bench compare --strategy vmalloc-remap page-blocks --memory 8GiB --uptime moderate
  ivm-bench compare --strategy vtom-pte --kernel 6.4 6.9 6.12 --fault reencrypt-fail
  ivm-bench compare --shard 1/2 --out a.jsonl && ivm-bench compare --shard 2/2 --out b.jsonl
  ivm-bench compare --merge a.jsonl b.jsonl --markdown      the same table as one unsharded run
  ivm-bench compare --baseline apps/bench/results/compare.jsonl
${EXIT_CODES}`,
      ),
    "compare",
  ).action(
    async (
      o: CommonFlags & {
        era?: Era[];
        kernel?: ProfileName[];
        fault?: FaultName;
        withoutIsolation?: boolean;
        rxSections?: number;
        txSections?: number;
        memory: number;
        uptime: UptimeLevel;
        seed: number;
        packets: number;
        cpus?: number;
        queues?: number;
      },
    ) => {
      let records: ResultRecord[];
      if (o.queues !== undefined && o.queues > (o.cpus ?? 2))
        throw new CommanderError(
          2,
          "bench.empty",
          `--queues ${o.queues} is more than the guest's ${o.cpus ?? 2} CPUs (netvsc caps channels at the CPU count)`,
        );
      if (o.merge) records = loadMerged(o.merge, compareRank);
      else {
        const sizes = [{ rxSections: NETVSC_DEFAULT_RX, txSections: NETVSC_DEFAULT_TX }];
        const user = {
          rxSections: o.rxSections ?? NETVSC_DEFAULT_RX,
          txSections: o.txSections ?? NETVSC_DEFAULT_TX,
        };
        if (user.rxSections !== NETVSC_DEFAULT_RX || user.txSections !== NETVSC_DEFAULT_TX) sizes.push(user);
        const cases = compareCases({
          ...(o.strategy ? { strategies: o.strategy } : {}),
          ...(o.era ? { eras: o.era } : {}),
          ...(o.kernel ? { kernels: o.kernel } : {}),
          ...(o.fault ? { fault: o.fault } : {}),
          isolation: o.withoutIsolation ? [true, false] : [true],
          sizes,
          memory: o.memory,
          uptime: o.uptime,
          seed: o.seed,
          packets: o.packets,
          ...(o.cpus !== undefined ? { cpus: o.cpus } : {}),
          ...(o.queues !== undefined ? { queues: o.queues } : {}),
        });
        // a strategy asked to run on a kernel it was not written for: one line saying why
        const skipped: string[] = [];
        for (const kernel of o.kernel ?? [])
          for (const entry of STRATEGIES.filter((e) => !o.strategy || o.strategy.includes(e.name))) {
            const why = entry.unsupportedOn(getProfile(kernel));
            if (why !== null) skipped.push(why);
          }
        const offEra = (o.kernel ?? []).find((k) => o.era && !o.era.includes(getProfile(k).era));
        if (offEra !== undefined)
          throw new CommanderError(
            2,
            "bench.empty",
            `kernel ${offEra} runs in the ${getProfile(offEra).era} era, not ${o.era?.join(", ")}`,
          );
        if (cases.length === 0)
          throw new CommanderError(2, "bench.empty", skipped[0] ?? "no strategy supports that era");
        for (const why of skipped) io.err(`not run: ${why}\n`);
        records = await runTasks(
          slice(cases, o.shard, io).map((c) => ({ kind: "compare", case: c })),
          o.jobs,
          "compare",
        );
      }
      setCode(finish("compare", records, (r) => [compareTable(r)], o, write));
    },
  );

  common(
    program
      .command("fragmentation")
      .description("device-add success, order-10 fallbacks and pages by order over uptime levels and seeds")
      .addOption(strategyOption())
      .addOption(
        new Option("--uptime <levels...>", "uptime levels to sweep").choices(UPTIMES).default([...UPTIMES]),
      )
      .addOption(
        new Option("--seeds <list>", "seeds, e.g. 1,2,3 or 1-10")
          .default([1, 2, 3], "1-3")
          .argParser(seedList),
      )
      .addOption(new Option("--memory <size>", "guest memory").default(2 * GiB, "2GiB").argParser(memorySize))
      .addOption(
        new Option("--chart <file>", "where to write the SVG chart")
          .default(CHART_FILE, "docs/bench/fragmentation.svg")
          .argParser(writableOutput),
      )
      .option("--no-chart", "do not render the chart")
      .addOption(shardOption())
      .addOption(jobsOption())
      .addHelpText(
        "after",
        `
Examples:
  ivm-bench fragmentation --seeds 1-10 --uptime moderate heavy
  ivm-bench fragmentation --seeds 1-100 --shard "$((JOB_COMPLETION_INDEX + 1))/8" --no-chart --out shard.jsonl
  ivm-bench fragmentation --merge shard-*.jsonl              one table and chart, as one run
${EXIT_CODES}`,
      ),
    "fragmentation",
  ).action(
    async (
      o: CommonFlags & { uptime: UptimeLevel[]; seeds: number[]; memory: number; chart: string | false },
    ) => {
      const records = o.merge
        ? loadMerged(o.merge, fragmentationRank)
        : await runTasks(
            slice(
              fragmentationCases({
                ...(o.strategy ? { strategies: o.strategy } : {}),
                uptimes: o.uptime,
                seeds: o.seeds,
                memory: o.memory,
              }),
              o.shard,
              io,
            ).map((c) => ({ kind: "fragmentation", case: c })),
            o.jobs,
            "fragmentation",
          );
      setCode(finish("fragmentation", records, (r) => [fragmentationTable(r)], o, write));
      if (o.chart) {
        mkdirSync(dirname(o.chart), { recursive: true });
        writeFileSync(o.chart, await renderSvg(fragmentationChart(records)));
        io.err(`chart: ${o.chart}\n`);
      }
    },
  );

  common(
    program
      .command("speed")
      .description("the simulator's own speed, as ratios against an in-process memcpy (runs serially)")
      .addOption(strategyOption())
      .addOption(seedOption("seed of the traffic and the allocation patterns"))
      .addOption(
        new Option("--time <ms>", "tinybench time budget per task")
          .default(1000)
          .argParser(intIn(10, 60_000, "--time")),
      )
      .addOption(
        new Option("--guests <sizes>", "guest sizes whose construction is timed")
          .default([4 * GiB, 64 * GiB, 256 * GiB, 1024 * GiB], "4GiB,64GiB,256GiB,1TiB")
          .argParser(sizeList),
      )
      .addOption(
        new Option(
          "--section <names...>",
          "only these sections (default: all), in their usual order",
        ).choices(SPEED_SECTIONS),
      )
      .addHelpText(
        "after",
        `
Examples:
  ivm-bench speed --time 200 --guests 4GiB              a quick run
  ivm-bench speed --section datapath --time 500         the data path alone (under 20 s)
  ivm-bench speed --baseline apps/bench/results/speed.jsonl --threshold 15
${EXIT_CODES}`,
      ),
    "speed",
  ).action(
    async (
      o: OutputOptions & {
        strategy?: string[];
        seed: number;
        time: number;
        guests: number[];
        section?: SpeedSection[];
      },
    ) => {
      let records: ResultRecord[];
      if (o.merge)
        records = loadMerged(o.merge, () => []); // speed keeps the files' order;
      else {
        const options = {
          seed: o.seed,
          time: o.time,
          guests: o.guests,
          ...(o.strategy ? { strategies: o.strategy } : {}),
          ...(o.section ? { sections: o.section } : {}),
        };
        const bar = progressBar("speed", speedSteps(options));
        try {
          records = await runSpeed(
            { ...options, onStep: (task) => bar.increment({ task }) },
            speedIsolation(),
          );
        } finally {
          bar.stop();
        }
      }
      setCode(finish("speed", records, speedTables, o, write));
    },
  );

  common(
    program
      .command("history")
      .description(
        "the history as it happened: approach (1) on 5.17 beside approach (5) on 6.4 and later, clean and with reencrypt-fail",
      )
      .addOption(
        new Option("--memory <size>", "guest memory")
          .default(REPORT_DEFAULTS.memory, "2GiB")
          .argParser(memorySize),
      )
      .addOption(seedOption("seed of the traffic"))
      .addOption(
        new Option("--packets <n>", "frames in the traffic mix")
          .default(REPORT_DEFAULTS.packets)
          .argParser(intIn(1, 1_000_000, "--packets")),
      )
      .addOption(jobsOption())
      .addHelpText("after", EXIT_CODES),
    "compare",
  ).action(async (o: CommonFlags & { memory: number; seed: number; packets: number }) => {
    const records = o.merge
      ? loadMerged(o.merge, compareRank)
      : await runTasks(
          historyCases(o).map((c) => ({ kind: "compare", case: c })),
          o.jobs,
          "history",
        );
    setCode(finish("compare", records, (r) => [historyTable(r)], o, write));
  });

  program
    .command("report")
    .description(
      "run compare, fragmentation and speed with their defaults; rewrite the README sections and the chart",
    )
    .addOption(
      new Option("--skip <parts...>", "leave these sections as they are").choices([
        "compare",
        "history",
        "fragmentation",
        "speed",
      ]),
    )
    .addOption(jobsOption())
    .addHelpText("after", EXIT_CODES)
    .action(async (o: { skip?: string[]; jobs: number }) => {
      await runReport({ skip: new Set(o.skip ?? []), jobs: o.jobs, log: (t) => io.err(`${t}\n`) });
    });

  return program;
}

/** Runs the CLI; resolves to the exit code (2 for bad arguments, as commander reports them). */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  let code = 0;
  const program = buildProgram(io, (c) => {
    code = Math.max(code, c);
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "bench.empty") io.err(`error: ${e.message}\n`);
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    throw e;
  }
  return code;
}
