// rndis_get_ppi as rndis_filter_receive_data calls it (drivers/net/hyperv/rndis_filter.c): four lookups
// of a data message's per-packet info, each of which copies the PPI area from the shared receive buffer
// into the channel's private recv_buf again before walking it, and what netvsc_recv_callback takes from
// the payloads found.
//
// Pinned, all in every profile of the lab (5.17 .. 6.18: the function has not changed since 5.12):
// - 44144185951a (5.10): the area's offset must lie in [sizeof(rndis_packet), rpkt_len] and its length
//   inside the range, else the lookup returns NULL; each entry's size must fit what is left and its
//   payload offset must be below its size, else the loop `continue`s without advancing (it spins);
// - 505e3f00c3f3 (5.12): a length below one entry header is refused like a bad length, and the entry
//   found must hold the struct the caller reads (ppi_size), else the same spinning `continue`;
// - 0ba35fe91ce3 (5.12): offset and length are read from the private copy of rndis_packet (copied once
//   by rndis_filter_receive_data), and only when both pass does the lookup memcpy the area from the
//   receive buffer into recv_buf — once per lookup. An offset of 0 returns before any check or copy.
//
// The walks read the private copy, but the four copies are four fetches of host memory: a host that
// rewrites the area between two lookups makes the kernel use payloads at offsets it validated against
// an earlier copy (rsc_add_data reads them after the last lookup). The model measures every copy and
// reports that double fetch as a finding when the bytes did change.

import {
  findRndisPpi,
  RNDIS_HEADER_SIZE,
  RNDIS_PPI_LOOKUPS,
  RndisPpiLookup,
  rndisPacketField,
  rndisPpiAreaIssue,
} from "@ivm/netvsc-protocol";
import { readU32 } from "@ivm/vmbus";
import { NETVSC_FINDING } from "./init-buf.js";
import type { NetvscDev } from "./nvdev.js";
import { ViewCache } from "./view-cache.js";

/**
 * What the guest took from a received data message's per-packet info, as netvsc_recv_callback reads it
 * (after the last lookup). Null where the lookup found nothing. The object handed to onReceive is reused
 * for the next frame: copy what you keep.
 */
export interface RxPacketInfo {
  /** The u32 of struct ndis_pkt_8021q_info (pri:3, cfi:1, vlanid:12, reserved:16). */
  readonly vlan: number | null;
  /**
   * The 802.1Q TCI netvsc_alloc_recv_skb tags the skb with: vlanid | pri << VLAN_PRIO_SHIFT, plus
   * VLAN_CFI_MASK when cfi is set.
   */
  readonly vlanTci: number | null;
  /** The u32 of struct ndis_tcp_ip_checksum_info (its receive bits). */
  readonly csumInfo: number | null;
  /** The NBL_HASH_VALUE u32 (skb_set_hash with NETIF_F_RXHASH). */
  readonly hash: number | null;
  /** rndis_pktinfo_id.flag: the RSC fragment bits (SUBALLOC, 1ST_FRAG, LAST_FRAG). */
  readonly pktinfoFlag: number | null;
}

/** The info of a frame whose message carries no PPIs (per_pkt_info_offset 0, or an area refused). */
export const NO_RX_PPIS: RxPacketInfo = Object.freeze({
  vlan: null,
  vlanTci: null,
  csumInfo: null,
  hash: null,
  pktinfoFlag: null,
});

/** VLAN_PRIO_SHIFT and VLAN_CFI_MASK (include/linux/if_vlan.h). */
const VLAN_PRIO_SHIFT = 13;
const VLAN_CFI_MASK = 0x1000;

class RxPpiInfo implements RxPacketInfo {
  vlan: number | null = null;
  vlanTci: number | null = null;
  csumInfo: number | null = null;
  hash: number | null = null;
  pktinfoFlag: number | null = null;
}

/** The info handed up with the current frame (one frame at a time: receive callbacks do not nest). */
const INFO = new RxPpiInfo();
/** Where each lookup's payload is in the image (-1: not found), in RNDIS_PPI_LOOKUPS order. */
const FOUND = new Int32Array(RNDIS_PPI_LOOKUPS.length);
const LOOKUP = new RndisPpiLookup();

/**
 * rndis_filter_receive_data's four rndis_get_ppi calls for the data message whose private image is
 * `image` (RNDIS header and rndis_packet copied; `shared` is the range in the receive buffer), with a
 * non-zero per_pkt_info_offset. Each lookup whose area passes the checks copies it again and walks it;
 * a refused area copies nothing. Where the kernel's walk would spin, the model stops looking (the
 * kernel never gets to the later lookups), reports it, and the frame goes up with what was found.
 */
export function rndisGetPpis(nv: NetvscDev, image: Uint8Array, shared: number): RxPacketInfo {
  const stats = nv.env.stats;
  const offset = rndisPacketField(image, "perPktInfoOffset");
  const len = rndisPacketField(image, "perPktInfoLen");
  // rpkt_len: the range from struct rndis_packet on.
  const area = rndisPpiAreaIssue(offset, len, image.length - RNDIS_HEADER_SIZE);
  if (area !== null) {
    // Every lookup refuses the area before copying; the model counts the packet once.
    stats.rxDrops.count(area);
    return NO_RX_PPIS;
  }
  const start = RNDIS_HEADER_SIZE + offset;
  let refetchedAt = -1;
  let issue = false;
  FOUND.fill(-1);
  for (let k = 0; k < RNDIS_PPI_LOOKUPS.length; k++) {
    if (copyPpiArea(nv, image, shared, start, len, k > 0) && refetchedAt < 0) refetchedAt = k;
    FOUND[k] = findRndisPpi(image, start, len, RNDIS_PPI_LOOKUPS[k]!, LOOKUP);
    if (LOOKUP.issue === null) continue;
    // One reason per packet: the later lookups meet the same entry (or never run).
    if (!issue) stats.rxDrops.count(LOOKUP.issue);
    issue = true;
    if (LOOKUP.kernelHangs) {
      nv.env.kernel.report({
        id: NETVSC_FINDING.ppiLookupSpins,
        invariant: "termination",
        what: `lookup ${k + 1} of 4 meets ${LOOKUP.issue} at byte ${LOOKUP.at} of the message: the loop continues without advancing, so the NAPI poll spins for ever`,
        where: "rndis_get_ppi (rndis_filter_receive_data)",
      });
      break;
    }
  }
  if (refetchedAt > 0) {
    stats.rxPpiDoubleFetches++;
    nv.env.kernel.report({
      id: NETVSC_FINDING.ppiDoubleFetch,
      invariant: "I3",
      what: `the ${len}-byte PPI area at offset ${offset} changed in the receive buffer before lookup ${refetchedAt + 1}'s copy: the payloads are read from the last copy at offsets validated against earlier ones`,
      where: "rndis_get_ppi (rndis_filter_receive_data)",
    });
  }
  return takePayloads(image);
}

/**
 * What rsc_add_data and the RSC check read through the pointers the lookups returned, all after the last
 * lookup's copy: the image as it stands now, at the offsets found.
 */
function takePayloads(image: Uint8Array): RxPacketInfo {
  const info = INFO;
  const vlan = FOUND[0]! < 0 ? null : readU32(image, FOUND[0]!);
  info.vlan = vlan;
  info.vlanTci =
    vlan === null
      ? null
      : ((vlan >>> 4) & 0xfff) | ((vlan & 0x7) << VLAN_PRIO_SHIFT) | ((vlan & 0x8) !== 0 ? VLAN_CFI_MASK : 0);
  info.csumInfo = FOUND[1]! < 0 ? null : readU32(image, FOUND[1]!);
  info.hash = FOUND[2]! < 0 ? null : readU32(image, FOUND[2]!);
  // struct rndis_pktinfo_id { u8 ver; u8 flag; u16 pkt_id; }
  info.pktinfoFlag = FOUND[3]! < 0 ? null : image[FOUND[3]! + 1]!;
  return info;
}

/** The bytes each lookup's memcpy reads from the receive buffer before writing them to recv_buf. */
let fetchBuf = new Uint8Array(256);
const fetchViews = new ViewCache();
const imageViews = new ViewCache();

/**
 * One lookup's memcpy of the area into the private buffer (a read of the shared bytes, a write of them
 * to recv_buf), then the walk's read of the private copy into the image (`image` is the scratch's first
 * bytes, so the area is the scratch at the same offset). Returns whether the fetched
 * bytes differ from the previous lookup's copy (checked when `compare`: the image still holds it).
 */
function copyPpiArea(
  nv: NetvscDev,
  image: Uint8Array,
  shared: number,
  start: number,
  len: number,
  compare: boolean,
): boolean {
  const mmu = nv.env.memory.mmu;
  const stats = nv.env.stats;
  const priv = nv.rxPrivate[0]!;
  if (fetchBuf.length < len) fetchBuf = new Uint8Array(Math.max(len, 2 * fetchBuf.length));
  const fetched = fetchViews.view(fetchBuf, 0, len);
  mmu.read(shared + start, fetched);
  let changed = false;
  if (compare) {
    for (let i = 0; i < len; i++) {
      if (fetched[i] !== image[start + i]) {
        changed = true;
        break;
      }
    }
  }
  mmu.write(priv + start, fetched);
  const before = mmu.sharedReads;
  mmu.read(priv + start, imageViews.view(nv.rxScratch, start, len));
  if (mmu.sharedReads !== before) stats.parsedFromShared++;
  stats.rxPpiCopies++;
  stats.rxPpiBytes += len;
  stats.rxRangeBytes += len;
  return changed;
}
