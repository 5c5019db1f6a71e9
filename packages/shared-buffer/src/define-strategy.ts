import type { Era } from "@ivm/hypercall";
import { PAGE_SIZE } from "@ivm/memory";
import {
  type BufferPurpose,
  type BufferState,
  SHARED_BUFFER_CONTRACT_VERSION,
  type SharedBuffer,
  type SharedBufferStrategy,
} from "./contract.js";
import { SharedBufferError } from "./errors.js";

/** What a strategy package implements: the approach itself, without the lifecycle bookkeeping. */
export interface StrategyImpl<B extends SharedBuffer> {
  readonly name: string;
  readonly eras: readonly Era[];
  /** `bytes` is already rounded up to whole pages. */
  allocate(bytes: number, purpose: BufferPurpose): B | null;
  map(buffer: B): number | null;
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
 * Wraps an approach with the lifecycle checks every strategy shares: sizes rounded to pages, calls only
 * in the kernel's order, buffers only from this strategy, nothing done twice. A misuse is a typed
 * SharedBufferError and changes nothing.
 */
export function defineStrategy<B extends SharedBuffer>(impl: StrategyImpl<B>): SharedBufferStrategy {
  const states = new WeakMap<SharedBuffer, BufferState>();
  const check = (op: keyof typeof NEXT, buffer: SharedBuffer): B => {
    const state = states.get(buffer);
    if (state === undefined)
      throw new SharedBufferError(
        "EINVAL",
        "foreign-buffer",
        `${impl.name}.${op} of a buffer it did not allocate`,
      );
    if (!NEXT[op]!.includes(state))
      throw new SharedBufferError("EINVAL", "lifecycle", `${impl.name}.${op} of a buffer that is ${state}`);
    return buffer as B;
  };
  return {
    name: impl.name,
    contractVersion: SHARED_BUFFER_CONTRACT_VERSION,
    eras: impl.eras,
    allocate(bytes, purpose) {
      if (!Number.isSafeInteger(bytes) || bytes <= 0)
        throw new SharedBufferError("EINVAL", "size", `buffer size must be > 0, got ${bytes}`);
      const buffer = impl.allocate(Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE, purpose);
      if (buffer) states.set(buffer, "allocated");
      return buffer;
    },
    map(buffer) {
      const va = impl.map(check("map", buffer));
      if (va !== null) states.set(buffer, "mapped");
      return va;
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
        throw new SharedBufferError("EINVAL", "foreign-buffer", `${impl.name} did not allocate this buffer`);
      return state;
    },
  };
}
