// The host's receive-side scaling: which queue (VMBus channel) a received frame goes out on. Hyper-V's
// vSwitch hashes the frame's flow (Toeplitz over addresses and ports with the guest's key), indexes the
// indirection table with the hash's low bits, and sends the transfer-page packet on that channel;
// OpenVMM's netvsp does the same per queue. The table starts as ethtool_rxfh_indir_default over the
// queues the guest opened (what rndis_filter_device_add sets up and sends with
// OID_GEN_RECEIVE_SCALE_PARAMETERS); the lab's flow hash stands in for Toeplitz (see labFlowHash).

import { ITAB_NUM, labFlowHash, rxfhIndirDefault } from "@ivm/netvsc-protocol";

export class RssTable {
  /** The indirection table: ITAB_NUM queue indices. */
  readonly table: Uint16Array = new Uint16Array(ITAB_NUM);
  #queues = 1;

  /** Queues the table spreads over (the primary counts as queue 0). */
  get queues(): number {
    return this.#queues;
  }

  /** Resets the table to the default spread over `queues` queues. */
  spread(queues: number): void {
    this.#queues = Math.max(1, queues);
    for (let i = 0; i < ITAB_NUM; i++) this.table[i] = rxfhIndirDefault(i, this.#queues);
  }

  /** The queue of one frame: table[hash % ITAB_NUM]. */
  queueOf(frame: Uint8Array): number {
    return this.table[labFlowHash(frame) % ITAB_NUM]!;
  }
}
