/**
 * Deterministic allocation-failure injection. Each allocation site counts its calls; a rule "fail call k
 * of site s" makes exactly that call fail as if memory were exhausted. Used by tests and the fault
 * campaign to reach every failure path.
 */
export type AllocSite = "pages" | "kmalloc" | "vmalloc" | "swiotlb" | (string & {});

/** One site's call counter, bound once by a hot allocation path so that a call costs no map lookup. */
export interface FaultSite {
  /** Counts a call of the site; true means "fail this one". */
  shouldFail(): boolean;
}

interface SiteState {
  calls: number;
  failAt: Set<number> | null;
}

export class FaultInjector {
  readonly #sites = new Map<string, SiteState>();
  #injected = 0;

  /** Makes call number `k` (1-based, counted from now) of `site` fail. */
  failCall(site: AllocSite, k: number): void {
    const state = this.#state(site);
    state.failAt ??= new Set();
    state.failAt.add(state.calls + k);
  }

  /** Called by an allocation site; true means "fail this one". */
  shouldFail(site: AllocSite): boolean {
    return this.#hit(this.#state(site));
  }

  /** The handle of one site: `site(s).shouldFail()` is `shouldFail(s)`. */
  site(site: AllocSite): FaultSite {
    const state = this.#state(site);
    return { shouldFail: () => this.#hit(state) };
  }

  /** Calls seen so far at a site (to enumerate every failure point of a scenario). */
  calls(site: AllocSite): number {
    return this.#sites.get(site)?.calls ?? 0;
  }

  get injected(): number {
    return this.#injected;
  }

  clear(): void {
    for (const state of this.#sites.values()) state.failAt = null;
  }

  #state(site: string): SiteState {
    let state = this.#sites.get(site);
    if (!state) {
      state = { calls: 0, failAt: null };
      this.#sites.set(site, state);
    }
    return state;
  }

  #hit(state: SiteState): boolean {
    const n = ++state.calls;
    if (state.failAt !== null && state.failAt.size > 0 && state.failAt.delete(n)) {
      this.#injected++;
      return true;
    }
    return false;
  }
}
