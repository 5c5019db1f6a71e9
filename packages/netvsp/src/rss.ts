// The host's receive-side scaling: which queue (VMBus channel) a received frame goes out on. Hyper-V's
// vSwitch hashes the frame's flow (Toeplitz over addresses and ports with the guest's key), indexes the
// indirection table with the hash's low bits, and sends the transfer-page packet on that channel;
// OpenVMM's netvsp does the same per queue. The table starts as ethtool_rxfh_indir_default over the
// queues the guest opened (what rndis_filter_device_add sets up and sends with
// OID_GEN_RECEIVE_SCALE_PARAMETERS); once the guest sends its parameters the host uses the guest's
// table, until the set of open queues changes (the guest sends them again after every
// rndis_set_subchannel). The lab's flow hash stands in for Toeplitz (see labFlowHash).

import { ITAB_NUM, labFlowHash, type RssParam, rxfhIndirDefault } from "@ivm/netvsc-protocol";

/** Where the table in use came from. */
export type RssSource = "default" | "guest" | "disabled";

export class RssTable {
  /** The indirection table: ITAB_NUM queue indices. */
  readonly table: Uint16Array = new Uint16Array(ITAB_NUM);
  #queues = 1;
  #size = ITAB_NUM;
  #source: RssSource = "default";
  /** Guest tables accepted and refused, for the host's counters. */
  accepted = 0;

  /** Queues the table spreads over (the primary counts as queue 0). */
  get queues(): number {
    return this.#queues;
  }

  /** Entries in use: ITAB_NUM, or the length of the guest's table. */
  get size(): number {
    return this.#size;
  }

  get source(): RssSource {
    return this.#source;
  }

  /** Resets the table to the default spread over `queues` queues. */
  spread(queues: number): void {
    this.#queues = Math.max(1, queues);
    this.#size = ITAB_NUM;
    this.#source = "default";
    for (let i = 0; i < ITAB_NUM; i++) this.table[i] = rxfhIndirDefault(i, this.#queues);
  }

  /**
   * The guest's OID_GEN_RECEIVE_SCALE_PARAMETERS, already decoded: DISABLE_RSS sends everything to the
   * primary; otherwise every entry must name an open queue (the host cannot send on a channel that is
   * not open), or the table is refused and the one in use stays.
   */
  apply(p: RssParam): "rss-param-entry-out-of-range" | null {
    if (p.disabled) {
      this.#source = "disabled";
      return null;
    }
    for (let i = 0; i < p.table.length; i++)
      if (p.table[i]! >= this.#queues) return "rss-param-entry-out-of-range";
    for (let i = 0; i < p.table.length; i++) this.table[i] = p.table[i]!;
    this.#size = p.table.length;
    this.#source = "guest";
    this.accepted++;
    return null;
  }

  /** The queue of one frame: table[hash % size], the primary while RSS is disabled. */
  queueOf(frame: Uint8Array): number {
    if (this.#source === "disabled") return 0;
    return this.table[labFlowHash(frame) % this.#size]!;
  }
}
