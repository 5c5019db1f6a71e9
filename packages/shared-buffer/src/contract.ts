import type { Era, HypervLayer } from "@ivm/hypercall";
import type { GuestMemory } from "@ivm/memory";

/** Bumped on any breaking change to the interfaces below. */
export const SHARED_BUFFER_CONTRACT_VERSION = 1 as const;

/**
 * The owner tag of a boot-time pool's pages: made host-visible once and handed out as `preShared`
 * buffers, they stay allocated to the pool (never free while visible). A strategy that keeps such a
 * pool tags it with this, so a checker knows the owner without depending on the strategy's package.
 */
export const SHARED_POOL_TAG = "shared-pool" as const;

/** What a buffer is for; strategies use it as the owner tag of the pages they allocate. */
export type BufferPurpose = "netvsc-rx" | "netvsc-tx" | (string & {});

/**
 * A buffer a strategy allocated. Strategies may return a richer object (their own bookkeeping); the
 * consumer only reads these fields and hands the same object back.
 */
export interface SharedBuffer {
  readonly strategy: string;
  readonly purpose: BufferPurpose;
  /** Size in bytes, a whole number of pages. */
  readonly bytes: number;
  readonly pages: number;
  /**
   * The private kernel address the GPADL is established over (step 2): VMBus walks it for PFNs and, unless
   * `preShared`, makes those pages host-visible. It never changes; where `map` moves the mapping the
   * GPADL must be walked through, `map`'s result says so ({@link MappedBuffer.gpadlVa}).
   */
  readonly gpadlVa: number;
  /**
   * The pages are host-visible before any GPADL exists (a pre-shared pool): the GPADL must neither decrypt
   * them nor re-encrypt them at teardown.
   */
  readonly preShared: boolean;
}

/** What `map` gives the consumer. */
export interface MappedBuffer {
  /** recv_buf / send_buf: the address the guest touches the shared bytes at. */
  readonly va: number;
  /**
   * Present only where the strategy moved the mapping the GPADL was established over (strategy (4)
   * swaps its transient mapping for the alias): the address the GPADL must cover from now on, so that
   * its teardown re-encrypts through a live mapping. The consumer rebases the GPADL to it.
   */
  readonly gpadlVa?: number;
}

/** The lifecycle state the consumer's calls have reached. */
export type BufferState = "allocated" | "mapped" | "unmapped" | "freed" | "leaked";

/**
 * The seam of the seed's debate: how "N bytes shared with the host" become memory the guest can use.
 * The lifecycle, in the kernel's order (5.17 netvsc_device_remove, then free_netvsc_device):
 * allocate → GPADL (by the driver) → map → traffic → revoke, close and GPADL teardown (by the driver;
 * the teardown re-encrypts) → unmap → free, or leak when re-encryption failed.
 */
export interface SharedBufferStrategy {
  readonly name: string;
  readonly contractVersion: typeof SHARED_BUFFER_CONTRACT_VERSION;
  /** The eras this approach was written for; the conformance kit runs it in each. */
  readonly eras: readonly Era[];
  /** Step 1: private memory and a private address covering it; null is -ENOMEM with nothing held. */
  allocate(bytes: number, purpose: BufferPurpose): SharedBuffer | null;
  /**
   * Step 3, after the GPADL made the pages host-visible: the address the guest touches the shared bytes
   * at and, where the strategy moved it, the address the GPADL must cover. Null is -ENOMEM.
   */
  map(buffer: SharedBuffer): MappedBuffer | null;
  /** Step 5, after the GPADL teardown (hv_unmap_memory follows vmbus_teardown_gpadl in netvsc_device_remove). */
  unmap(buffer: SharedBuffer): void;
  /** Step 6, only after re-encryption succeeded: everything is returned. */
  free(buffer: SharedBuffer): void;
  /** Step 6 when re-encryption failed: the data pages are leaked (counted, never reused); private metadata is freed. */
  leak(buffer: SharedBuffer): void;
  /** The state a buffer has reached. */
  state(buffer: SharedBuffer): BufferState;
}

/** What a strategy may be given at construction; each takes only what it uses. */
export interface StrategyServices {
  readonly memory: GuestMemory;
  readonly hyperv: HypervLayer;
}

/** Builds a strategy from the services it uses (and its own options, if it has any). */
export type StrategyFactory<S extends Pick<StrategyServices, "memory"> = StrategyServices, O = never> = (
  services: S,
  options?: O,
) => SharedBufferStrategy;

/**
 * The kernels an approach was written for: release lines `from` through `through` (none: every later
 * kernel) and where the range comes from. It is @ivm/kernel's `KernelRange` by shape (its `writtenFor`
 * builds one), declared here so the contract depends only on memory and the hypervisor layer.
 */
export interface StrategyKernelRange {
  readonly from: string;
  readonly through?: string;
  readonly written: string;
}

/** What `unsupportedOn` reads of a kernel profile: its release line (every @ivm/kernel profile is one). */
export interface StrategyKernel {
  readonly name: string;
}

/**
 * What each strategy package exports, once: everything a composition root needs to know about the
 * approach, so nothing about a strategy is declared twice (apps/catalog is a plain list of these).
 * `Ops` is the DMA-ops installer type of the layer that runs it (the contract does not name swiotlb).
 */
export interface StrategyDescriptor<
  S extends Pick<StrategyServices, "memory"> = StrategyServices,
  O = never,
  Ops = never,
> {
  readonly name: string;
  /** The approach's number in the seed (1–4), 5 for Linux 6.4+, 6 for OpenHCL's pool. */
  readonly approach: number;
  /** One line for tables. */
  readonly summary: string;
  /** The npm package that implements it. */
  readonly packageName: string;
  /** The eras this approach was written for; the conformance kit runs it in each. */
  readonly eras: readonly Era[];
  /** The kernels the approach was written for (release lines, and where that range comes from). */
  readonly kernels: StrategyKernelRange;
  /** Why the approach cannot run on `profile` (its kernel lies outside `kernels`), or null when it can. */
  unsupportedOn(profile: StrategyKernel): string | null;
  /** The DMA ops the approach installs on the device (the kernel's platform hooks), if any. */
  readonly dmaOps?: Ops;
  readonly create: StrategyFactory<S, O>;
}
