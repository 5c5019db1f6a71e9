import type { PerProfile } from "../names.js";
import { type Sourced, sourced } from "../sourced.js";

/**
 * How netvsc_send_pkt hands page-buffer data to VMBus:
 * - `pagebuffer`: vmbus_sendpacket_pagebuffer, one 16-byte hv_page_buffer {len, offset, pfn} per page
 *   entry behind a 24-byte header (24 + 16·n);
 * - `mpb`: vmbus_sendpacket_mpb_desc, ranges {len, offset, pfn[]} with contiguous PFNs grouped into
 *   one range (4f98616b855c; vmbus_sendpacket_pagebuffer was removed by 45a442fe369e).
 */
export type PageBufferSend = "pagebuffer" | "mpb";

/**
 * dev_info->num_chn before any `ethtool -L` (netvsc_devinfo_get without a device):
 * - `vrss-8`: VRSS_CHANNEL_DEFAULT, 8 channels whatever the vCPU count;
 * - `max-16-rss`: max(VRSS_CHANNEL_DEFAULT = 16, netif_get_num_default_rss_queues()) (646f071d315b).
 * Either way rndis_filter_device_add caps it by max_chn = min(VRSS_CHANNEL_MAX, online CPUs, the
 * host's num_recv_que).
 */
export type DefaultChannels = "vrss-8" | "max-16-rss";

/** What the netvsc driver (drivers/net/hyperv: netvsc.c, rndis_filter.c, hyperv_net.h) reads from a profile. */
export interface NetvscBehaviour {
  /**
   * "hv_netvsc: Don't free decrypted memory" (CVE-2024-36911): free_netvsc_device leaks a send or
   * receive buffer whose GPADL is still decrypted; before, it vfree'd it whatever its visibility.
   */
  readonly keepDecryptedBuffers: Sourced<boolean>;
  /** The page-buffer send path. */
  readonly pageBufferSend: Sourced<PageBufferSend>;
  /**
   * sizeof(struct vmtransfer_page_packet_header), the lower bound netvsc_receive checks offset8 << 3
   * against: 32 while `ranges` was declared [1], 24 once it became a flexible array (bb9b0e46b84c).
   */
  readonly xferPageHeaderSize: Sourced<number>;
  /** The default channel count rule (multi-queue: one VMBus sub-channel per extra queue). */
  readonly defaultChannels: Sourced<DefaultChannels>;
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

// vmbus_sendpacket_pagebuffer is how netvsc has sent page buffers since the driver left staging; its
// Isolation-VM form (each entry bounced through swiotlb) is the 5.17 commit. The 2025 series moved
// netvsc to mpb in 6.15 (4f98616b855c) and reached stable 6.12.30, 6.6.y and 6.1.y later — after the
// releases these profiles name.
const PAGEBUFFER = sourced<PageBufferSend>(
  "pagebuffer",
  "846da38de0e8",
  "net: netvsc: Add Isolation VM support for netvsc driver",
  "5.17",
);

const XFER_HEADER_32 = sourced(
  32,
  "44144185951a",
  "hv_netvsc: Add validation for untrusted Hyper-V values",
  "5.10",
);
const XFER_HEADER_24 = sourced(
  24,
  "bb9b0e46b84c",
  "hv: hyperv.h: Replace one-element array with flexible-array member",
  "6.6",
);

// vRSS came with 5b54dac856cb (3.15, eight channels by default); the 2024 change to 16 and the
// CPU-based count landed in 6.12.
const CHANNELS_8 = sourced<DefaultChannels>(
  "vrss-8",
  "5b54dac856cb",
  "hyperv: Add support for virtual Receive Side Scaling (vRSS)",
  "3.15",
);
const CHANNELS_16 = sourced<DefaultChannels>(
  "max-16-rss",
  "646f071d315b",
  "net: netvsc: Update default VMBus channels",
  "6.12",
);

const BASE: NetvscBehaviour = {
  keepDecryptedBuffers: FREES,
  pageBufferSend: PAGEBUFFER,
  xferPageHeaderSize: XFER_HEADER_32,
  defaultChannels: CHANNELS_8,
};

/** The netvsc table. "6.6" is the 6.6 release; the 2024 fixes reached 6.6.y in 6.6.31. */
export const netvscBehaviours: PerProfile<NetvscBehaviour> = {
  "5.17": BASE,
  "6.1": BASE,
  "6.1.91": { ...BASE, keepDecryptedBuffers: { ...KEEPS, since: "6.1.91" } },
  "6.4": BASE,
  "6.6": { ...BASE, xferPageHeaderSize: XFER_HEADER_24 },
  "6.6.31": {
    ...BASE,
    keepDecryptedBuffers: { ...KEEPS, since: "6.6.31" },
    xferPageHeaderSize: XFER_HEADER_24,
  },
  "6.9": { ...BASE, keepDecryptedBuffers: KEEPS, xferPageHeaderSize: XFER_HEADER_24 },
  "6.12": {
    ...BASE,
    keepDecryptedBuffers: KEEPS,
    xferPageHeaderSize: XFER_HEADER_24,
    defaultChannels: CHANNELS_16,
  },
  "6.18": {
    keepDecryptedBuffers: KEEPS,
    defaultChannels: CHANNELS_16,
    pageBufferSend: sourced<PageBufferSend>(
      "mpb",
      "4f98616b855c",
      "hv_netvsc: Use vmbus_sendpacket_mpb_desc() to send VMBus messages",
      "6.15",
    ),
    xferPageHeaderSize: XFER_HEADER_24,
  },
};
