import type { ConversionErrors, ConversionSequence, KernelProfile } from "@ivm/kernel";
import { type GuestMemory, PAGE_SIZE, type VtomMode } from "@ivm/memory";
import { HypercallError } from "./errors.js";
import type { GuestHypercalls } from "./guest-hypercall.js";
import { HostVisibility, HV_HYP_PAGE_SIZE, HV_MAX_MODIFY_GPA_REP_COUNT } from "./hv-abi.js";

/** Which kernel generation's vTOM handling runs: see `VtomMode` in @ivm/memory. */
export type Era = VtomMode;

export interface SetMemoryCounters {
  decryptCalls: number;
  encryptCalls: number;
  pagesDecrypted: number;
  pagesEncrypted: number;
  failures: number;
  /** "misaligned address" warnings (the address was rounded down). */
  misaligned: number;
  /** WARN_ONCE "CPA VMM failure to convert memory" hits (pte-bit era). */
  vmmFailures: number;
}

/**
 * set_memory_decrypted / set_memory_encrypted for a Hyper-V vTOM guest, as the booted kernel profile runs
 * them (`profile.hypercall.conversion` and `.conversionErrors`, the same profile as the hypercalls'):
 *
 * - `hypercall-only` (5.16–6.3): __set_memory_enc_dec short-circuits to hv_set_mem_host_visibility:
 *   only the hypercalls; PTEs untouched, so the caller needs a second mapping above vTOM. Errors are the
 *   wrapper's (-EFAULT, -ENOMEM, -EINVAL).
 * - `tlb-flush` (6.4–6.8): __set_memory_enc_pgtable with no prepare step: vm_unmap_aliases, the shared
 *   bit added or removed on the live PTEs and their direct-map alias (then the TLB flush
 *   enc_tlb_flush_required asks for), then the hypercalls. The PTEs stay present throughout.
 * - `clear-present` (6.9 on): prepare = hv_vtom_clear_present (PTEs not present), the shared bit
 *   changed, the hypercalls, and the PTEs present again — always, even after a failure.
 *
 * A failed hypercall in the pte-bit sequences hits the WARN_ONCE "CPA VMM failure to convert memory"
 * and returns -EIO (`eio`) or, from 99c5c4c60e0d, the callback's own code (`callback`: -EFAULT for a
 * failed hypercall, -ENOMEM for the PFN array). Either way the first failing batch aborts and earlier
 * batches stay converted: no rollback, and the PTEs keep the new shared bit.
 */
export class SetMemory {
  readonly #memory: GuestMemory;
  readonly #calls: GuestHypercalls;
  /** The PFN list of one hypercall batch, reused (the kernel's one-page hv_pfn array). */
  readonly #batch = new Float64Array(HV_MAX_MODIFY_GPA_REP_COUNT);
  readonly era: Era;
  readonly #conversion: ConversionSequence;
  readonly #errors: ConversionErrors;
  readonly counters: SetMemoryCounters = {
    decryptCalls: 0,
    encryptCalls: 0,
    pagesDecrypted: 0,
    pagesEncrypted: 0,
    failures: 0,
    misaligned: 0,
    vmmFailures: 0,
  };

  /** Runs the sequence of `calls.profile` (the hypercall plumbing's kernel). */
  constructor(memory: GuestMemory, calls: GuestHypercalls) {
    const profile: KernelProfile = calls.profile;
    if (profile.era !== memory.vtomMode) {
      throw new Error(
        `kernel ${profile.name} is a ${profile.era} kernel but the guest memory was built ${memory.vtomMode}`,
      );
    }
    this.#memory = memory;
    this.#calls = calls;
    this.era = memory.vtomMode;
    this.#conversion = profile.hypercall.conversion.value;
    this.#errors = profile.hypercall.conversionErrors.value;
  }

  /** Makes `pages` pages at `va` shared with the host. Throws HypercallError on failure. */
  decrypted(va: number, pages: number): void {
    this.counters.decryptCalls++;
    this.#change(va, pages, false);
    this.counters.pagesDecrypted += pages;
  }

  /** Makes `pages` pages at `va` private again. Throws HypercallError on failure. */
  encrypted(va: number, pages: number): void {
    this.counters.encryptCalls++;
    this.#change(va, pages, true);
    this.counters.pagesEncrypted += pages;
  }

  #change(va: number, pages: number, enc: boolean): void {
    if (!Number.isInteger(pages) || pages <= 0) {
      throw new HypercallError("EINVAL", "page-count", `page count must be > 0, got ${pages}`);
    }
    if (!this.#memory.isolated) return; // no memory encryption: nothing to do
    if (va % PAGE_SIZE !== 0) {
      this.counters.misaligned++;
      va -= va % PAGE_SIZE;
    }
    try {
      if (this.#conversion === "hypercall-only") this.#hostVisibility(va, pages, enc);
      else this.#pteBit(va, pages, enc);
    } catch (e) {
      this.counters.failures++;
      throw e;
    }
  }

  #pteBit(va: number, pages: number, enc: boolean): void {
    const clearPresent = this.#conversion === "clear-present";
    this.#memory.vmalloc.purge(); // vm_unmap_aliases
    if (clearPresent) this.#memory.changePageAttr(va, pages, { present: false }); // hv_vtom_clear_present
    this.#memory.changePageAttr(va, pages, { shared: !enc });
    try {
      this.#hostVisibility(va, pages, enc);
    } catch (e) {
      if (!(e instanceof HypercallError)) throw e;
      this.counters.vmmFailures++; // WARN_ONCE "CPA VMM failure to convert memory"
      if (this.#errors === "callback") throw e;
      throw new HypercallError("EIO", e.reason, `CPA VMM failure to convert memory: ${e.message}`, e.status, {
        cause: e,
      });
    } finally {
      if (clearPresent) this.#memory.changePageAttr(va, pages, { present: true }); // set_memory_p, always
    }
  }

  /**
   * hv_vtom_set_host_visibility / hv_set_mem_host_visibility: a kmalloc'd one-page PFN array, the pages
   * walked in order (virt_to_hvpfn: a page-table walk for vmalloc addresses), flushed at 510 PFNs and at
   * the last page.
   */
  #hostVisibility(va: number, pages: number, enc: boolean): void {
    const visibility = enc ? HostVisibility.NotVisible : HostVisibility.ReadWrite;
    const arrayVa = this.#memory.kmalloc.kmalloc(HV_HYP_PAGE_SIZE, { tag: "hv-pfn-array" });
    if (arrayVa === null) throw new HypercallError("ENOMEM", "pfn-array", "no memory for the PFN array");
    try {
      // The PFNs of each 510-page batch in one range walk (one page-table walk per PTE table, the
      // same walk count and first error as virt_to_hvpfn page by page), into a reused array.
      const batch = this.#batch;
      for (let done = 0; done < pages; done += HV_MAX_MODIFY_GPA_REP_COUNT) {
        const n = Math.min(HV_MAX_MODIFY_GPA_REP_COUNT, pages - done);
        this.#memory.virtToPfns(va + done * PAGE_SIZE, n, batch);
        this.#calls.markGpaVisibility(n === batch.length ? batch : batch.subarray(0, n), visibility);
      }
    } finally {
      this.#memory.kmalloc.kfree(arrayVa);
    }
  }
}
