import { ageMemory, GuestMemory, UPTIME_LEVELS, type UptimeLevel } from "@ivm/memory";
import Table from "cli-table3";
import { Command, InvalidArgumentError, Option } from "commander";

const UNITS: Record<string, number> = { b: 1, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** Parses sizes such as 512MiB, 8GiB or 4096 (bytes). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?$/i.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`"${text}" is not a size (try 512MiB or 8GiB)`);
  const unit = (m[2] ?? "b").toLowerCase().replace(/^([kmgt])b$/, "$1ib");
  const bytes = Math.round(Number(m[1]) * UNITS[unit]!);
  if (bytes % 4096 !== 0 || bytes < 16 * 2 ** 20)
    throw new InvalidArgumentError("memory must be ≥ 16MiB and a multiple of 4KiB");
  return bytes;
}

function parseSeed(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`"${text}" is not an integer seed`);
  return n;
}

function buddyTable(title: string, mem: GuestMemory): string {
  const info = mem.buddyinfo();
  const frag = mem.fragmentation();
  const table = new Table({ head: [title, ...info.map((_, o) => `order ${o}`)] });
  table.push(["free blocks", ...info.map(String)]);
  table.push(["extfrag", ...frag.map((f) => (f.extfrag / 1000).toFixed(3))]);
  table.push(["unusable", ...frag.map((f) => (f.unusable / 1000).toFixed(3))]);
  return table.toString();
}

const program = new Command()
  .name("ivm-demo")
  .description(
    "Boot a modelled Hyper-V isolated guest, age its memory, and show what that does to the buddy allocator.",
  )
  .addOption(
    new Option("--memory <size>", "guest memory (e.g. 512MiB, 8GiB)")
      .default(2 * 2 ** 30, "2GiB")
      .argParser(parseSize),
  )
  .addOption(
    new Option("--uptime <level>", "how long Linux has been running")
      .choices(Object.keys(UPTIME_LEVELS))
      .default("heavy"),
  )
  .addOption(new Option("--seed <n>", "seed of the aging workload").default(1).argParser(parseSeed))
  .option("--json", "print one JSON object instead of tables")
  .addHelpText(
    "after",
    "\nExamples:\n  pnpm demo\n  pnpm demo --memory 8GiB --uptime moderate --seed 7\n  pnpm demo --json",
  )
  .exitOverride()
  .configureOutput({ outputError: (s, write) => write(s) });

try {
  program.parse();
} catch (e) {
  const code = (e as { exitCode?: number }).exitCode ?? 2;
  process.exit(code === 0 ? 0 : 2);
}
const opts = program.opts<{ memory: number; uptime: UptimeLevel; seed: number; json?: boolean }>();
const mem = new GuestMemory({ bytes: opts.memory, sharedGpaBoundary: 2 ** 46 });
const before = mem.buddyinfo();
const started = performance.now();
const report = ageMemory(mem.buddy, opts.seed, opts.uptime);
const agedMs = performance.now() - started;
if (opts.json) {
  console.log(
    JSON.stringify(
      {
        memoryBytes: opts.memory,
        uptime: opts.uptime,
        seed: opts.seed,
        before,
        after: mem.buddyinfo(),
        report,
      },
      null,
      2,
    ),
  );
} else {
  console.log(`Guest: ${opts.memory / 2 ** 20} MiB, vTOM at bit 46. Fresh buddy allocator:`);
  console.log(buddyTable("fresh", new GuestMemory({ bytes: opts.memory })));
  console.log(
    `\nAfter "${opts.uptime}" uptime (seed ${opts.seed}, ${report.allocations} allocations, ${agedMs.toFixed(0)} ms):`,
  );
  console.log(buddyTable("aged", mem));
  console.log(
    `\n${report.pinnedPages} pages stay pinned in ${report.pinnedBlocks} long-lived allocations; free 4 MiB blocks: ${before[10]} → ${mem.buddyinfo()[10]}.`,
  );
}
