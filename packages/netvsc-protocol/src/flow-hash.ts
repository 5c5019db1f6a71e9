// The flow hash both sides of the lab use to spread traffic over queues. On Linux the guest's
// netvsc_pick_tx takes skb_get_hash (the flow dissector's hash of the addresses and ports) and the
// host's vSwitch computes the Toeplitz RSS hash of the same fields with the guest's key. Lab frames
// (lab-frame.ts) carry no IP header: their flow is the MAC pair and the sequence number, so each frame
// is its own flow and consecutive frames land on different queues. One function for both directions,
// so a test can predict the queue of any frame.

import { LAB_FRAME_HEADER_SIZE } from "./lab-frame.js";

/** ITAB_NUM: entries of the receive indirection table (rndis_filter.c, hyperv_net.h). */
export const ITAB_NUM = 128;

/** A 32-bit hash of the frame's flow fields (MACs and seq); 0 for a frame shorter than the lab header. */
export function labFlowHash(frame: Uint8Array): number {
  if (frame.length < LAB_FRAME_HEADER_SIZE) return 0;
  let h = 0x811c_9dc5;
  // dst + src MAC (12 bytes), then seq (bytes 14..17): FNV-1a, then a murmur3 finaliser.
  for (let i = 0; i < 12; i++) h = Math.imul(h ^ frame[i]!, 0x0100_0193);
  for (let i = 14; i < 18; i++) h = Math.imul(h ^ frame[i]!, 0x0100_0193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85eb_ca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2_ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** ethtool_rxfh_indir_default: entry i of the default indirection table over `queues` queues. */
export function rxfhIndirDefault(index: number, queues: number): number {
  return index % queues;
}
