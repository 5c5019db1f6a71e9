/**
 * Deterministic allocation-failure injection. Each allocation site counts its calls; a rule "fail call k
 * of site s" makes exactly that call fail as if memory were exhausted. Used by tests and the fault
 * campaign to reach every failure path.
 */
export type AllocSite = "pages" | "kmalloc" | "vmalloc" | "swiotlb" | (string & {});

export class FaultInjector {
  readonly #calls = new Map<string, number>();
  readonly #failAt = new Map<string, Set<number>>();
  #injected = 0;

  /** Makes call number `k` (1-based, counted from now) of `site` fail. */
  failCall(site: AllocSite, k: number): void {
    const calls = this.#calls.get(site) ?? 0;
    let set = this.#failAt.get(site);
    if (!set) {
      set = new Set();
      this.#failAt.set(site, set);
    }
    set.add(calls + k);
  }

  /** Called by an allocation site; true means "fail this one". */
  shouldFail(site: AllocSite): boolean {
    const n = (this.#calls.get(site) ?? 0) + 1;
    this.#calls.set(site, n);
    const set = this.#failAt.get(site);
    if (set?.delete(n)) {
      this.#injected++;
      return true;
    }
    return false;
  }

  /** Calls seen so far at a site (to enumerate every failure point of a scenario). */
  calls(site: AllocSite): number {
    return this.#calls.get(site) ?? 0;
  }

  get injected(): number {
    return this.#injected;
  }

  clear(): void {
    this.#failAt.clear();
  }
}
