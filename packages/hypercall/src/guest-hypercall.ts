import { eraProfile, FindingLog, type KernelProfile, withHardened } from "@ivm/kernel";
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
 * How many answers in a row without progress the model lets hv_do_rep_hypercall re-issue before it
 * stops: the kernel re-issues for ever; the model reports a finding and fails the call instead of hanging.
 */
export const REP_SPIN_LIMIT = 64 as const;

/** The id of findings about hv_do_rep_hypercall's trust in the reps-completed count (no kernel checks it). */
export const REP_COUNT_FINDING = "unfixed:hv_do_rep_hypercall" as const;

export interface GuestHypercallsOptions {
  /** The kernel whose behaviours run. Default: the memory's era's profile, hardened. */
  readonly profile?: KernelProfile;
  /** Where findings go. Default: a log of this layer's own. */
  readonly findings?: FindingLog;
}

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
  readonly profile: KernelProfile;
  readonly findings: FindingLog;
  /** Answers a hardened guest refused to trust (impossible rep counts): typed errors instead of a spin. */
  untrustedAnswers = 0;

  constructor(memory: GuestMemory, hypervisor: Hypervisor, options: GuestHypercallsOptions = {}) {
    this.#memory = memory;
    this.#hv = hypervisor;
    this.profile = options.profile ?? withHardened(eraProfile(memory.vtomMode));
    this.findings = options.findings ?? new FindingLog();
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
   * Kernel-exact (every profile's `repCount` is `trusted`): a count at or above the request ends the
   * loop as success, and a count that does not move the start re-issues the same call; both are reported
   * as findings, and after REP_SPIN_LIMIT answers in a row without progress the model fails the call
   * (EDEADLK) where the kernel would spin for ever. Hardened: either answer is a typed EPROTO error
   * (mu_msvm fails fast on the same answers).
   */
  repHypercall(code: number, repCount: number): bigint {
    let repStart = 0;
    let stalled = 0;
    for (;;) {
      const control = encodeControl({ code, fast: false, varHeadSize: 0, repCount, repStart });
      const status = this.#hv.hypercall(control, this.#memory.virtToPhys(this.#inputVa));
      const { result, repsCompleted } = decodeStatus(status);
      if (result !== HvStatus.Success) return status;
      const over = repsCompleted > repCount;
      const noProgress = repsCompleted <= repStart && repsCompleted < repCount;
      if ((over || noProgress) && this.profile.hardened) {
        this.untrustedAnswers++;
        throw new HypercallError(
          "EPROTO",
          over ? "reps-over-count" : "no-progress",
          `hypervisor reported ${repsCompleted} of ${repCount} reps done (resumed at ${repStart})`,
        );
      }
      if (over) {
        this.#finding(
          `the hypervisor reported ${repsCompleted} of ${repCount} reps done and the kernel ended the call as a success`,
        );
        return status;
      }
      if (repsCompleted >= repCount) return status;
      if (noProgress) {
        if (++stalled === REP_SPIN_LIMIT) {
          this.#finding(
            `the hypervisor answered success with ${repsCompleted} of ${repCount} reps done ${REP_SPIN_LIMIT} times in a row; the kernel re-issues the call for ever`,
          );
          throw new HypercallError(
            "EDEADLK",
            "rep-spin",
            `hv_do_rep_hypercall would spin: no progress past rep ${repsCompleted} of ${repCount}`,
          );
        }
      } else {
        stalled = 0;
      }
      repStart = repsCompleted;
    }
  }

  #finding(what: string): void {
    this.findings.record({
      id: REP_COUNT_FINDING,
      profile: this.profile.name,
      invariant: "hypervisor-trust",
      what,
      where: "hv_do_rep_hypercall (HvCallModifySparseGpaPageHostVisibility)",
    });
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
    this.#memory.mmu.writeFrom(this.#inputVa, this.#page, 0, 16 + pfns.length * 8);
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
