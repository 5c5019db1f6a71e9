import type { PerProfile } from "../names.js";
import { type Sourced, sourced } from "../sourced.js";

/**
 * What the VMBus layer (drivers/hv: channel.c, connection.c, ring_buffer.c) reads from a profile.
 * A minimal stub: the VMBus behaviours are filled in and checked by the vmbus work.
 */
export interface VmbusBehaviour {
  /** vmbus_gpadl.decrypted: whether GPADL teardown knows the buffer's visibility (CVE-2024-36912). */
  readonly gpadlDecryptedTracking: Sourced<boolean>;
}

const ABSENT: Sourced<boolean> = sourced(
  false,
  "f2f136c05fb6",
  "Drivers: hv: vmbus: Add SNP support for VMbus channel initiate message",
  "5.16",
);

const TRACKED: Sourced<boolean> = sourced(
  true,
  "211f514ebf1e",
  "Drivers: hv: vmbus: Track decrypted status in vmbus_gpadl",
  "6.9",
);

export const vmbusBehaviours: PerProfile<VmbusBehaviour> = {
  "5.17": { gpadlDecryptedTracking: ABSENT },
  "6.1": { gpadlDecryptedTracking: ABSENT },
  "6.1.91": { gpadlDecryptedTracking: { ...TRACKED, since: "6.1.91" } },
  "6.4": { gpadlDecryptedTracking: ABSENT },
  "6.6": { gpadlDecryptedTracking: ABSENT },
  "6.9": { gpadlDecryptedTracking: TRACKED },
  "6.12": { gpadlDecryptedTracking: TRACKED },
};
