import type { PerProfile } from "../names.js";
import { type Sourced, sourced } from "../sourced.js";

/**
 * What the netvsc driver (drivers/net/hyperv) reads from a profile.
 * A minimal stub: the netvsc behaviours are filled in and checked by the netvsc work.
 */
export interface NetvscBehaviour {
  /** "hv_netvsc: Don't free decrypted memory" (CVE-2024-36911): leak buffers whose GPADL stayed decrypted. */
  readonly keepDecryptedBuffers: Sourced<boolean>;
}

const FREES: Sourced<boolean> = sourced(
  false,
  "846da38de0e8",
  "net: netvsc: Add Isolation VM support for netvsc driver",
  "5.17",
);

const KEEPS: Sourced<boolean> = sourced(
  true,
  "bbf9ac34677b",
  "hv_netvsc: Don't free decrypted memory",
  "6.9",
);

export const netvscBehaviours: PerProfile<NetvscBehaviour> = {
  "5.17": { keepDecryptedBuffers: FREES },
  "6.1": { keepDecryptedBuffers: FREES },
  "6.1.91": { keepDecryptedBuffers: { ...KEEPS, since: "6.1.91" } },
  "6.4": { keepDecryptedBuffers: FREES },
  "6.6": { keepDecryptedBuffers: FREES },
  "6.9": { keepDecryptedBuffers: KEEPS },
  "6.12": { keepDecryptedBuffers: KEEPS },
};
