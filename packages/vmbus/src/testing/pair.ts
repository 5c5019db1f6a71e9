import { HostRingEndpoint } from "../host/ring-endpoint.js";
import { RequestTable } from "../request-table.js";
import { IncomingRing, type IncomingRingOptions } from "../ring/incoming.js";
import { OutgoingRing } from "../ring/outgoing.js";
import { FlatRingMem, initRingHeader } from "../ring/ring-mem.js";

export interface RingPair {
  readonly outMem: FlatRingMem;
  readonly inMem: FlatRingMem;
  readonly table: RequestTable<number>;
  readonly guestOut: OutgoingRing<number>;
  readonly guestIn: IncomingRing;
  readonly host: HostRingEndpoint;
}

/** A channel's two rings in plain memory, with the guest's and the host's ends attached (tests only). */
export function ringPair(dataSize: number, tableSize = 64, incoming: IncomingRingOptions = {}): RingPair {
  const outMem = new FlatRingMem(dataSize);
  const inMem = new FlatRingMem(dataSize);
  initRingHeader(outMem);
  initRingHeader(inMem);
  const table = new RequestTable<number>(tableSize);
  const guestOut = new OutgoingRing<number>(outMem, { requestTable: table });
  const guestIn = new IncomingRing(inMem, incoming);
  const host = new HostRingEndpoint({ fromGuest: outMem, toGuest: inMem });
  return { outMem, inMem, table, guestOut, guestIn, host };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
