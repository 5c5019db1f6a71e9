// Transmit queue selection: netvsc_select_queue / netvsc_pick_tx (netvsc_drv.c) and the send table
// rndis_set_subchannel fills. Without a VF and without a socket's cached queue, the flow hash indexes
// ndev_ctx->tx_table[VRSS_SEND_TAB_SIZE], whose entry i is i % num_chn (the host may replace it with
// the NVSP SEND_INDIRECTION_TABLE it sends, receive.ts netvscSendTable); an index past real_num_tx_queues falls back to
// netdev_pick_tx's range.

import { labFlowHash, VRSS_SEND_TAB_SIZE } from "@ivm/netvsc-protocol";

/** rndis_set_subchannel: tx_table[i] = i % num_chn. */
export function defaultTxTable(numChn: number): Uint16Array {
  const t = new Uint16Array(VRSS_SEND_TAB_SIZE);
  for (let i = 0; i < VRSS_SEND_TAB_SIZE; i++) t[i] = i % Math.max(1, numChn);
  return t;
}

/** netvsc_pick_tx for a frame: tx_table[hash & (VRSS_SEND_TAB_SIZE - 1)], bounded by the queue count. */
export function netvscPickTx(frame: Uint8Array, txTable: Uint16Array, realNumTxQueues: number): number {
  const q = txTable[labFlowHash(frame) & (VRSS_SEND_TAB_SIZE - 1)]!;
  return q < realNumTxQueues ? q : q % Math.max(1, realNumTxQueues);
}
