import type { Era } from "@ivm/hypercall";
import { type GuestMemory, PAGE_SIZE } from "@ivm/memory";
import {
  type BufferPurpose,
  type BufferState,
  type MappedBuffer,
  SHARED_BUFFER_CONTRACT_VERSION,
  type SharedBuffer,
  type SharedBufferStrategy,
} from "./contract.js";
import { SharedBufferError } from "./errors.js";
import { leakPagesAt } from "./leak.js";

/** What every buffer has; `defineStrategy` fills it in, so an approach returns only its own fields. */
type CommonFields = "strategy" | "purpose" | "bytes" | "pages" | "preShared";

/** What an approach's `allocate` returns: its own bookkeeping, the GPADL address, and `preShared` if it is. */
export type BufferFields<B extends SharedBuffer> = Omit<B, CommonFields> & { readonly preShared?: boolean };

/** The name and eras of a strategy (its descriptor's, passed down so they are written once). */
export interface StrategyIdentity {
  readonly name: string;
  readonly eras: readonly Era[];
}

/** What a strategy package implements: the approach itself, without the lifecycle bookkeeping. */
export interface StrategyImpl<B extends SharedBuffer> {
  /**
   * The approach exists only for an isolated guest (the kernel's hv_isolation_type_snp() checks): in a
   * guest without isolation netvsc's plain vzalloc path runs instead.
   */
  readonly isolatedOnly: boolean;
  /** `bytes` is already rounded up to whole pages. */
  allocate(bytes: number, purpose: BufferPurpose): BufferFields<B> | null;
  map(buffer: B): MappedBuffer | null;
  unmap(buffer: B): void;
  free(buffer: B): void;
  leak(buffer: B): void;
}

const NEXT: Record<string, readonly BufferState[]> = {
  map: ["allocated", "unmapped"],
  unmap: ["mapped"],
  free: ["allocated", "unmapped"],
  leak: ["allocated", "unmapped"],
};

/**
 * Wraps an approach with what every strategy shares: sizes rounded to pages, the common buffer fields,
 * calls only in the kernel's order, buffers only from this strategy, nothing done twice (a misuse is a
 * typed SharedBufferError and changes nothing), and — for an `isolatedOnly` approach in a guest without
 * isolation — netvsc's plain vzalloc path.
 */
export function defineStrategy<B extends SharedBuffer>(
  id: StrategyIdentity,
  memory: GuestMemory,
  impl: StrategyImpl<B>,
): SharedBufferStrategy {
  if (impl.isolatedOnly && !memory.isolated) return vzallocBuffers(id, memory);
  const states = new WeakMap<SharedBuffer, BufferState>();
  const check = (op: keyof typeof NEXT, buffer: SharedBuffer): B => {
    const state = states.get(buffer);
    if (state === undefined)
      throw new SharedBufferError(
        "EINVAL",
        "foreign-buffer",
        `${id.name}.${op} of a buffer it did not allocate`,
      );
    if (!NEXT[op]!.includes(state))
      throw new SharedBufferError("EINVAL", "lifecycle", `${id.name}.${op} of a buffer that is ${state}`);
    return buffer as B;
  };
  return {
    name: id.name,
    contractVersion: SHARED_BUFFER_CONTRACT_VERSION,
    eras: id.eras,
    allocate(bytes, purpose) {
      if (!Number.isSafeInteger(bytes) || bytes <= 0)
        throw new SharedBufferError("EINVAL", "size", `buffer size must be > 0, got ${bytes}`);
      const rounded = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE;
      const own = impl.allocate(rounded, purpose);
      if (own === null) return null;
      // The approach's own object, so that the fields it mutates later are the ones it reads back.
      const buffer = Object.assign(own, {
        strategy: id.name,
        purpose,
        bytes: rounded,
        pages: rounded / PAGE_SIZE,
        preShared: own.preShared ?? false,
      }) as unknown as B;
      states.set(buffer, "allocated");
      return buffer;
    },
    map(buffer) {
      const mapped = impl.map(check("map", buffer));
      if (mapped !== null) states.set(buffer, "mapped");
      return mapped;
    },
    unmap(buffer) {
      impl.unmap(check("unmap", buffer));
      states.set(buffer, "unmapped");
    },
    free(buffer) {
      impl.free(check("free", buffer));
      states.set(buffer, "freed");
    },
    leak(buffer) {
      impl.leak(check("leak", buffer));
      states.set(buffer, "leaked");
    },
    state(buffer) {
      const state = states.get(buffer);
      if (state === undefined)
        throw new SharedBufferError("EINVAL", "foreign-buffer", `${id.name} did not allocate this buffer`);
      return state;
    },
  };
}

/**
 * netvsc's plain path: vzalloc the buffer and use that one mapping. It is what netvsc_init_buf does in a
 * guest without isolation (the remap is only for hv_isolation_type_snp()), and all it does in Linux 6.4+,
 * where set_memory_decrypted puts the shared bit in the existing PTEs.
 */
export function vzallocBuffers(id: StrategyIdentity, memory: GuestMemory): SharedBufferStrategy {
  return defineStrategy<SharedBuffer>(id, memory, {
    isolatedOnly: false,
    allocate(bytes, purpose) {
      const va = memory.vmalloc.vzalloc(bytes, { tag: purpose });
      return va === null ? null : { gpadlVa: va };
    },
    map: (buffer) => ({ va: buffer.gpadlVa }),
    unmap() {},
    free(buffer) {
      memory.vmalloc.vfree(buffer.gpadlVa);
    },
    leak(buffer) {
      leakPagesAt(memory, buffer.gpadlVa, buffer.pages);
    },
  });
}
