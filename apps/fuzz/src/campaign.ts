import type { FaultName } from "@ivm/vm";
import fc from "fast-check";
import { type SessionInput, toJson } from "./actions.js";
import { sessionArb } from "./arbitraries.js";
import { runSession } from "./session.js";
import { mergeInto, type Tally } from "./tally.js";
import type { Target } from "./targets.js";
import type { Violation } from "./world.js";

/** One unit of work for a worker: `sessions` fast-check runs from `seed`. Plain data (it crosses threads). */
export interface CampaignTask {
  readonly seed: number;
  readonly sessions: number;
  readonly sessionLength: number;
  readonly targets: readonly Target[];
  /** A named fault armed in every session's VM. */
  readonly fault?: FaultName;
}

/** A violation with what reproduces it: the fast-check seed and path, and the shrunk input as JSON. */
export interface Failure {
  readonly seed: number;
  readonly path: string;
  /** The shrunk session input (`toJson`), ready for `ivm-fuzz --replay`. */
  readonly input: string;
  readonly violations: readonly Violation[];
}

export interface TaskResult {
  readonly inputs: number;
  readonly sessions: number;
  readonly tally: Record<string, number>;
  readonly failure: Failure | null;
}

/**
 * Runs a task as one fast-check property: each run is a whole session on a fresh VM; a run with a
 * violation makes fast-check shrink the session (fewer actions, smaller values) to a minimal one.
 * Counters are kept for the runs before any failure only (shrinking re-runs inputs).
 */
export function runTask(task: CampaignTask): TaskResult {
  const tally: Tally = new Map();
  let inputs = 0;
  let sessions = 0;
  let failing = false;
  const property = fc.property(
    sessionArb(task.targets, task.sessionLength, task.sessionLength, task.fault),
    (input: SessionInput) => {
      const r = runSession(input);
      if (!failing) {
        inputs += r.actions;
        sessions++;
        mergeInto(tally, r.tally);
      }
      if (r.violations.length > 0) failing = true;
      return r.violations.length === 0;
    },
  );
  const details = fc.check(property, { seed: task.seed, numRuns: task.sessions });
  let failure: Failure | null = null;
  if (details.failed && details.counterexample !== null) {
    const [input] = details.counterexample;
    failure = {
      seed: details.seed,
      path: details.counterexamplePath ?? "",
      input: toJson(input),
      violations: runSession(input).violations,
    };
  } else if (details.failed) {
    failure = {
      seed: details.seed,
      path: details.counterexamplePath ?? "",
      input: "",
      violations: [{ check: "crash", detail: String(details.errorInstance ?? "property failed"), step: "?" }],
    };
  }
  return { inputs, sessions, tally: Object.fromEntries(tally), failure };
}

/** Actions per session (one VM boot each) unless `--session-length` says otherwise. */
export const DEFAULT_SESSION_LENGTH = 200;

/** Sessions per task: the unit a worker runs and a shard takes (a task's seed fixes its sessions). */
export const SESSIONS_PER_TASK = 4;

/** Task seeds derived from the campaign seed, so a campaign is reproducible whatever the worker count. */
export function taskSeed(seed: number, index: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + Math.imul(index + 1, 0x85ebca6b)) >>> 0;
}

export interface CampaignPlan {
  readonly tasks: CampaignTask[];
  readonly inputs: number;
}

/** Splits `iterations` inputs into tasks of `sessionsPerTask` sessions of `sessionLength` actions. */
export function planCampaign(
  iterations: number,
  seed: number,
  targets: readonly Target[],
  sessionLength: number,
  sessionsPerTask: number,
  fault?: FaultName,
): CampaignPlan {
  const sessions = Math.max(1, Math.ceil(iterations / sessionLength));
  const tasks: CampaignTask[] = [];
  for (let done = 0, i = 0; done < sessions; i++) {
    const n = Math.min(sessionsPerTask, sessions - done);
    tasks.push({ seed: taskSeed(seed, i), sessions: n, sessionLength, targets, ...(fault ? { fault } : {}) });
    done += n;
  }
  return { tasks, inputs: sessions * sessionLength };
}

/** What a campaign reports: inputs tried, rejections by reason, violations, time. */
export interface CampaignReport {
  readonly inputs: number;
  readonly sessions: number;
  readonly wallMs: number;
  readonly inputsPerSecond: number;
  readonly workers: number;
  readonly seed: number;
  readonly targets: readonly string[];
  /** Counters of every layer (rejections, clamps, drops, refusals) and outcomes, by "layer:reason". */
  readonly counters: Record<string, number>;
  readonly violations: number;
  readonly failures: readonly Failure[];
}

export function summarise(
  results: readonly TaskResult[],
  meta: { wallMs: number; workers: number; seed: number; targets: readonly string[] },
): CampaignReport {
  const tally: Tally = new Map();
  let inputs = 0;
  let sessions = 0;
  const failures: Failure[] = [];
  for (const r of results) {
    inputs += r.inputs;
    sessions += r.sessions;
    mergeInto(tally, r.tally);
    if (r.failure !== null) failures.push(r.failure);
  }
  const counters = Object.fromEntries([...tally].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
  return {
    inputs,
    sessions,
    wallMs: meta.wallMs,
    inputsPerSecond: inputs / Math.max(meta.wallMs / 1000, 1e-9),
    workers: meta.workers,
    seed: meta.seed,
    targets: meta.targets,
    counters,
    violations: failures.reduce((n, f) => n + f.violations.length, 0),
    failures,
  };
}
