import { PageFlag } from "@ivm/memory";
import { NETVSC_BUFFER_TAGS } from "@ivm/netvsc";
import { SHARED_POOL_TAG } from "@ivm/shared-buffer";
import { SWIOTLB_TAG } from "@ivm/swiotlb";
import { MONITOR_TAGS, RING_TAGS } from "@ivm/vmbus";
import { checkChannels } from "./channels.js";
import type { Vm } from "./vm.js";

/** The design's invariants (docs/design.md). */
export type InvariantId = "I1" | "I2" | "I3" | "I4" | "I5" | "I6" | "I7" | "I8";

/** One broken invariant: which, what was seen, and the first page that shows it when there is one. */
export interface InvariantViolation {
  readonly invariant: InvariantId;
  readonly detail: string;
  readonly pfn?: number;
}

/**
 * What the checker carries between calls. `mmuFaults` is the count at boot: boot itself may
 * legitimately fault (a swiotlb pool whose conversion failed is reported by the MMU on first use, as in
 * the kernel), so I7 is measured from there. `cleanAtVisibilityChange` is the visibility-change count
 * at the last page scan that found nothing (see `checkVmInvariants`).
 */
export interface InvariantBaseline {
  readonly mmuFaults: number;
  cleanAtVisibilityChange: number;
}

/** Guard counters of NICs that were removed, so a removal does not hide an earlier break. */
export interface RetiredNicGuards {
  parsedFromShared: number;
  staleCompletions: number;
  sectionDoubleFrees: number;
}

/**
 * Owners whose pages may be host-visible: the swiotlb pool, ring buffers, the VMBus monitor pages,
 * netvsc's buffers and a strategy's boot-time pool. Any other visible page (slab, page tables, the hypercall input page, a
 * free page) means the shared and private pools overlap (I8) unless it was leaked (I4).
 */
const SHARED_OWNERS: ReadonlySet<string> = new Set<string>([
  SWIOTLB_TAG,
  RING_TAGS.pages,
  // the connection's two monitor pages (vmbus_connect makes them host-visible in an isolated guest)
  MONITOR_TAGS.pages,
  NETVSC_BUFFER_TAGS.rx,
  NETVSC_BUFFER_TAGS.tx,
  // a boot-time pool (@ivm/strategy-shared-pool's); the tag is the contract's, not a strategy package's
  SHARED_POOL_TAG,
]);

/**
 * Checks I1–I8 against the VM's own counters and page state; every layer keeps what is read here.
 * Nothing here reads guest memory bytes.
 *
 * Findings are not violations. When the booted kernel does something its fixed successors do not — on
 * 5.17, vmbus_free_ring and free_netvsc_device free pages that may still be host-visible
 * (CVE-2024-36909, CVE-2024-36911) — the layer that runs that code records a Finding in the VM's log.
 * Kernel-exact, it returns the block through BuddyAllocator.freeHostVisible (the pages are marked);
 * hardened, it keeps the pages out of the allocator (leaked). Either way the kernel's bug is reported
 * once, as the finding (`vm.findings`, whose `invariant` names the rule the kernel breaks, e.g. "I1"),
 * and the checker excuses exactly the marked pages: I1 (a free page host-visible) and I8 (a visible page
 * of a non-shared owner) skip pages freed that way, and I7 skips private-alias faults once such a free
 * happened (the next owner of such a page faults on it). Any other free visible page, wrong owner or
 * fault is still the model's bug. `Vm.audit()` returns both lists side by side.
 *
 * Cost: O(1) counter reads, plus two page scans (free lists for I1/I4, visible pages for I8) only when
 * a page changed visibility since the last clean scan. That is sound because the page-state invariants
 * cannot break any other way: the memory layer refuses to free a host-visible or leaked page and to
 * leak a free one, and a visible page's owner cannot change without it being freed first.
 *
 * - I1, I4: the memory model (no free page host-visible; no leaked page free).
 * - I2: the host view's post-condition counter (a completed host access to a private page).
 * - I3: netvsc's parsed-from-shared counter (a received range parsed through a shared alias).
 * - I5: swiotlb copied exactly the mapped bytes at every map (the original, never a stale slot).
 * - I6: no completion acted on twice (stale completions, send sections released twice).
 * - I7: no guest access faulted since boot (honest or attacked, the guest never uses a wrong alias).
 * - I8: host-visible pages belong only to shared owners (or are leaked); the swiotlb pool holds no
 *   strategy page and no page outside the pool is owned by it; every open channel (sub-channels too)
 *   has its own host-visible ring (checkChannels).
 */
export function checkVmInvariants(
  vm: Vm,
  base: InvariantBaseline,
  retired: RetiredNicGuards,
): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  const changes = vm.memory.phys.visibilityChanges;
  if (changes !== base.cleanAtVisibilityChange) {
    for (const v of vm.memory.checkInvariants())
      out.push({ invariant: v.invariant, detail: v.detail, pfn: v.pfn });
    checkSharedOwners(vm, out);
    if (out.length === 0) base.cleanAtVisibilityChange = changes;
  }

  const view = vm.hyperv.hostView;
  if (view.privateHits !== 0)
    out.push({ invariant: "I2", detail: `${view.privateHits} host accesses reached private pages` });

  let parsedFromShared = retired.parsedFromShared;
  let stale = retired.staleCompletions;
  let doubleFrees = retired.sectionDoubleFrees;
  for (const nic of vm.nics) {
    const s = nic.device.stats;
    parsedFromShared += s.parsedFromShared;
    stale += s.staleCompletions;
    doubleFrees += s.errors.get("send-section-not-in-use");
  }
  if (parsedFromShared !== 0)
    out.push({
      invariant: "I3",
      detail: `${parsedFromShared} received ranges parsed through a shared alias`,
    });

  const pool = vm.dmaLayer.pool;
  if (pool) {
    const b = pool.bounce.stats();
    if (b.bytesCopiedAtMap !== b.bytesMapped)
      out.push({
        invariant: "I5",
        detail: `swiotlb mapped ${b.bytesMapped} bytes but copied ${b.bytesCopiedAtMap} at map time`,
      });
  }

  if (stale !== 0)
    out.push({ invariant: "I6", detail: `${stale} completions acted on a packet not in flight` });
  if (doubleFrees !== 0) out.push({ invariant: "I6", detail: `${doubleFrees} send sections released twice` });

  // Once the booted kernel has freed host-visible pages (a finding), the allocator may hand one out and
  // the guest's next private-alias access to it faults: the kernel's bug again, not the model's. Those
  // faults leave I7; every other kind still counts.
  const mmu = vm.memory.mmu;
  const excused = vm.memory.buddy.freedWhileVisiblePages > 0 ? mmu.faults["private-alias-to-shared-page"] : 0;
  const faults = mmu.totalFaults - base.mmuFaults - excused;
  if (faults > 0) out.push({ invariant: "I7", detail: `${faults} guest accesses faulted since boot` });

  // Every channel of every NIC, sub-channels included (channels.ts).
  checkChannels(vm, out);
  return out;
}

function checkSharedOwners(vm: Vm, out: InvariantViolation[]): void {
  const { phys, buddy } = vm.memory;
  if (!vm.memory.isolated || phys.hostVisiblePages === 0) return;
  const pool = vm.dmaLayer.pool;
  const poolStart = pool ? pool.boot.startPfn : 0;
  const poolEnd = pool ? poolStart + pool.boot.poolPages : 0;
  const flags = phys.flags;
  for (let pfn = 0; pfn < phys.pages; pfn++) {
    const f = flags[pfn]!;
    if ((f & PageFlag.HostVisible) === 0) continue;
    if (pfn >= poolStart && pfn < poolEnd) continue;
    if ((f & PageFlag.Leaked) !== 0) continue;
    // freed while host-visible by a kernel-exact path (a finding): free again, or handed out since
    if (buddy.isFreedWhileVisible(pfn)) continue;
    const owner = buddy.ownerOf(pfn);
    if (!SHARED_OWNERS.has(owner) || owner === SWIOTLB_TAG) {
      out.push({ invariant: "I8", detail: `host-visible page owned by "${owner}"`, pfn });
      return; // one is enough: the rest are usually the same block
    }
  }
}
