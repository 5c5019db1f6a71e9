import { type Era, type HypercallBehaviour, hypercallBehaviours } from "./behaviours/hypercall.js";
import { type NetvscBehaviour, netvscBehaviours } from "./behaviours/netvsc.js";
import { type SwiotlbBehaviour, swiotlbBehaviours } from "./behaviours/swiotlb.js";
import { type VmbusBehaviour, vmbusBehaviours } from "./behaviours/vmbus.js";
import { isProfileName, type PerProfile, PROFILE_NAMES, type ProfileName } from "./names.js";

/**
 * One named kernel's behaviours along the modelled paths: each layer reads its own section. `era` is
 * derived from `hypercall.era` (a shorthand every layer may read); `hardened` asks the layers to keep
 * the lab's stricter checks of host values where the kernel trusts them, reporting them as such.
 */
export interface KernelProfile {
  readonly name: ProfileName;
  readonly era: Era;
  readonly hardened: boolean;
  readonly hypercall: HypercallBehaviour;
  readonly swiotlb: SwiotlbBehaviour;
  readonly vmbus: VmbusBehaviour;
  readonly netvsc: NetvscBehaviour;
}

function build(name: ProfileName): KernelProfile {
  const hypercall = hypercallBehaviours[name];
  return {
    name,
    era: hypercall.era.value,
    hardened: false,
    hypercall,
    swiotlb: swiotlbBehaviours[name],
    vmbus: vmbusBehaviours[name],
    netvsc: netvscBehaviours[name],
  };
}

/** Every profile, kernel-exact (not hardened), by name. */
export const profiles: PerProfile<KernelProfile> = Object.fromEntries(
  PROFILE_NAMES.map((name) => [name, build(name)]),
) as PerProfile<KernelProfile>;

/** Thrown by getProfile for a name the lab does not know; `known` lists the names it does. */
export class UnknownKernelError extends Error {
  override readonly name: string = "UnknownKernelError";
  readonly code = "EINVAL" as const;
  readonly requested: string;
  readonly known: readonly ProfileName[] = PROFILE_NAMES;
  constructor(requested: string) {
    super(`unknown kernel "${requested}"; known kernels: ${PROFILE_NAMES.join(", ")}`);
    this.requested = requested;
  }
}

/** The profile named `name` (kernel-exact). Throws UnknownKernelError for any other name. */
export function getProfile(name: string): KernelProfile {
  if (!isProfileName(name)) throw new UnknownKernelError(name);
  return profiles[name];
}

/** The same kernel with the lab's stricter checks of host values on. */
export function withHardened(profile: KernelProfile): KernelProfile {
  return profile.hardened ? profile : { ...profile, hardened: true };
}

/**
 * The profile an `era` shorthand stands for: the address-bit era is 5.17 (where approach (1) landed),
 * the pte-bit era is 6.9 (the first release with both the load_unaligned_zeropad-safe conversion and the
 * 2024 leak fixes — the pte-bit behaviour the lab modelled before it had profiles).
 */
export const ERA_PROFILES: { readonly [E in Era]: ProfileName } = {
  "address-bit": "5.17",
  "pte-bit": "6.9",
};

/** The representative profile of an era (see ERA_PROFILES). */
export function eraProfile(era: Era): KernelProfile {
  return profiles[ERA_PROFILES[era]];
}
