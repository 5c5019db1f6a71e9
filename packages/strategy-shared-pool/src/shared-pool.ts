import { type HypervLayer, vmapSharedAlias } from "@ivm/hypercall";
import { writtenFor } from "@ivm/kernel";
import { type GuestMemory, PAGE_SIZE } from "@ivm/memory";
import {
  defineStrategy,
  SHARED_POOL_TAG,
  type SharedBuffer,
  type SharedBufferStrategy,
  type StrategyDescriptor,
  type StrategyServices,
} from "@ivm/shared-buffer";

const FREE = 0;
const ALLOCATED = 1;
const LEAKED = 2;

/**
 * A pool of pages made host-visible once, at boot, and handed out first-fit by page (OpenVMM's
 * page_pool_alloc: slots Free, Allocated, Leaked). The pool's pages stay allocated to the pool (tag
 * SHARED_POOL_TAG) for the guest's whole life, so no free page is ever host-visible.
 */
export class SharedPool {
  readonly pages: number;
  readonly firstPfn: number;
  /** Where the guest touches pool page 0: the shared alias mapping (address-bit era) or the direct map (pte-bit era). */
  readonly baseVa: number;
  /** Hypercalls spent making the pool visible at boot. */
  readonly bootHypercalls: number;
  readonly #state: Uint8Array;
  readonly #memory: GuestMemory;
  allocations = 0;
  failures = 0;

  constructor(memory: GuestMemory, hyperv: HypervLayer, bytes: number) {
    this.#memory = memory;
    this.pages = Math.ceil(bytes / PAGE_SIZE);
    this.#state = new Uint8Array(this.pages);
    // Reserve a contiguous range at boot, lowest free address first (as memblock would).
    let start = -1;
    for (let pfn = 0; pfn + this.pages <= memory.phys.pages; pfn += 1024) {
      if (memory.buddy.allocRange(pfn, this.pages, { tag: SHARED_POOL_TAG })) {
        start = pfn;
        break;
      }
    }
    if (start < 0) throw new Error(`no contiguous ${bytes}-byte range for the shared pool`);
    this.firstPfn = start;
    const before = hyperv.hypervisor.counters.hypercalls;
    const direct = memory.pageToVirt(start);
    hyperv.setMemory.decrypted(direct, this.pages);
    if (memory.isolated && memory.vtomMode === "address-bit") {
      const alias = vmapSharedAlias(
        memory,
        this.pages,
        (pfns) => {
          for (let i = 0; i < this.pages; i++) pfns[i] = start + i;
        },
        { tag: "shared-pool-alias" },
      );
      if (alias === null) throw new Error("no address space for the shared pool's alias mapping");
      this.baseVa = alias;
    } else {
      this.baseVa = direct;
    }
    this.bootHypercalls = hyperv.hypervisor.counters.hypercalls - before;
  }

  get freePages(): number {
    let n = 0;
    for (let i = 0; i < this.pages; i++) if (this.#state[i] === FREE) n++;
    return n;
  }

  get leakedPages(): number {
    let n = 0;
    for (let i = 0; i < this.pages; i++) if (this.#state[i] === LEAKED) n++;
    return n;
  }

  /** First fit; the range is zeroed before it is handed out (no earlier user's bytes reach the new owner or the host). */
  alloc(pages: number): number | null {
    let run = 0;
    for (let i = 0; i < this.pages; i++) {
      run = this.#state[i] === FREE ? run + 1 : 0;
      if (run === pages) {
        const first = i - pages + 1;
        this.#state.fill(ALLOCATED, first, i + 1);
        this.#memory.mmu.fill(this.baseVa + first * PAGE_SIZE, pages * PAGE_SIZE, 0);
        this.allocations++;
        return first;
      }
    }
    this.failures++;
    return null;
  }

  release(first: number, pages: number, leaked: boolean): void {
    for (let i = first; i < first + pages; i++) {
      if (this.#state[i] !== ALLOCATED) throw new Error(`shared pool page ${i} is not allocated`);
    }
    this.#state.fill(leaked ? LEAKED : FREE, first, first + pages);
  }
}

interface PoolBuffer extends SharedBuffer {
  readonly first: number;
}

export interface SharedPoolOptions {
  /** Pool size; default 32 MiB (one NIC's 16 MiB + 1 MiB buffers with room for a second). */
  readonly poolBytes?: number;
}

/**
 * Approach (6), as OpenHCL does: buffers carved from a pool made host-visible once at boot. The GPADL
 * neither decrypts nor re-encrypts (`preShared`), so device add and remove make no visibility hypercalls.
 * The cost moves to boot and to a fixed reservation.
 */
export const sharedPool: StrategyDescriptor<StrategyServices, SharedPoolOptions> = {
  name: "shared-pool",
  approach: 6,
  summary: "a pool made host-visible once at boot (OpenHCL)",
  packageName: "@ivm/strategy-shared-pool",
  eras: ["address-bit", "pte-bit"],
  ...writtenFor("shared-pool", {
    from: "5.17",
    written: "approach (6): a pool made host-visible once at boot needs no kernel change",
  }),
  create: (services, options) => sharedPoolStrategy(services, options),
};

/** The strategy with its pool exposed (the pool's own counters are part of what approach (6) costs). */
export function sharedPoolStrategy(
  { memory, hyperv }: StrategyServices,
  options: SharedPoolOptions = {},
): SharedBufferStrategy & { readonly pool: SharedPool } {
  const pool = new SharedPool(memory, hyperv, options.poolBytes ?? 32 * 2 ** 20);
  // The pool is shared in a guest without isolation too (the hypercall is then a no-op).
  const strategy = defineStrategy<PoolBuffer>(sharedPool, memory, {
    isolatedOnly: false,
    allocate(bytes) {
      const first = pool.alloc(bytes / PAGE_SIZE);
      return first === null ? null : { gpadlVa: pool.baseVa + first * PAGE_SIZE, preShared: true, first };
    },
    map: (buffer) => ({ va: buffer.gpadlVa }),
    unmap() {},
    free(buffer) {
      pool.release(buffer.first, buffer.pages, false);
    },
    leak(buffer) {
      pool.release(buffer.first, buffer.pages, true);
    },
  });
  return Object.assign(strategy, { pool });
}
