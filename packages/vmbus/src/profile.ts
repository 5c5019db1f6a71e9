/**
 * The kernel profile a VMBus layer runs, and the findings it reports. A layer reads its behaviours from
 * the KernelProfile it is given (`profile.vmbus`) and never tests a version number itself; what a
 * profile's kernel would do that its fixed successors do not goes to the FindingLog as a Finding.
 */
import { type Finding, FindingLog, type KernelProfile, profiles, withHardened } from "@ivm/kernel";

/**
 * The profile used when a caller gives none: 6.12 (the 2024 leak fixes present) with the lab's stricter
 * checks of host-written ring indices (`hardened`), which is what the layer did before profiles.
 */
export const DEFAULT_KERNEL_PROFILE: KernelProfile = withHardened(profiles["6.12"]);

/**
 * The ids of the findings this layer reports: the CVE, the fixing commit, or — where no kernel fixed it
 * — a short name of the unchecked host value.
 */
export const VMBUS_FINDING = {
  /** The GPADL's visibility is unknown and vmbus_gpadl has no `decrypted` flag to say so. */
  gpadlStateLost: "CVE-2024-36912",
  /** vmbus_free_ring __free_pages'd ring pages that may still be host-visible. */
  ringFreedVisible: "CVE-2024-36909",
  /** vmbus_disconnect free_page'd a monitor page whose set_memory_encrypted failed. */
  monitorPageFreedVisible: "CVE-2024-36913",
  /** __vmbus_establish_gpadl returned after a failed set_memory_decrypted without freeing msginfo. */
  msginfoLeaked: "510164539f16",
  /** hv_ringbuffer_write copied outside the ring's double mapping at a host-written write_index. */
  ringWriteOutOfBounds: "ring-write-index-unchecked",
  /** hv_ringbuffer_write fetched write_index twice and the host changed it in between. */
  ringWriteDoubleFetch: "ring-write-index-double-fetch",
  /** hv_pkt_iter_avail trusted a write_index past the data area: the reader ran past what was published. */
  ringReadPastPublished: "ring-read-write-index-unchecked",
  /** init_vp_index cleared and re-walked a NUMA node none of whose CPUs is a housekeeping CPU, for ever. */
  initVpIndexLoopsForever: "init-vp-index-node-without-housekeeping-cpu",
} as const;

/** A layer's view of the boot: its profile, where findings go, and how to report one. */
export class KernelContext {
  readonly profile: KernelProfile;
  readonly findings: FindingLog;

  constructor(profile: KernelProfile = DEFAULT_KERNEL_PROFILE, findings: FindingLog = new FindingLog()) {
    this.profile = profile;
    this.findings = findings;
  }

  /** Records what the booted kernel does here (the profile is filled in). */
  report(finding: Omit<Finding, "profile">): void {
    this.findings.record({ ...finding, profile: this.profile.name });
  }
}
