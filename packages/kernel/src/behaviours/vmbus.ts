import type { PerProfile } from "../names.js";
import { type Sourced, sourced } from "../sourced.js";

/**
 * When vmbus_teardown_gpadl calls set_memory_encrypted: `always` (every teardown, the result only
 * warned about, or since 211f514ebf1e stored in `decrypted`), or `if-decrypted` (only for a GPADL whose
 * buffer was decrypted, 0a4534bdf29a, 6.18 — confidential channels skip decryption).
 */
export type TeardownReencrypt = "always" | "if-decrypted";

/**
 * How the ring code treats the indices the host can write (write_index, read_index in the shared
 * header page): `trusted` — hv_ringbuffer_write, hv_get_bytes_to_write and hv_pkt_iter_avail use them
 * as offsets with no range or alignment check, and the outbound write position is the shared
 * write_index itself (there is no private write index), fetched once for the space check and again
 * for the copy.
 */
export type RingIndexHandling = "trusted";

/**
 * How vmbus_connect lets the guest touch the two monitor pages once they are host-visible:
 * `memremap-shared-alias` — the address-bit era's second mapping, memremap(pa + vTOM, MEMREMAP_WB), and
 * INITIATE_CONTACT carries pa + vTOM; `direct-map` — set_memory_decrypted put the shared bit in the
 * direct-map PTEs (6.4 on), and the message carries virt_to_phys(page) | vTOM.
 */
export type MonitorPageMapping = "memremap-shared-alias" | "direct-map";

/**
 * The form of init_vp_index (drivers/hv/channel_mgmt.c) that picks a performance channel's target CPU:
 * `node-cpus` — every CPU of the NUMA node is a candidate, a node whose CPUs are all allocated is
 * cleared before the pick, and a WS2008/WIN7 connection binds every channel to VMBUS_CONNECT_CPU;
 * `housekeeping-cpus` — only CPUs in housekeeping_cpumask(HK_TYPE_MANAGED_IRQ) are candidates (none at
 * all: VMBUS_CONNECT_CPU), a node with no candidate left is cleared and walked again, and the WS2008/WIN7
 * rule is gone (a6b94c6b4919 removed those versions in the same release).
 */
export type InitVpIndexForm = "node-cpus" | "housekeeping-cpus";

/**
 * What the VMBus layer (drivers/hv: channel.c, connection.c, ring_buffer.c) reads from a profile.
 * Checked against the 2024 patch mails ("Handle set_memory_XXcrypted() errors", v2 of 2024-03-11 and
 * its AUTOSEL backports), the 2025 Confidential VMBus series and ring_buffer.c as stored.
 */
export interface VmbusBehaviour {
  /**
   * vmbus_gpadl.decrypted (CVE-2024-36912): __vmbus_establish_gpadl sets it before set_memory_decrypted
   * and clears it only when a re-encryption succeeded; teardown stores whether re-encryption failed.
   * Without it the caller cannot know the buffer may still be host-visible, and frees it.
   */
  readonly gpadlDecryptedTracking: Sourced<boolean>;
  /** vmbus_teardown_gpadl's set_memory_encrypted call. */
  readonly teardownReencrypt: Sourced<TeardownReencrypt>;
  /**
   * vmbus_free_ring leaks the ring pages when the ring GPADL is still decrypted (CVE-2024-36909);
   * before, __free_pages ran whatever the pages' visibility.
   */
  readonly ringFreeChecksDecrypted: Sourced<boolean>;
  /**
   * __vmbus_establish_gpadl frees the msginfo list when set_memory_decrypted fails (510164539f16);
   * before, that early return leaked the header and every body message.
   */
  readonly msginfoFreedOnDecryptFailure: Sourced<boolean>;
  /** hv_ringbuffer_write / hv_get_bytes_to_write / hv_pkt_iter_*: host-written indices unchecked. */
  readonly ringIndices: Sourced<RingIndexHandling>;
  /** vmbus_connect's mapping of the monitor pages in an isolated guest. */
  readonly monitorPageMapping: Sourced<MonitorPageMapping>;
  /**
   * CVE-2024-36913: vmbus_disconnect frees a monitor page only when set_memory_encrypted succeeded, and
   * a failed set_memory_decrypted at connect leaks both pages. Before, the re-encryption's result was
   * ignored and both pages went back to the page allocator (hv_free_hyperv_page) whatever it was.
   */
  readonly monitorPagesFreeChecksReencrypt: Sourced<boolean>;
  /** init_vp_index's candidate CPUs and legacy-host rule (the channel's target_cpu, OPENCHANNEL's target_vp). */
  readonly initVpIndex: Sourced<InitVpIndexForm>;
}

// Introduced with Isolation-VM GPADLs (5.16): no tracking, the error only warned about.
const UNTRACKED = sourced(
  false,
  "d4dccf353db8",
  "Drivers: hv: vmbus: Mark vmbus ring buffer visible to host in Isolation VM",
  "5.16",
);
const TRACKED = sourced(
  true,
  "211f514ebf1e",
  "Drivers: hv: vmbus: Track decrypted status in vmbus_gpadl",
  "6.9",
);

const TEARDOWN_ALWAYS = sourced<TeardownReencrypt>(
  "always",
  "d4dccf353db8",
  "Drivers: hv: vmbus: Mark vmbus ring buffer visible to host in Isolation VM",
  "5.16",
);

// Ring pages could be host-visible once the ring GPADL decrypted them; vmbus_free_ring freed them anyway.
const RING_FREE_UNCHECKED = { ...UNTRACKED };
const RING_FREE_CHECKED = sourced(
  true,
  "30d18df6567b",
  "Drivers: hv: vmbus: Don't free ring buffers that couldn't be re-encrypted",
  "6.9",
);

// The early return after a failed set_memory_decrypted came with d4dccf353db8 and leaked msginfo until
// 510164539f16 (6.18, backported to 6.17.y), which is newer than every profile here.
const MSGINFO_LEAKED = { ...UNTRACKED };

// The form of the ring reader every profile has (copy-out with clamped len8/offset8); neither it nor
// hv_ringbuffer_write range-checks an index the host wrote.
const TRUSTED_INDICES = sourced<RingIndexHandling>(
  "trusted",
  "adae1e931acd",
  "Drivers: hv: vmbus: Copy packets sent by Hyper-V out of the ring buffer",
  "5.15",
);

// Monitor pages: f2f136c05fb6 (5.16) decrypted them and memremap'd the shared alias; a5ddb7458821 (6.4,
// with the other second mappings) dropped the memremap.
const MONITOR_MEMREMAP = sourced<MonitorPageMapping>(
  "memremap-shared-alias",
  "f2f136c05fb6",
  "Drivers: hv: vmbus: Add SNP support for VMbus channel initiate message",
  "5.16",
);
const MONITOR_DIRECT_MAP = sourced<MonitorPageMapping>(
  "direct-map",
  "a5ddb7458821",
  "Drivers: hv: vmbus: Remove second mapping of VMBus monitor pages",
  "6.4",
);
// vmbus_disconnect ignored set_memory_encrypted's result from f2f136c05fb6 until 03f5a999adba.
const MONITOR_FREE_UNCHECKED = sourced(
  false,
  "f2f136c05fb6",
  "Drivers: hv: vmbus: Add SNP support for VMbus channel initiate message",
  "5.16",
);
const MONITOR_FREE_CHECKED = sourced(
  true,
  "03f5a999adba",
  "Drivers: hv: vmbus: Leak pages if set_memory_encrypted() fails",
  "6.9",
);

// init_vp_index as 5.17 has it: hv_cpuself_used's retry loop (7c9ff3deeee6, 5.14) over every CPU of the
// node. 6640b5df1a38 (5.19) restricted the candidates to housekeeping CPUs.
const VP_INDEX_NODE_CPUS = sourced<InitVpIndexForm>(
  "node-cpus",
  "7c9ff3deeee6",
  "Drivers: hv: vmbus: Fix duplicate CPU assignments within a device",
  "5.14",
);
const VP_INDEX_HOUSEKEEPING = sourced<InitVpIndexForm>(
  "housekeeping-cpus",
  "6640b5df1a38",
  "Drivers: hv: vmbus: Don't assign VMbus channel interrupts to isolated CPUs",
  "5.19",
);

const PRE_2024_ADDRESS_BIT: VmbusBehaviour = {
  gpadlDecryptedTracking: UNTRACKED,
  teardownReencrypt: TEARDOWN_ALWAYS,
  ringFreeChecksDecrypted: RING_FREE_UNCHECKED,
  msginfoFreedOnDecryptFailure: MSGINFO_LEAKED,
  ringIndices: TRUSTED_INDICES,
  monitorPageMapping: MONITOR_MEMREMAP,
  monitorPagesFreeChecksReencrypt: MONITOR_FREE_UNCHECKED,
  initVpIndex: VP_INDEX_HOUSEKEEPING,
};

/** 5.17: the address-bit era before 5.19's init_vp_index rework. */
const LINUX_5_17: VmbusBehaviour = { ...PRE_2024_ADDRESS_BIT, initVpIndex: VP_INDEX_NODE_CPUS };

const PRE_2024: VmbusBehaviour = { ...PRE_2024_ADDRESS_BIT, monitorPageMapping: MONITOR_DIRECT_MAP };

const FIXED_2024: VmbusBehaviour = {
  ...PRE_2024,
  gpadlDecryptedTracking: TRACKED,
  ringFreeChecksDecrypted: RING_FREE_CHECKED,
  monitorPagesFreeChecksReencrypt: MONITOR_FREE_CHECKED,
};

/**
 * The 2024 fixes as backported to 6.1.y (AUTOSEL; the CVE records give 6.1.91 as the first fixed
 * release), on 6.1's address-bit monitor-page mapping.
 */
const FIXED_2024_IN_6_1_91: VmbusBehaviour = {
  ...FIXED_2024,
  monitorPageMapping: MONITOR_MEMREMAP,
  gpadlDecryptedTracking: { ...TRACKED, since: "6.1.91" },
  ringFreeChecksDecrypted: { ...RING_FREE_CHECKED, since: "6.1.91" },
  monitorPagesFreeChecksReencrypt: { ...MONITOR_FREE_CHECKED, since: "6.1.91" },
};

/** The same fixes in 6.6.y (6.6.31, per the CVE records). */
const FIXED_2024_IN_6_6_31: VmbusBehaviour = {
  ...FIXED_2024,
  gpadlDecryptedTracking: { ...TRACKED, since: "6.6.31" },
  ringFreeChecksDecrypted: { ...RING_FREE_CHECKED, since: "6.6.31" },
  monitorPagesFreeChecksReencrypt: { ...MONITOR_FREE_CHECKED, since: "6.6.31" },
};

/** 6.18: the Confidential VMBus series (teardown re-encrypts only what was decrypted; msginfo freed). */
const CONFIDENTIAL_VMBUS: VmbusBehaviour = {
  ...FIXED_2024,
  teardownReencrypt: sourced<TeardownReencrypt>(
    "if-decrypted",
    "0a4534bdf29a",
    "Drivers: hv: Allocate encrypted buffers when requested",
    "6.18",
  ),
  msginfoFreedOnDecryptFailure: sourced(
    true,
    "510164539f16",
    "Drivers: hv: Free msginfo when the buffer fails to decrypt",
    "6.18",
  ),
};

/**
 * The VMBus table. "6.6" is the 6.6 release: the 2024 fixes reached 6.6.y in 6.6.31 (and 6.8.y in
 * 6.8.10), after it.
 */
export const vmbusBehaviours: PerProfile<VmbusBehaviour> = {
  "5.17": LINUX_5_17,
  "6.1": PRE_2024_ADDRESS_BIT,
  "6.1.91": FIXED_2024_IN_6_1_91,
  "6.4": PRE_2024,
  "6.6": PRE_2024,
  "6.6.31": FIXED_2024_IN_6_6_31,
  "6.9": FIXED_2024,
  "6.12": FIXED_2024,
  "6.18": CONFIDENTIAL_VMBUS,
};
