import { parseSize, STRATEGIES } from "@ivm/catalog";
import type { Era } from "@ivm/hypercall";
import {
  ERA_PROFILES,
  eraProfile,
  getProfile,
  isProfileName,
  PROFILE_NAMES,
  type ProfileName,
} from "@ivm/kernel";
import type { UptimeLevel } from "@ivm/memory";

/**
 * Everything that decides a run. The model is deterministic for a given configuration, so this plus a
 * step number reproduces a view exactly; it round-trips through the URL's query string.
 */
export interface LabConfig {
  /** Catalog name of the strategy on the left (and the only one when `compare` is empty). */
  readonly strategy: string;
  /** A second strategy stepped in lockstep beside the first, or "" for none. */
  readonly compare: string;
  /** The kernel profile every side boots (@ivm/kernel); its era is derived from it. */
  readonly kernel: ProfileName;
  /** Keep the lab's stricter checks of host values the kernel trusts (withHardened), reported as such. */
  readonly hardened: boolean;
  readonly memory: number;
  /** Receive and send sections; 0 = netvsc's defaults. */
  readonly rxSections: number;
  readonly txSections: number;
  readonly uptime: UptimeLevel;
  readonly packets: number;
  readonly seed: number;
  readonly isolation: boolean;
  /** Fault: the n-th hypercall after boot fails (0 = none). */
  readonly failHypercall: number;
  /** Fault: the first hypercall of device remove (re-encryption) fails. */
  readonly failReencrypt: boolean;
  /** vCPUs (1..64); 0 = Vm.boot's default with a single-queue host. Given, the NIC is multi-queue. */
  readonly cpus: number;
  /** Channels the NIC asks for (ethtool -L combined, 1..cpus); 0 = the kernel's count. */
  readonly queues: number;
}

/**
 * The model boots 64 GiB cheaply, but the lab keeps and draws per-page state (4 bytes a page, one pass
 * per step): 16 GiB (4M pages) keeps a step under a few tenths of a second.
 */
export const MAX_MEMORY = 16 * 2 ** 30;

export const UPTIMES: readonly UptimeLevel[] = ["none", "light", "moderate", "heavy"];
export const KERNELS: readonly ProfileName[] = PROFILE_NAMES;

/**
 * The demo's defaults, so that a default lab run and a default `ivm-demo --json` run agree. The kernel is
 * 5.17 hardened: what the default strategy's era ("address-bit") boots through the era shorthand.
 */
export const DEFAULT_CONFIG: LabConfig = {
  strategy: "vmalloc-remap",
  compare: "",
  kernel: ERA_PROFILES["address-bit"],
  hardened: true,
  memory: 2 * 2 ** 30,
  rxSections: 0,
  txSections: 0,
  uptime: "moderate",
  packets: 4000,
  seed: 1,
  isolation: true,
  failHypercall: 0,
  failReencrypt: false,
  cpus: 0,
  queues: 0,
};

/** The era a configuration's guest runs in: its kernel profile's. */
export function eraOf(config: Pick<LabConfig, "kernel">): Era {
  return getProfile(config.kernel).era;
}

function int(v: string | null, min: number, max: number): number | undefined {
  if (v === null || !/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return n >= min && n <= max ? n : undefined;
}

/** Reads a configuration and a step from a query string; anything missing or invalid keeps its default. */
export function configFromQuery(query: string): { config: LabConfig; step: number; problems: string[] } {
  const q = new URLSearchParams(query);
  const problems: string[] = [];
  const names = STRATEGIES.map((s) => s.name);
  const pick = <T>(
    key: string,
    ok: (v: string) => boolean,
    map: (v: string) => T,
    fallback: T,
    hint = "",
  ): T => {
    const v = q.get(key);
    if (v === null) return fallback;
    if (ok(v)) return map(v);
    problems.push(`${key}=${v} is not valid${hint}; using the default`);
    return fallback;
  };
  const d = DEFAULT_CONFIG;
  const memory = pick(
    "mem",
    (v) => {
      try {
        const n = parseSize(v);
        return n >= 64 * 2 ** 20 && n <= MAX_MEMORY && n % 2 ** 20 === 0;
      } catch {
        return false;
      }
    },
    (v) => parseSize(v),
    d.memory,
    ` (64 MiB to ${MAX_MEMORY / 2 ** 30} GiB, whole MiB)`,
  );
  const num = (key: string, min: number, max: number, fallback: number): number =>
    pick(
      key,
      (v) => int(v, min, max) !== undefined,
      (v) => Number(v),
      fallback,
    );
  let config: LabConfig = {
    strategy: pick("s", (v) => names.includes(v), String, d.strategy),
    compare: pick("b", (v) => v === "" || names.includes(v), String, d.compare),
    // `era=` from links made before kernel profiles: the era's representative kernel (eraProfile).
    kernel: pick(
      "kernel",
      isProfileName,
      (v) => v as ProfileName,
      pick(
        "era",
        (v) => v === "auto" || Object.hasOwn(ERA_PROFILES, v),
        (v) => (v === "auto" ? d.kernel : eraProfile(v as Era).name),
        d.kernel,
      ),
      ` (${KERNELS.join(", ")})`,
    ),
    hardened: pick(
      "hard",
      (v) => v === "0" || v === "1",
      (v) => v === "1",
      d.hardened,
    ),
    memory,
    rxSections: num("rx", 0, 1 << 20, d.rxSections),
    txSections: num("tx", 0, 1 << 20, d.txSections),
    uptime: pick(
      "uptime",
      (v) => (UPTIMES as readonly string[]).includes(v),
      (v) => v as UptimeLevel,
      d.uptime,
    ),
    packets: num("packets", 0, 100_000, d.packets),
    seed: num("seed", 0, 2 ** 31, d.seed),
    isolation: pick(
      "iso",
      (v) => v === "0" || v === "1",
      (v) => v === "1",
      d.isolation,
    ),
    failHypercall: num("failhc", 0, 1_000_000, d.failHypercall),
    failReencrypt: pick(
      "failre",
      (v) => v === "0" || v === "1",
      (v) => v === "1",
      d.failReencrypt,
    ),
    cpus: num("cpus", 0, 64, d.cpus),
    queues: num("q", 0, 64, d.queues),
  };
  // netvsc never opens more channels than CPUs (max_chn): a count above them is refused, not clamped.
  const cpus = config.cpus === 0 ? 2 : config.cpus;
  if (config.queues > cpus) {
    problems.push(`q=${config.queues} is more than the guest's ${cpus} CPUs; using the default`);
    config = { ...config, queues: d.queues };
  }
  const step = int(q.get("step"), 0, Number.MAX_SAFE_INTEGER) ?? 0;
  return { config, step, problems };
}

/** The query string for a configuration and a step (every field, so a link never depends on defaults). */
export function configToQuery(config: LabConfig, step: number): string {
  const q = new URLSearchParams({
    s: config.strategy,
    b: config.compare,
    kernel: config.kernel,
    hard: config.hardened ? "1" : "0",
    mem: `${config.memory / 2 ** 20}MiB`,
    rx: String(config.rxSections),
    tx: String(config.txSections),
    uptime: config.uptime,
    packets: String(config.packets),
    seed: String(config.seed),
    iso: config.isolation ? "1" : "0",
    failhc: String(config.failHypercall),
    failre: config.failReencrypt ? "1" : "0",
    cpus: String(config.cpus),
    q: String(config.queues),
    step: String(step),
  });
  return q.toString();
}
