import { PAGE_SIZE } from "@ivm/memory";
import type { SharedBuffer, SharedBufferStrategy } from "@ivm/shared-buffer";
import type { Gpadl } from "@ivm/vmbus";
import type { KitEnv } from "./kit-env.js";

/** What one run of the lifecycle did, step by step. */
export interface LifecycleOutcome {
  readonly buffer: SharedBuffer | null;
  readonly failedAt: "allocate" | "gpadl" | "map" | null;
  readonly leaked: boolean;
  /** Private-alias pfns of the buffer while it was mapped. */
  readonly pfns: number[];
}

/** The buffer's pages, walked from the address its GPADL is established over. */
export function bufferPfns(env: KitEnv, buffer: SharedBuffer): number[] {
  const pfns: number[] = [];
  for (let i = 0; i < buffer.pages; i++) pfns.push(env.memory.virtToPfn(buffer.gpadlVa + i * PAGE_SIZE));
  return pfns;
}

/**
 * allocate → GPADL → map → (traffic) → GPADL teardown (re-encrypting) → unmap → free or leak, in the
 * kernel's order (5.17 netvsc_device_remove: revoke, vmbus_close, the GPADL teardowns, hv_unmap_memory;
 * then free_netvsc_device frees, or leaks what re-encryption could not take back). Failures at any
 * step unwind the way netvsc_init_buf's error path does. `traffic` runs with the mapped address.
 */
export function runLifecycle(
  env: KitEnv,
  strategy: SharedBufferStrategy,
  bytes: number,
  purpose: string,
  traffic?: (va: number, buffer: SharedBuffer, gpadl: Gpadl) => void,
): LifecycleOutcome {
  const buffer = strategy.allocate(bytes, purpose);
  if (!buffer) return { buffer: null, failedAt: "allocate", leaked: false, pfns: [] };
  const pfns = bufferPfns(env, buffer);
  const est = env.channel.establishGpadl(buffer.gpadlVa, buffer.bytes, { preShared: buffer.preShared });
  if (!est.ok) {
    if (est.mustLeak) strategy.leak(buffer);
    else strategy.free(buffer);
    return { buffer, failedAt: "gpadl", leaked: est.mustLeak, pfns };
  }
  const gpadl = est.value;
  const mapped = strategy.map(buffer);
  if (mapped?.gpadlVa !== undefined) {
    const rebased = env.channel.rebaseGpadl(gpadl, mapped.gpadlVa);
    if (!rebased.ok) throw rebased.error;
  }
  if (mapped !== null) traffic?.(mapped.va, buffer, gpadl);
  const down = env.channel.teardownGpadl(gpadl);
  if (mapped !== null) strategy.unmap(buffer);
  if (down.mustLeak) strategy.leak(buffer);
  else strategy.free(buffer);
  return { buffer, failedAt: mapped === null ? "map" : null, leaked: down.mustLeak, pfns };
}
