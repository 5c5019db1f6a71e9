/**
 * The two VMBus monitor pages (vmbus_connection.monitor_pages[2]): mirrors their half of vmbus_connect
 * and vmbus_disconnect (drivers/hv/connection.c) as the booted kernel profile has them
 * (`profile.vmbus.monitorPageMapping`, `.monitorPagesFreeChecksReencrypt`):
 *
 * - two order-0 pages from the page allocator: hv_alloc_hyperv_zeroed_page (__GFP_ZERO) while the
 *   address-bit mapping exists, hv_alloc_hyperv_page (not zeroed) once a5ddb7458821 removed it;
 * - in an isolated guest both are made host-visible with one set_memory_decrypted each (both are tried,
 *   the results OR'd); then, in the address-bit era, each is memremap'd at pa + vTOM (a RAM-less
 *   address, so an ioremap area) and the guest touches it only there;
 * - both are zeroed through the guest's mapping, because the visibility change destroyed their contents;
 * - INITIATE_CONTACT carries pa + vTOM (address-bit) or pa | vTOM (6.4 on): the same number, as pa never
 *   has the vTOM bit;
 * - vmbus_disconnect (and vmbus_connect's cleanup, which calls it) memunmaps, re-encrypts and frees.
 *   Before 03f5a999adba the re-encryption's result is ignored and both pages are freed whatever it was:
 *   a page still host-visible goes back to the allocator (CVE-2024-36913). From it, a page is freed only
 *   when its re-encryption succeeded, and a failed decryption at connect leaks both at once.
 *
 * The interrupt page vmbus_connect also allocates is not modelled (the model signals through the SynIC
 * link, not through it).
 */
import { HypercallError } from "@ivm/hypercall";
import { Gfp, PAGE_SIZE } from "@ivm/memory";
import type { VmbusConnection } from "./connection.js";
import { err, ok, type Result } from "./errors.js";
import { VMBUS_FINDING } from "./profile.js";

/** Owner tags of the monitor pages and of their address-bit-era shared-alias mapping. */
export const MONITOR_TAGS = {
  pages: "vmbus-monitor",
  mapping: "vmbus-monitor-map",
} as const;

/** What vmbus_connect holds for one monitor page. */
export interface MonitorPage {
  /** The page (private-alias pfn). */
  readonly pfn: number;
  /** The address the guest uses: the memremap of the shared alias, or the direct map. */
  readonly va: number;
  /** The guest physical address INITIATE_CONTACT sends (monitor_page1 / monitor_page2). */
  readonly gpa: number;
  /** Whether `va` is a memremap the teardown must memunmap. */
  readonly remapped: boolean;
}

/** Counters of the monitor pages' lifecycle, for tests and reports. */
export interface MonitorPageCounters {
  /** Pages allocated by vmbus_connect. */
  allocated: number;
  /** Pages returned to the allocator private. */
  freed: number;
  /** Pages leaked because their visibility is unknown (03f5a999adba on). */
  leaked: number;
  /**
   * Pages a pre-03f5a999adba kernel freed although re-encryption failed (CVE-2024-36913); the model
   * returns them to the allocator still host-visible, or leaks them when the profile is hardened.
   */
  freedWhileVisible: number;
}

function allocPage(conn: VmbusConnection): number | null {
  // hv_alloc_hyperv_zeroed_page came out with the memremap (a5ddb7458821): zeroing happens after the
  // conversion in every profile, so only the allocation's gfp differs.
  const zeroed = conn.kernel.profile.vmbus.monitorPageMapping.value === "memremap-shared-alias";
  return conn.memory.buddy.allocPages(0, { tag: MONITOR_TAGS.pages, gfp: zeroed ? Gfp.Zero : 0 });
}

/**
 * vmbus_connect's monitor-page setup. On failure the pages were already handled as the kernel's cleanup
 * path does (freed, leaked or freed while visible) and the error is returned; nothing is left to free.
 */
export function setupMonitorPages(
  conn: VmbusConnection,
  counters: MonitorPageCounters,
): Result<readonly [MonitorPage, MonitorPage]> {
  const { memory } = conn;
  const pfns: (number | null)[] = [allocPage(conn), allocPage(conn)];
  for (const p of pfns) if (p !== null) counters.allocated++;
  const held = (): MonitorPage[] =>
    pfns
      .filter((p): p is number => p !== null)
      .map((pfn) => ({ pfn, va: memory.pageToVirt(pfn), gpa: pfn * PAGE_SIZE, remapped: false }));
  if (pfns[0] === null || pfns[1] === null) {
    teardownMonitorPages(conn, held(), counters);
    return err("ENOMEM", "monitor-pages", "no memory for the monitor pages");
  }
  const pages = held();
  if (!memory.isolated) return ok([pages[0]!, pages[1]!]);

  let failed = false;
  for (const page of pages) {
    try {
      conn.hyperv.setMemory.decrypted(page.va, 1);
    } catch (e) {
      if (!(e instanceof HypercallError)) throw e;
      failed = true; // ret |= : the second page is still tried
    }
  }
  if (failed) {
    if (conn.kernel.profile.vmbus.monitorPagesFreeChecksReencrypt.value) {
      // The state is unknown: both pointers are dropped, so both pages are leaked.
      for (const page of pages) memory.buddy.leakPages(page.pfn, 1);
      counters.leaked += 2;
    } else {
      teardownMonitorPages(conn, pages, counters);
    }
    return err("EFAULT", "monitor-pages-decrypt", "set_memory_decrypted of the monitor pages failed");
  }

  const boundary = memory.vtomPfn * PAGE_SIZE;
  const mapped: MonitorPage[] = [];
  // The mapping follows the era the memory was built in (as hv_ringbuffer_init's does): the profile's
  // monitorPageMapping row is that era's, and a guest whose PTEs have no shared bit needs the remap.
  if (memory.vtomMode === "address-bit") {
    for (const page of pages) {
      const va = memory.vmalloc.vmapPfn([page.pfn + memory.vtomPfn], { tag: MONITOR_TAGS.mapping });
      if (va === null) {
        teardownMonitorPages(conn, [...mapped, ...pages.slice(mapped.length)], counters);
        return err("ENOMEM", "monitor-pages-memremap", "memremap of a monitor page failed");
      }
      mapped.push({ pfn: page.pfn, va, gpa: page.gpa + boundary, remapped: true });
    }
  } else {
    for (const page of pages) mapped.push({ ...page, gpa: page.gpa + boundary });
  }
  for (const page of mapped) memory.mmu.fill(page.va, PAGE_SIZE, 0);
  return ok([mapped[0]!, mapped[1]!]);
}

/**
 * vmbus_disconnect's monitor-page half: memunmap, set_memory_encrypted per page (isolated guests), then
 * free. Before 03f5a999adba a page whose re-encryption failed is freed anyway: reported as
 * CVE-2024-36913 and, kernel-exact, returned to the allocator still host-visible (hardened, the model
 * leaks it instead). From 03f5a999adba such a page is leaked and counted.
 */
export function teardownMonitorPages(
  conn: VmbusConnection,
  pages: readonly MonitorPage[],
  counters: MonitorPageCounters,
): void {
  const { memory, kernel } = conn;
  const checks = kernel.profile.vmbus.monitorPagesFreeChecksReencrypt.value;
  for (const page of pages) if (page.remapped) memory.vmalloc.vunmap(page.va);
  for (const page of pages) {
    let reencrypted = true;
    if (memory.isolated) {
      try {
        conn.hyperv.setMemory.encrypted(memory.pageToVirt(page.pfn), 1);
      } catch (e) {
        if (!(e instanceof HypercallError)) throw e;
        reencrypted = false;
      }
    }
    if (reencrypted) {
      memory.buddy.freePages(page.pfn, 0);
      counters.freed++;
    } else if (checks) {
      memory.buddy.leakPages(page.pfn, 1);
      counters.leaked++;
    } else {
      kernel.report({
        id: VMBUS_FINDING.monitorPageFreedVisible,
        invariant: "I1",
        what: `free_page of monitor page pfn 0x${page.pfn.toString(16)} after set_memory_encrypted failed: it may still be host-visible`,
        where: "vmbus_disconnect",
      });
      counters.freedWhileVisible++;
      if (kernel.profile.hardened) memory.buddy.leakPages(page.pfn, 1);
      else memory.buddy.freeHostVisible(page.pfn, 0, "vmbus_disconnect: monitor page");
    }
  }
}
