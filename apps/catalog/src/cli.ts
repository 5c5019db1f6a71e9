/**
 * What the three command-line tools share, so they behave alike (as git, perf and ethtool do): bad input
 * is one line on stderr and exit 2, found before any work starts; `--shard i/n` as vitest and jest spell
 * it; tables as wide as the terminal. Node-only (`@ivm/catalog/cli`): the strategy list stays
 * platform-neutral for the browser lab.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { isProfileName, PROFILE_NAMES, type ProfileName } from "@ivm/kernel";
import { FAULT_NAMES, type FaultName, isFaultName } from "@ivm/vm";
import { Command, InvalidArgumentError } from "commander";
import wrapAnsi from "wrap-ansi";

/** The exit codes every tool documents: 1 means "what you asked about was found" (a violation, a regression). */
export const EXIT = { ok: 0, found: 1, usage: 2 } as const;

/** Where a tool writes; tests pass their own. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

/** The process's stdout and stderr. */
export const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

/**
 * The root command every tool starts from: its name, `-V, --version`, a description, and commander set
 * to throw instead of exiting (the tool's `main` turns a CommanderError into exit 2) while writing help
 * and errors through `io` — as one line, the error itself. Set before any subcommand is added, so the
 * subcommands inherit it.
 */
export function toolCommand(name: string, version: string, description: string, io: CliIo): Command {
  return new Command()
    .name(name)
    .version(version, "-V, --version", "print the version and exit")
    .description(description)
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: (s, w) => w(s) });
}

/** One shard of a sweep: `index` of `count`, 1-based as `--shard 2/4` spells it. */
export interface Shard {
  readonly index: number;
  readonly count: number;
}

/** Parses `--shard <i>/<n>` (integers, 1 ≤ i ≤ n); a commander argument parser. */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  const index = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || !Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1 || index < 1)
    throw new InvalidArgumentError(`expected <i>/<n> with integers 1 ≤ i ≤ n, e.g. 2/4`);
  if (index > count) throw new InvalidArgumentError(`shard ${index} of ${count} does not exist (1 ≤ i ≤ n)`);
  return { index, count };
}

/**
 * The items shard `index` of `count` runs: every count-th one from position index − 1. Round-robin rather
 * than contiguous blocks, so that expensive cases at one end of a sweep (heavy uptime, large guests)
 * spread over the shards; the shards are disjoint and together are exactly the whole list.
 */
export function shardOf<T>(items: readonly T[], shard: Shard | undefined): T[] {
  if (!shard) return [...items];
  return items.filter((_, position) => position % shard.count === shard.index - 1);
}

/** `2/4`, for messages and summaries. */
export function shardName(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}

function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === "ENOENT") return "no such file";
  if (err?.code === "EACCES" || err?.code === "EPERM") return "permission denied";
  if (err?.code === "EISDIR") return "is a directory";
  return err instanceof Error ? err.message.split("\n")[0]! : String(e);
}

/**
 * Reads and parses an input file while the arguments are parsed, so that a missing, unreadable or
 * malformed file is a usage error (exit 2) before any work starts. `parse` throws on bad content.
 */
export function readInput<T>(file: string, parse: (text: string, file: string) => T): T {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new InvalidArgumentError(`cannot read ${file}: ${reason(e)}`);
  }
  try {
    return parse(text, file);
  } catch (e) {
    throw new InvalidArgumentError(`${file}: ${reason(e)}`);
  }
}

/**
 * Checks that an output file can be written (or created, directories included, as the tools do with
 * `mkdir -p`): the path is not a directory and its nearest existing ancestor is a writable directory.
 */
export function writableOutput(file: string): string {
  const path = resolve(file);
  if (existsSync(path)) {
    if (statSync(path).isDirectory()) throw new InvalidArgumentError(`cannot write ${file}: is a directory`);
    try {
      accessSync(path, constants.W_OK);
    } catch (e) {
      throw new InvalidArgumentError(`cannot write ${file}: ${reason(e)}`);
    }
    return file;
  }
  let dir = dirname(path);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  if (!statSync(dir).isDirectory()) throw new InvalidArgumentError(`cannot write ${file}: ${dir} is a file`);
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new InvalidArgumentError(`cannot write ${file}: ${reason(e)}`);
  }
  return file;
}

/** A variadic commander option's parser that accumulates what `each` returns for every value. */
export function each<T>(parse: (text: string) => T): (text: string, previous: T[] | undefined) => T[] {
  return (text, previous) => [...(previous ?? []), parse(text)];
}

/**
 * How wide output may be: the terminal's width when stdout is a terminal; otherwise `COLUMNS` when the
 * user set it (as ls does), else 100.
 */
export function outputColumns(
  stream: { readonly isTTY?: boolean; readonly columns?: number } = process.stdout,
  env: Readonly<Record<string, string | undefined>> = process.env,
): number {
  if (stream.isTTY && stream.columns && stream.columns > 0) return stream.columns;
  const columns = Number(env.COLUMNS);
  return Number.isInteger(columns) && columns > 0 ? columns : 100;
}

/** Wraps prose to `width` columns at spaces (wrap-ansi), so notes under a table fit beside it. */
export function wrapText(text: string, width: number): string {
  return wrapAnsi(text, width, { hard: false, trim: true });
}

/** Parses `--kernel <version>` against the lab's kernel profiles; a commander argument parser. */
export function parseKernel(text: string): ProfileName {
  const name = text.trim();
  if (!isProfileName(name))
    throw new InvalidArgumentError(`unknown kernel "${name}"; choose ${PROFILE_NAMES.join(", ")}`);
  return name;
}

/** `--kernel 5.17,6.12` (or `all`): a comma-separated list of profiles, each checked by parseKernel. */
export function parseKernelList(text: string): ProfileName[] {
  if (text.trim() === "all") return [...PROFILE_NAMES];
  const names = text.split(",").map(parseKernel);
  return names.filter((n, i) => names.indexOf(n) === i);
}

/** Parses `--fault <name>` against @ivm/vm's named faults; a commander argument parser. */
export function parseFault(text: string): FaultName {
  const name = text.trim();
  if (!isFaultName(name))
    throw new InvalidArgumentError(`unknown fault "${name}"; choose ${FAULT_NAMES.join(", ")}`);
  return name;
}
