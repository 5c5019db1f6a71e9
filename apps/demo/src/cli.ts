import { writeFileSync } from "node:fs";
import { STRATEGIES, type StrategyEntry } from "@ivm/catalog";
import type { Era } from "@ivm/hypercall";
import { UPTIME_LEVELS, type UptimeLevel } from "@ivm/memory";
import { SingleBar } from "cli-progress";
import { Command, InvalidArgumentError, Option } from "commander";
import { renderReport } from "./report.js";
import { type DemoOptions, type DemoRun, plan, runOne } from "./run.js";
import { formatBytes, parseCount, parseSize } from "./size.js";
import { comparisonTable } from "./table.js";

const EXAMPLES = `
Examples:
  ivm-demo                                   every strategy in its own era, 2 GiB aged guest
  ivm-demo --strategy page-blocks --uptime heavy
  ivm-demo --era pte-bit                      strategies written for the other era are reported, not run
  ivm-demo --memory 8GiB --packets 20000 --seed 7 --report /tmp/ivm.html
  ivm-demo --isolation off --json             one JSON object per strategy on stdout`;

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
  memory: number;
  rxSections?: number;
  txSections?: number;
  uptime: UptimeLevel;
  packets: number;
  seed: number;
  isolation: boolean;
  json?: boolean;
  report: string | false;
}

export function buildProgram(): Command {
  return new Command()
    .name("ivm-demo")
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
    .option("--json", "print one JSON object per strategy (the documented shape) instead of the table")
    .option("--report <file.html>", "write the HTML report here", "ivm-demo-report.html")
    .option("--no-report", "do not write the HTML report")
    .addHelpText("after", EXAMPLES)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
}

export function main(argv: readonly string[]): number {
  const program = buildProgram();
  try {
    program.parse(argv, { from: "user" });
  } catch (e) {
    const err = e as { code?: string; exitCode?: number };
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return 0;
    return 2;
  }
  const o = program.opts<CliOptions>();
  const demo: DemoOptions = {
    strategies: o.strategy,
    era: o.era ?? "each",
    memory: o.memory,
    ...(o.rxSections !== undefined ? { rxSections: o.rxSections } : {}),
    ...(o.txSections !== undefined ? { txSections: o.txSections } : {}),
    uptime: o.uptime,
    packets: o.packets,
    seed: o.seed,
    isolation: o.isolation,
    picture: o.report !== false,
  };
  const steps = plan(demo);
  const bar = process.stderr.isTTY
    ? new SingleBar({ format: "{bar} {value}/{total} {step}", hideCursor: true, stream: process.stderr })
    : null;
  bar?.start(steps.length, 0, { step: "" });
  const runs: DemoRun[] = [];
  for (const [i, { entry, era }] of steps.entries()) {
    bar?.update(i, { step: `${entry.name} (${era})` });
    if (!bar) process.stderr.write(`[${i + 1}/${steps.length}] ${entry.name} (${era})\n`);
    runs.push(runOne(entry, era, demo));
  }
  bar?.update(steps.length, { step: "done" });
  bar?.stop();
  const results = runs.map((r) => r.result);
  if (o.json) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  } else {
    process.stdout.write(
      `Guest: ${formatBytes(o.memory)}, ${o.isolation ? "SNP with vTOM at bit 46" : "no isolation"}, uptime "${o.uptime}", seed ${o.seed}; NIC with ${demo.rxSections ?? 9709} rx / ${demo.txSections ?? 170} tx sections.\n`,
    );
    process.stdout.write(`${comparisonTable(results)}\n`);
    process.stdout.write(
      "mappings: live vmalloc mappings of each buffer; metadata: what the strategy keeps besides the data pages; temp peak: its largest temporary allocation; 4 MiB blocks: order-10 data blocks; fallbacks: order-10 allocations that failed.\n",
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
        "rx sections": demo.rxSections ?? 9709,
        "tx sections": demo.txSections ?? 170,
      },
      strategies: runs.map((r) => r.report),
    });
    writeFileSync(o.report, html);
    process.stderr.write(`Report written to ${o.report}\n`);
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = main(process.argv.slice(2));
