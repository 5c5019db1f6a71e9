/** DEFAULT_RATELIMIT_INTERVAL (5 * HZ), in the model's milliseconds. */
export const DEFAULT_RATELIMIT_INTERVAL_MS = 5000 as const;
/** DEFAULT_RATELIMIT_BURST. */
export const DEFAULT_RATELIMIT_BURST = 10 as const;

/** A clock in simulated milliseconds. */
export type Clock = () => number;

/** The default clock: a counter that advances one simulated millisecond per reading. */
export function monotonicCounterClock(): Clock {
  let now = 0;
  return () => ++now;
}

export interface RateLimitOptions {
  readonly intervalMs?: number;
  readonly burst?: number;
}

/**
 * Mirrors ___ratelimit (lib/ratelimit.c, 5.x) as used by one dev_warn_ratelimited call site: at most
 * `burst` messages per window; the window restarts on the first call after `interval` has strictly
 * passed, and then reports how many calls it suppressed. The kernel's trylock path (a concurrent
 * caller is suppressed without being counted) has no counterpart in a single-threaded model.
 */
export class RateLimit {
  readonly intervalMs: number;
  readonly burst: number;
  private begin: number | undefined = undefined;
  private printed = 0;
  private missed = 0;
  /** Messages let through, all windows. */
  printedTotal = 0;
  /** Messages suppressed, all windows. */
  suppressedTotal = 0;

  constructor(options: RateLimitOptions = {}) {
    this.intervalMs = options.intervalMs ?? DEFAULT_RATELIMIT_INTERVAL_MS;
    this.burst = options.burst ?? DEFAULT_RATELIMIT_BURST;
  }

  /**
   * Whether a message may be printed at time `now`. `onSuppressedReport` receives the count of the
   * previous window's suppressed messages when a new window opens (the kernel's "%s: %d callbacks
   * suppressed" line).
   */
  check(now: number, onSuppressedReport?: (missed: number) => void): boolean {
    if (this.intervalMs === 0) {
      this.printedTotal++;
      return true;
    }
    if (this.begin === undefined) this.begin = now;
    if (this.begin + this.intervalMs < now) {
      if (this.missed > 0) onSuppressedReport?.(this.missed);
      this.missed = 0;
      this.begin = now;
      this.printed = 0;
    }
    if (this.burst > 0 && this.burst > this.printed) {
      this.printed++;
      this.printedTotal++;
      return true;
    }
    this.missed++;
    this.suppressedTotal++;
    return false;
  }
}
