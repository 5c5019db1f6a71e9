import { writeFileSync } from "node:fs";
import { STRATEGIES, type StrategyEntry } from "@ivm/catalog";
import { EXIT, outputColumns, parseFault, parseKernel, wrapText, writableOutput } from "@ivm/catalog/cli";
import type { Era } from "@ivm/hypercall";
import { getProfile, PROFILE_NAMES, type ProfileName } from "@ivm/kernel";
import { UPTIME_LEVELS, type UptimeLevel } from "@ivm/memory";
import { NETVSC_DEFAULT_RX, NETVSC_DEFAULT_TX } from "@ivm/netvsc-protocol";
import { FAULT_NAMES, type FaultName } from "@ivm/vm";
import { SingleBar } from "cli-progress";
import { Command, InvalidArgumentError, Option } from "commander";
import pkg from "../package.json" with { type: "json" };
import { agedGuestView } from "./pagetypeinfo.js";
import { renderReport } from "./report.js";
import { type DemoDocument, type DemoOptions, type DemoRun, plan, runKernel, runOne } from "./run.js";
import { formatBytes, parseCount, parseSize } from "./size.js";
import { comparisonTable, findingLines, transposedTables } from "./table.js";

/**
 * The demo's default guest: 8 vCPUs, the size of Azure's common general-purpose VMs (D8s, E8s). With
 * it the NIC is multi-queue as on Azure (8 channels on both era kernels), so the comparison's per-NIC
 * figures are those of a NIC a real VM has; `--cpus 1` gives the single-channel NIC.
 */
const DEFAULT_CPUS = 8;

const EXAMPLES = `
Examples:
  ivm-demo                                   every strategy in its own era, 2 GiB aged guest
  ivm-demo --strategy page-blocks --uptime heavy
  ivm-demo --era pte-bit                      strategies written for the other era are reported, not run
  ivm-demo --kernel 5.17 --strategy vmalloc-remap --fault reencrypt-fail
                                             Linux 5.17 frees memory it could not re-encrypt: findings
  ivm-demo --kernel 6.12 --strategy vtom-pte --fault reencrypt-fail --json
                                             the fixed kernel leaks those pages instead: no finding
  ivm-demo --memory 8GiB --packets 20000 --seed 7 --report /tmp/ivm.html
  ivm-demo --isolation off --json             one JSON document on stdout (see below)
  ivm-demo --queues 8 --cpus 8 --strategy vmalloc-remap --json
                                             a multi-queue NIC: 8 channels, each with its own rings
  ivm-demo --cpus 1                          a 1-vCPU guest: the single-channel NIC
  ivm-demo --wide | less -S                   the full table, one row per strategy (about 230 columns)
  ivm-demo --uptime heavy --pagetypeinfo      also /proc/buddyinfo and /proc/pagetypeinfo of the aged guest
  COLUMNS=80 ivm-demo --no-report > out.txt   fit 80 columns when stdout is not a terminal

Output: a table per metric and strategy, as wide as the terminal (COLUMNS, or 100 when stdout is not
a terminal); --wide for one row per strategy. --json prints one object:
  { "tool": "ivm-demo", "version": "x.y.z",
    "config": { "strategies": [names], "era": "each" | "address-bit" | "pte-bit", "memory": bytes,
                "rxSections": n, "txSections": n, "uptime": level, "packets": n, "seed": n,
                "isolation": bool, "fault": name | null, "cpus": n, "queues"?: n },
    "kernel": { "name", "era", "hardened" } | null (each strategy on its era's kernel),
    "strategies": [ one object per (strategy, era) run, fields in apps/demo/README.md ],
    "findings": [ { "id", "profile", "invariant", "what", "where", "strategy", "era" } ] }
Progress goes to stderr, and only when stderr is a terminal.

Exit codes:
  0  the comparison ran (a strategy that cannot run in the chosen era is reported, not an error)
  2  a bad argument, or a report file that cannot be written (one line on stderr; nothing runs)`;

function parseStrategy(text: string): readonly StrategyEntry[] {
  if (text === "all") return STRATEGIES;
  const names = text.split(",");
  const found = names.map((n) => STRATEGIES.find((s) => s.name === n.trim()));
  if (found.some((s) => s === undefined)) {
    throw new InvalidArgumentError(
      `unknown strategy; choose all or ${STRATEGIES.map((s) => s.name).join(", ")}`,
    );
  }
  return found as StrategyEntry[];
}

function parseOnOff(text: string): boolean {
  if (text === "on") return true;
  if (text === "off") return false;
  throw new InvalidArgumentError('expected "on" or "off"');
}

interface CliOptions {
  strategy: readonly StrategyEntry[];
  era?: Era;
  kernel?: ProfileName;
  hardened?: boolean;
  fault?: FaultName;
  memory: number;
  rxSections?: number;
  txSections?: number;
  uptime: UptimeLevel;
  packets: number;
  seed: number;
  isolation: boolean;
  json?: boolean;
  wide?: boolean;
  pagetypeinfo?: boolean;
  report: string | false;
  cpus: number;
  queues?: number;
}

/** Where the demo writes, and how wide its terminal is (tests pass their own). */
export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly columns: number;
  /** ASCII table borders: stdout is not a terminal. */
  readonly ascii: boolean;
  /** Draw a progress bar on stderr (only when stderr is a terminal). */
  readonly progress: boolean;
}

const processIo = (): Io => ({
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  columns: outputColumns(),
  ascii: process.stdout.isTTY !== true,
  progress: process.stderr.isTTY === true,
});

export function buildProgram(io: Pick<Io, "out" | "err"> = processIo()): Command {
  return new Command()
    .name("ivm-demo")
    .version(pkg.version, "-V, --version", "print the version and exit")
    .description(
      "Boot a modelled Hyper-V isolated guest, age its memory, add a synthetic NIC with each netvsc buffer strategy in turn, move traffic, remove it, and compare what each did to memory.",
    )
    .addOption(
      new Option("--strategy <name|all>", "strategy to run, or a comma-separated list")
        .default(STRATEGIES, "all")
        .argParser(parseStrategy),
    )
    .addOption(
      new Option(
        "--era <era>",
        "address-bit (Linux 5.16–6.3) or pte-bit (6.4+); default: each strategy's own",
      ).choices(["address-bit", "pte-bit"]),
    )
    .addOption(
      new Option(
        "--kernel <version>",
        `the kernel every strategy boots (${PROFILE_NAMES.join(", ")}); its era is the run's`,
      ).argParser(parseKernel),
    )
    .option(
      "--hardened",
      "with --kernel: keep the lab's stricter checks of host values the kernel trusts (reported as such)",
    )
    .addOption(
      new Option("--fault <name>", `a named fault in every guest (${FAULT_NAMES.join(", ")})`).argParser(
        parseFault,
      ),
    )
    .addOption(
      new Option("--memory <size>", "guest memory, e.g. 512MiB, 8GiB")
        .default(2 * 2 ** 30, "2GiB")
        .argParser(parseSize),
    )
    .addOption(
      new Option(
        "--rx-sections <n>",
        "receive sections (ethtool rx), clamped by netvsc to [10, 18811]",
      ).argParser(parseCount(1, 100_000)),
    )
    .addOption(
      new Option(
        "--tx-sections <n>",
        "send sections (ethtool tx), clamped by netvsc to [10, 2560]",
      ).argParser(parseCount(1, 100_000)),
    )
    .addOption(
      new Option(
        "--cpus <n>",
        "guest vCPUs (1..64); the host offers one queue per vCPU and netvsc opens the kernel's default count of channels, capped by the CPUs. The default is a common Azure size (D8s/E8s), on which every kernel profile opens 8 channels; --cpus 1 for a single-channel NIC",
      )
        .default(DEFAULT_CPUS)
        .argParser(parseCount(1, 64)),
    )
    .addOption(
      new Option(
        "--queues <n>",
        "channels the NIC asks for (ethtool -L combined, 1..64), at most --cpus; default the kernel's count",
      ).argParser(parseCount(1, 64)),
    )
    .addOption(
      new Option("--uptime <level>", "how long Linux has been running before the NIC is added")
        .choices(Object.keys(UPTIME_LEVELS))
        .default("moderate"),
    )
    .addOption(
      new Option("--packets <n>", "frames of traffic per strategy (both directions)")
        .default(4000)
        .argParser(parseCount(0, 10_000_000)),
    )
    .addOption(
      new Option("--seed <n>", "seed of the aging workload and the traffic")
        .default(1)
        .argParser(parseCount(0, 2 ** 31 - 1)),
    )
    .addOption(
      new Option("--isolation <on|off>", "an SNP vTOM guest, or a VM without isolation")
        .default(true, "on")
        .argParser(parseOnOff),
    )
    .option(
      "--json",
      "print one JSON document { tool, version, config, strategies: [...] } instead of the table",
    )
    .option("--wide", "one row per strategy and era, every metric a column (about 230 columns)")
    .option(
      "--pagetypeinfo",
      'also print the aged guest\'s /proc/buddyinfo and /proc/pagetypeinfo before the NIC add (JSON: a "pagetypeinfo" string)',
    )
    .addOption(
      new Option("--report <file.html>", "write the HTML report here")
        .default("ivm-demo-report.html")
        .argParser(writableOutput),
    )
    .option("--no-report", "do not write the HTML report")
    .addHelpText("after", EXAMPLES)
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
}

export function main(argv: readonly string[], io: Io = processIo()): number {
  const program = buildProgram(io);
  try {
    program.parse(argv, { from: "user" });
  } catch (e) {
    const err = e as { code?: string; exitCode?: number };
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return EXIT.ok;
    return EXIT.usage;
  }
  const o = program.opts<CliOptions>();
  const kernelEra = o.kernel !== undefined ? getProfile(o.kernel).era : undefined;
  if (kernelEra !== undefined && o.era !== undefined && o.era !== kernelEra) {
    io.err(`error: kernel ${o.kernel} runs in the ${kernelEra} era; drop --era or choose ${kernelEra}\n`);
    return EXIT.usage;
  }
  if (o.hardened && o.kernel === undefined) {
    io.err("error: --hardened needs --kernel (the --era shorthand's kernels are hardened already)\n");
    return EXIT.usage;
  }
  if (o.queues !== undefined && o.queues > o.cpus) {
    io.err(
      `error: --queues ${o.queues} is more than the guest's ${o.cpus} CPU${o.cpus === 1 ? "" : "s"} (netvsc caps channels at the CPU count)\n`,
    );
    return EXIT.usage;
  }
  const demo: DemoOptions = {
    strategies: o.strategy,
    era: kernelEra ?? o.era ?? "each",
    ...(o.kernel !== undefined ? { kernel: o.kernel, hardened: o.hardened === true } : {}),
    ...(o.fault !== undefined ? { fault: o.fault } : {}),
    memory: o.memory,
    ...(o.rxSections !== undefined ? { rxSections: o.rxSections } : {}),
    ...(o.txSections !== undefined ? { txSections: o.txSections } : {}),
    uptime: o.uptime,
    packets: o.packets,
    seed: o.seed,
    isolation: o.isolation,
    picture: o.report !== false,
    cpus: o.cpus,
    ...(o.queues !== undefined ? { queues: o.queues } : {}),
  };
  const steps = plan(demo);
  const bar = io.progress
    ? new SingleBar({ format: "{bar} {value}/{total} {step}", hideCursor: true, stream: process.stderr })
    : null;
  bar?.start(steps.length, 0, { step: "" });
  const runs: DemoRun[] = [];
  for (const [i, { entry, era }] of steps.entries()) {
    bar?.update(i, { step: `${entry.name} (${era})` });
    runs.push(runOne(entry, era, demo));
  }
  bar?.update(steps.length, { step: "done" });
  bar?.stop();
  const results = runs.map((r) => r.result);
  const first = steps[0];
  const view = o.pagetypeinfo && first ? agedGuestView(first.entry, first.era, demo) : undefined;
  const findings = runs.flatMap((r) => r.findings);
  const kernel =
    demo.era === "each"
      ? null
      : (() => {
          const k = runKernel(demo, demo.era);
          return { name: k.name, era: k.era, hardened: k.hardened };
        })();
  const rx = demo.rxSections ?? NETVSC_DEFAULT_RX;
  const tx = demo.txSections ?? NETVSC_DEFAULT_TX;
  if (o.json) {
    const doc: DemoDocument = {
      tool: "ivm-demo",
      version: pkg.version,
      config: {
        strategies: o.strategy.map((s) => s.name),
        era: demo.era,
        memory: o.memory,
        rxSections: rx,
        txSections: tx,
        uptime: o.uptime,
        packets: o.packets,
        seed: o.seed,
        isolation: o.isolation,
        fault: o.fault ?? null,
        cpus: o.cpus,
        ...(o.queues !== undefined ? { queues: o.queues } : {}),
      },
      kernel,
      strategies: results,
      ...(view !== undefined ? { pagetypeinfo: view } : {}),
      findings,
    };
    io.out(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    const width = Math.max(40, io.columns);
    const kernelText = kernel
      ? `Linux ${kernel.name} (${kernel.era}${kernel.hardened ? ", hardened" : ""})`
      : "each era's kernel (5.17 address-bit, 6.9 pte-bit, hardened)";
    const faultText = o.fault ? `; fault ${o.fault}` : "";
    const guest = `Guest: ${formatBytes(o.memory)}, ${o.isolation ? "SNP with vTOM at bit 46" : "no isolation"}, ${kernelText}, uptime "${o.uptime}", seed ${o.seed}; ${o.cpus} vCPU${o.cpus === 1 ? "" : "s"}; NIC with ${rx} rx / ${tx} tx sections${faultText}.`;
    const legend =
      "mappings: live vmalloc mappings of each buffer; metadata: what the strategy keeps besides the data pages; temp peak: its largest temporary allocation; 4 MiB blocks: order-10 data blocks; fallbacks: order-10 allocations that failed.";
    const table = o.wide ? comparisonTable(results, io) : transposedTables(results, width, io);
    io.out(
      `${wrapText(guest, width)}\n${view !== undefined ? `\n${view}\n` : ""}${table}\n${wrapText(legend, width)}\n${findingLines(runs, width)}`,
    );
  }
  if (o.report !== false) {
    const html = renderReport({
      title: "ivm-lab: what each netvsc buffer strategy does to an isolated guest's memory",
      generated: new Date().toISOString(),
      settings: {
        memory: formatBytes(o.memory),
        isolation: o.isolation ? "SNP, vTOM bit 46" : "off",
        uptime: o.uptime,
        seed: o.seed,
        packets: o.packets,
        "rx sections": rx,
        "tx sections": tx,
        vCPUs: o.cpus,
        ...(o.queues !== undefined ? { queues: o.queues } : {}),
        kernel: kernel ? `${kernel.name}${kernel.hardened ? " (hardened)" : ""}` : "each era's",
        fault: o.fault ?? "none",
      },
      strategies: runs.map((r) => r.report),
    });
    writeFileSync(o.report, html);
    io.err(`Report written to ${o.report}\n`);
  }
  return EXIT.ok;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
