import type { BuddyAllocator } from "./buddy.js";
import { MAX_ORDER } from "./constants.js";
import { PageFlag, type PhysicalMemory } from "./phys.js";

/** One broken invariant, with the first page that shows it. */
export interface InvariantViolation {
  readonly invariant: "I1" | "I4";
  readonly pfn: number;
  readonly detail: string;
}

/**
 * The memory-level invariants of the design, checked by walking every free block:
 * I1 — no page the buddy allocator holds as free is host-visible, unless a kernel-exact path freed it
 *      so (BuddyAllocator.freeHostVisible: a finding of that kernel, not a model fault);
 * I4 — no leaked page is free (leaked pages are never handed out again).
 * O(free pages); cheap enough to run after every step on test-sized guests.
 */
export function checkMemoryInvariants(phys: PhysicalMemory, buddy: BuddyAllocator): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  for (let order = 0; order < MAX_ORDER; order++) {
    for (const head of buddy.freeList(order)) {
      for (let p = head; p < head + 2 ** order; p++) {
        const f = phys.flags[p]!;
        if (f & PageFlag.HostVisible && !buddy.isFreedWhileVisible(p))
          out.push({ invariant: "I1", pfn: p, detail: "free page is host-visible" });
        if (f & PageFlag.Leaked) out.push({ invariant: "I4", pfn: p, detail: "leaked page is free" });
      }
    }
  }
  return out;
}
