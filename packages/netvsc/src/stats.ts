// The driver's counters: what `ethtool -S` and the netdev stats of drivers/net/hyperv report
// (netvsc_ethtool_stats, netvsc_stats_tx/rx, tx_busy, tx_send_full, stop_queue, wake_queue,
// rx_comp_busy), plus the model's copy accounting. Counted by the driver as it runs; nothing here is
// computed after the fact.

import { RejectionCounter } from "@ivm/netvsc-protocol";
import type { NetvscLoggedErrorReason } from "./reasons.js";

export interface NetvscStats {
  /** Frames the host completed (tx_stats packets/bytes are counted on completion, as the kernel does). */
  txPackets: number;
  txBytes: number;
  /** Frames handed to onReceive. */
  rxPackets: number;
  rxBytes: number;
  /** Frames the driver dropped on the send path, by reason ("tx-no-space", "batch-send-failed", ...). */
  readonly txDrops: RejectionCounter;
  /** Receive-path rejections: packet- and range-level checks, RNDIS validation, by reason. */
  readonly rxDrops: RejectionCounter;
  /** Driver-level failures the kernel logs and survives (a revoke not posted, a teardown that failed). */
  readonly errors: RejectionCounter<NetvscLoggedErrorReason>;
  /** Host completions refused: forged or duplicate ids, malformed messages, by reason (invariant I6). */
  readonly rejectedCompletions: RejectionCounter;
  /** ndo_start_xmit returned NETDEV_TX_BUSY (EAGAIN): the caller keeps the frame and retries. */
  txBusy: number;
  /** tx_send_full: a frame fit a section but none was free, so it went by page buffers. */
  txSendFull: number;
  /** Frames (and their RNDIS headers) copied into send sections, and the bytes copied. */
  sendSectionCopies: number;
  sendSectionBytes: number;
  /** cp_partial: only the RNDIS header went into the pending section, the frame by page buffers. */
  partialCopies: number;
  /** Packets sent by page buffers (GPA-direct), data and control. */
  pageBufferSends: number;
  /** dma_map_single calls made for page-buffer entries, and the mapping failures (-> EAGAIN). */
  pageBufferMaps: number;
  dmaMapErrors: number;
  /** Bytes the swiotlb bounced at map time (isolated guests: every page-buffer byte). */
  bytesBounced: number;
  /**
   * Transfer-page ranges whose RNDIS headers were copied out of the receive buffer into the private
   * buffer, and the bytes copied: the RNDIS header and rndis_packet of a data message
   * (rndis_filter_receive_data, 0ba35fe91ce3) plus each lookup's copy of its per-packet info
   * (rndis_get_ppi), a whole control message.
   */
  rxRangeCopies: number;
  rxRangeBytes: number;
  /**
   * The copies of a data message's PPI area rndis_get_ppi made (one per lookup whose area passed its
   * checks: up to four per message, none when per_pkt_info_offset is 0), and their bytes (also counted
   * in rxRangeBytes).
   */
  rxPpiCopies: number;
  rxPpiBytes: number;
  /**
   * Messages whose PPI area changed in the receive buffer between two of those copies: the kernel used
   * payloads from a later copy than the one it validated (reported as a finding, rndis-get-ppi-double-fetch).
   */
  rxPpiDoubleFetches: number;
  /** Send indirection tables from the host that replaced tx_table (netvsc_send_table). */
  sendTablesApplied: number;
  /** Frame payloads copied from the receive buffer into the skb (one copy each), and their bytes. */
  rxSkbCopies: number;
  rxSkbBytes: number;
  /**
   * Buffers the profile's free_netvsc_device would vfree while possibly host-visible (a kernel without
   * "Don't free decrypted memory"; reported as CVE-2024-36911, kept out of the allocator by the model).
   */
  buffersFreedWhileVisible: number;
  stopQueue: number;
  wakeQueue: number;
  /** Receive completions that went to the host, were lost (completion ring full), or met a full ring. */
  rxCompletionsSent: number;
  rxCompletionsLost: number;
  rxCompBusy: number;
  /**
   * Invariant I3 guard: reads of a received range's bytes for parsing that went through a shared alias
   * instead of the private copy (chan_table[0].recv_buf). Must stay 0.
   */
  parsedFromShared: number;
  /**
   * Invariant I6 guard: completions that reached a packet no longer in flight (a second release of
   * the same send). The request table makes this impossible; must stay 0, and nothing is released.
   */
  staleCompletions: number;
  /** RNDIS INDICATE_STATUS messages, and the link state they left (true: media connected). */
  statusIndications: number;
  linkUp: boolean;
}

export function newNetvscStats(): NetvscStats {
  return {
    txPackets: 0,
    txBytes: 0,
    rxPackets: 0,
    rxBytes: 0,
    txDrops: new RejectionCounter(),
    rxDrops: new RejectionCounter(),
    errors: new RejectionCounter<NetvscLoggedErrorReason>(),
    rejectedCompletions: new RejectionCounter(),
    txBusy: 0,
    txSendFull: 0,
    sendSectionCopies: 0,
    sendSectionBytes: 0,
    partialCopies: 0,
    pageBufferSends: 0,
    pageBufferMaps: 0,
    dmaMapErrors: 0,
    bytesBounced: 0,
    rxRangeCopies: 0,
    rxRangeBytes: 0,
    rxPpiCopies: 0,
    rxPpiBytes: 0,
    rxPpiDoubleFetches: 0,
    sendTablesApplied: 0,
    rxSkbCopies: 0,
    rxSkbBytes: 0,
    buffersFreedWhileVisible: 0,
    stopQueue: 0,
    wakeQueue: 0,
    rxCompletionsSent: 0,
    rxCompletionsLost: 0,
    rxCompBusy: 0,
    parsedFromShared: 0,
    staleCompletions: 0,
    statusIndications: 0,
    linkUp: false,
  };
}
