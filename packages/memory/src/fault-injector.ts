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

/** One site's counter and pending failures; its `shouldFail` is one shared method (a monomorphic call). */
class SiteState implements FaultSite {
  calls = 0;
  failAt: Set<number> | null = null;
  readonly #injector: FaultInjector;

  constructor(injector: FaultInjector) {
    this.#injector = injector;
  }

  shouldFail(): boolean {
    const n = ++this.calls;
    if (this.failAt !== null && this.failAt.size > 0 && this.failAt.delete(n)) {
      this.#injector.countInjected();
      return true;
    }
    return false;
  }
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
    return this.#state(site).shouldFail();
  }

  /** The handle of one site: `site(s).shouldFail()` is `shouldFail(s)`. */
  site(site: AllocSite): FaultSite {
    return this.#state(site);
  }

  /** Called by a site when it made a call fail. */
  countInjected(): void {
    this.#injected++;
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
      state = new SiteState(this);
      this.#sites.set(site, state);
    }
    return state;
  }
}
