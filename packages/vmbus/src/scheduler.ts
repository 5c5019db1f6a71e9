/**
 * The deterministic, single-threaded world guest and host run in. Everything asynchronous in the
 * kernel (the SynIC message DPC, channel interrupts and NAPI, the host's worker threads) is a poller;
 * one round calls every poller once, in registration order. Code that "waits for completion" in the
 * kernel (wait_for_completion in __vmbus_establish_gpadl, __vmbus_open, vmbus_teardown_gpadl,
 * vmbus_negotiate_version) calls runUntil instead.
 *
 * The kernel waits forever for a host that never answers; the model cannot, so a round that makes no
 * progress ends the wait with a typed ETIMEDOUT ("host-never-answered"), and a host that keeps making
 * "progress" without ever satisfying the wait is stopped by a round limit ("round-limit").
 */
import { err, invariant, ok, type Result } from "./errors.js";

/** One unit of background work. Returns true when it did something (consumed or produced input). */
export type Poll = () => boolean;

export interface SchedulerOptions {
  /** Rounds one runUntil may take before giving up even though pollers keep reporting progress. */
  readonly maxRoundsPerWait?: number;
  /** How deep waits may nest (a channel callback that itself waits). */
  readonly maxNesting?: number;
}

export interface SchedulerCounters {
  rounds: number;
  waits: number;
  /** Waits ended because a full round made no progress. */
  stalls: number;
  /** Waits ended by the round limit. */
  roundLimits: number;
}

interface Poller {
  readonly name: string;
  readonly poll: Poll;
  running: boolean;
}

export class Scheduler {
  readonly maxRoundsPerWait: number;
  readonly maxNesting: number;
  readonly counters: SchedulerCounters = { rounds: 0, waits: 0, stalls: 0, roundLimits: 0 };
  private readonly pollers: Poller[] = [];
  private depth = 0;

  constructor(options: SchedulerOptions = {}) {
    this.maxRoundsPerWait = options.maxRoundsPerWait ?? 100_000;
    this.maxNesting = options.maxNesting ?? 8;
  }

  /** Registers a poller; returns a function that removes it. */
  addPoller(name: string, poll: Poll): () => void {
    const p: Poller = { name, poll, running: false };
    this.pollers.push(p);
    return () => {
      const i = this.pollers.indexOf(p);
      if (i >= 0) this.pollers.splice(i, 1);
    };
  }

  get pollerNames(): string[] {
    return this.pollers.map((p) => p.name);
  }

  /**
   * One round: every poller once. A poller already running further up the stack (a callback that
   * waits) is skipped, so no handler is re-entered. Returns whether anything made progress.
   */
  runOnce(): boolean {
    this.counters.rounds++;
    let progress = false;
    // Copy: a poller may add or remove pollers (a channel opened or closed inside a callback).
    for (const p of this.pollers.slice()) {
      if (p.running) continue;
      p.running = true;
      try {
        if (p.poll()) progress = true;
      } finally {
        p.running = false;
      }
    }
    return progress;
  }

  /** Runs rounds until nothing makes progress (bounded by maxRoundsPerWait). Returns rounds run. */
  runIdle(): number {
    let n = 0;
    while (n < this.maxRoundsPerWait && this.runOnce()) n++;
    return n;
  }

  /**
   * Polls until `done()` holds. A round without progress, or maxRoundsPerWait rounds, is an ETIMEDOUT
   * result naming `what`: where the kernel would sleep forever, the model reports the stall.
   */
  runUntil(done: () => boolean, what: string): Result<number> {
    if (this.depth >= this.maxNesting)
      invariant(false, `waits nested deeper than ${this.maxNesting} (${what})`);
    this.counters.waits++;
    this.depth++;
    try {
      let rounds = 0;
      while (!done()) {
        if (rounds >= this.maxRoundsPerWait) {
          this.counters.roundLimits++;
          return err("ETIMEDOUT", "round-limit", `${what}: no answer after ${rounds} rounds`);
        }
        const progress = this.runOnce();
        rounds++;
        if (!progress && !done()) {
          this.counters.stalls++;
          return err("ETIMEDOUT", "host-never-answered", `${what}: nothing left to run, no answer`);
        }
      }
      return ok(rounds);
    } finally {
      this.depth--;
    }
  }
}
