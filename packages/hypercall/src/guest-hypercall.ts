import type { GuestMemory } from "@ivm/memory";
import { HypercallError } from "./errors.js";
import {
  decodeStatus,
  encodeControl,
  HV_HYP_PAGE_SIZE,
  HV_MAX_MODIFY_GPA_REP_COUNT,
  HV_PARTITION_ID_SELF,
  HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY,
  HvStatus,
  writeVisibilityInput,
} from "./hv-abi.js";
import type { Hypervisor } from "./hypervisor.js";

/**
 * The guest's hypercall plumbing: a per-CPU input page (kmalloc'd private memory, as hv_cpu_init
 * allocates it), hv_do_rep_hypercall and hv_mark_gpa_visibility.
 */
export class GuestHypercalls {
  readonly #memory: GuestMemory;
  readonly #hv: Hypervisor;
  readonly #inputVa: number;
  readonly #page = new Uint8Array(HV_HYP_PAGE_SIZE);
  readonly #view = new DataView(this.#page.buffer);
  /** Answers the guest refused to trust (impossible rep counts): typed errors instead of a spin. */
  untrustedAnswers = 0;

  constructor(memory: GuestMemory, hypervisor: Hypervisor) {
    this.#memory = memory;
    this.#hv = hypervisor;
    const va = memory.kmalloc.kzalloc(HV_HYP_PAGE_SIZE, { tag: "hv-input-page" });
    if (va === null)
      throw new HypercallError("ENOMEM", "input-page", "no memory for the hypercall input page");
    this.#inputVa = va;
  }

  /** Guest physical address of the input page (what the hypervisor reads). */
  get inputPagePa(): number {
    return this.#memory.virtToPhys(this.#inputVa);
  }

  /**
   * hv_do_rep_hypercall(): issue, and while the hypervisor reports success with reps outstanding,
   * re-issue from the reported rep. Returns the final status word.
   *
   * The kernel trusts the completed count; this model does not: a count above the request or a success
   * that made no progress is a typed EPROTO error (mu_msvm fails fast on the same answers), never an
   * endless loop.
   */
  repHypercall(code: number, repCount: number): bigint {
    let repStart = 0;
    for (;;) {
      const control = encodeControl({ code, fast: false, varHeadSize: 0, repCount, repStart });
      const status = this.#hv.hypercall(control, this.#memory.virtToPhys(this.#inputVa));
      const { result, repsCompleted } = decodeStatus(status);
      if (result !== HvStatus.Success) return status;
      if (repsCompleted > repCount || repsCompleted <= repStart) {
        this.untrustedAnswers++;
        throw new HypercallError(
          "EPROTO",
          repsCompleted > repCount ? "reps-over-count" : "no-progress",
          `hypervisor reported ${repsCompleted} of ${repCount} reps done (resumed at ${repStart})`,
        );
      }
      if (repsCompleted === repCount) return status;
      repStart = repsCompleted;
    }
  }

  /**
   * hv_mark_gpa_visibility(): up to 510 PFNs in one rep hypercall. A VM without isolation does nothing;
   * more than 510 PFNs is -EINVAL without a call; any failed status is -EFAULT.
   */
  markGpaVisibility(pfns: ArrayLike<number>, visibility: number): void {
    if (!this.#hv.isolation.isolated) return;
    if (pfns.length > HV_MAX_MODIFY_GPA_REP_COUNT) {
      throw new HypercallError(
        "EINVAL",
        "too-many-pfns",
        `${pfns.length} PFNs exceed the ${HV_MAX_MODIFY_GPA_REP_COUNT}-PFN input page`,
      );
    }
    writeVisibilityInput(this.#view, HV_PARTITION_ID_SELF, visibility, pfns);
    // Only the header and the PFNs are written, as the kernel fills its per-CPU page.
    this.#memory.mmu.write(this.#inputVa, this.#page.subarray(0, 16 + pfns.length * 8));
    const status = this.repHypercall(HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY, pfns.length);
    const { result } = decodeStatus(status);
    if (result !== HvStatus.Success) {
      throw new HypercallError(
        "EFAULT",
        "hypercall-failed",
        `host visibility hypercall failed with status 0x${result.toString(16)}`,
        result,
      );
    }
  }
}
