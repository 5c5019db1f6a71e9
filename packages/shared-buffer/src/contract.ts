import type { Era, HypervLayer } from "@ivm/hypercall";
import type { GuestMemory } from "@ivm/memory";

/** Bumped on any breaking change to the interfaces below. */
export const SHARED_BUFFER_CONTRACT_VERSION = 1 as const;

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
   * `preShared`, makes those pages host-visible.
   */
  readonly gpadlVa: number;
  /**
   * The pages are host-visible before any GPADL exists (a pre-shared pool): the GPADL must neither decrypt
   * them nor re-encrypt them at teardown.
   */
  readonly preShared: boolean;
}

/** The lifecycle state the consumer's calls have reached. */
export type BufferState = "allocated" | "mapped" | "unmapped" | "freed" | "leaked";

/**
 * The seam of the seed's debate: how "N bytes shared with the host" become memory the guest can use.
 * The kernel's order is allocate → GPADL (by the driver) → map → traffic → unmap → GPADL teardown (by the
 * driver, re-encrypting) → free, or leak when re-encryption failed.
 */
export interface SharedBufferStrategy {
  readonly name: string;
  readonly contractVersion: typeof SHARED_BUFFER_CONTRACT_VERSION;
  /** The eras this approach was written for; the conformance kit runs it in each. */
  readonly eras: readonly Era[];
  /** Step 1: private memory and a private address covering it; null is -ENOMEM with nothing held. */
  allocate(bytes: number, purpose: BufferPurpose): SharedBuffer | null;
  /** Step 3, after the GPADL made the pages host-visible: the address the guest touches the shared bytes at. */
  map(buffer: SharedBuffer): number | null;
  /** Step 5, before the GPADL teardown. */
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

/** Each strategy package exports one of these. */
export type StrategyFactory<S extends StrategyServices = StrategyServices> = (
  services: S,
) => SharedBufferStrategy;
