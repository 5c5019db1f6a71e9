// The RNDIS side of the simulated host: the answers to the control messages the Linux driver sends at
// attach and open (rndis_filter_device_add, rndis_filter_open). Values follow OpenVMM's netvsp
// (handle_rndis_control_message, handle_oid_query, handle_oid_set); only the OIDs rndis_filter.c uses
// are answered, anything else gets RNDIS_STATUS_NOT_SUPPORTED as OpenVMM does.

import {
  decodeRndisMessage,
  decodeRssParam,
  ETH_HLEN,
  encodeRndisInitComplete,
  encodeRndisQueryComplete,
  encodeRndisSetComplete,
  NDIS_OBJECT_TYPE,
  NDIS_OFFLOAD_SIZE,
  type NetvscResult,
  ok,
  RNDIS_MAJOR_VERSION,
  RNDIS_MINOR_VERSION,
  RNDIS_MSG_TYPE,
  RNDIS_OID,
  RNDIS_STATUS,
  type RndisRejectReason,
  type RssParam,
  type RssParamRejectReason,
  reject,
} from "@ivm/netvsc-protocol";

/** DF_CONNECTIONLESS, the device_flags OpenVMM reports. */
const RNDIS_DF_CONNECTIONLESS = 1;
const NDIS_OBJECT_TYPE_OFFLOAD = NDIS_OBJECT_TYPE.OFFLOAD;
const NDIS_OBJECT_TYPE_RSS_CAPABILITIES = NDIS_OBJECT_TYPE.RSS_CAPABILITIES;
/** NDIS_OFFLOAD_ENCAP_8023: the only encapsulation a synthetic NIC offers. */
const NDIS_OFFLOAD_ENCAP_8023 = 2;
/** sizeof(struct ndis_recv_scale_cap), packed: header 4, three u32, one u16. */
const NDIS_RSS_CAPS_SIZE = 18;

export type RndisDeviceState = "uninitialized" | "operational" | "halted";

export interface RndisDeviceConfig {
  readonly mac: Uint8Array;
  /** Link speed in bits per second (OID_GEN_LINK_SPEED reports it in units of 100 bps). */
  readonly linkSpeedBps: number;
  /** INIT_CMPLT max_packets_per_message (OpenVMM: 8). */
  readonly maxPacketsPerMessage: number;
  /** INIT_CMPLT packet_alignment_factor; the guest aligns batched packets to 1 << factor (OpenVMM: 3). */
  readonly packetAlignmentFactor: number;
  /** INIT_CMPLT max_transfer_size (OpenVMM: 0xefffffff). */
  readonly maxTransferSize: number;
  /** num_recv_que of OID_GEN_RECEIVE_SCALE_CAPABILITIES (the guest opens at most this many channels). */
  readonly rssQueues: number;
}

export type RndisControlRejectReason =
  | RndisRejectReason
  | "rndis-init-unexpected"
  | "rndis-not-initialized"
  | "rndis-unsupported-type"
  | "rndis-oid-unknown"
  | "rndis-set-info-invalid"
  | RssParamRejectReason
  | "rss-param-entry-out-of-range";

/** What a control message produced: the response (null for HALT), and the counter key. */
export interface RndisControlOutcome {
  readonly kind: string;
  readonly response: Uint8Array | null;
  /** A rejection the host counts even though it answered (e.g. an unknown OID). */
  readonly note: RndisControlRejectReason | null;
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

export class RndisDevice {
  readonly config: RndisDeviceConfig;
  state: RndisDeviceState = "uninitialized";
  /** OID_GEN_CURRENT_PACKET_FILTER as last set; 0 until rndis_filter_open. */
  packetFilter = 0;
  /** The NDIS_CONFIG mtu (Ethernet header included), or 1514 when the guest sent none. */
  mtu = 1514;

  /**
   * Applies RSS parameters the decoder accepted (the host's indirection table); returns the reason it
   * refused them, or null. Without it the parameters are accepted and not acted on.
   */
  onRssParam: ((p: RssParam) => RndisControlRejectReason | null) | undefined;

  constructor(config: RndisDeviceConfig) {
    this.config = config;
  }

  reset(): void {
    this.state = "uninitialized";
    this.packetFilter = 0;
    this.mtu = 1514;
  }

  /** Answer one control message from a private copy. Never throws on any input. */
  handle(msg: Uint8Array): NetvscResult<RndisControlOutcome, RndisControlRejectReason> {
    const decoded = decodeRndisMessage(msg);
    if (!decoded.ok) return decoded;
    const m = decoded.value;
    switch (m.kind) {
      case "init": {
        if (this.state !== "uninitialized") {
          return ok({
            kind: "rndis-init",
            response: this.#initComplete(m.requestId, RNDIS_STATUS.FAILURE),
            note: "rndis-init-unexpected",
          });
        }
        this.state = "operational";
        return ok({
          kind: "rndis-init",
          response: this.#initComplete(m.requestId, RNDIS_STATUS.SUCCESS),
          note: null,
        });
      }
      case "halt":
        this.state = "halted";
        return ok({ kind: "rndis-halt", response: null, note: null });
      case "query": {
        if (this.state !== "operational") return this.#notInitialized("rndis-query");
        const info = this.#query(m.oid);
        return ok({
          kind: "rndis-query",
          response: encodeRndisQueryComplete({
            requestId: m.requestId,
            status: info === null ? RNDIS_STATUS.NOT_SUPPORTED : RNDIS_STATUS.SUCCESS,
            ...(info === null ? {} : { info }),
          }),
          note: info === null ? "rndis-oid-unknown" : null,
        });
      }
      case "set": {
        if (this.state !== "operational") return this.#notInitialized("rndis-set");
        const { status, note } = this.#set(m.oid, m.info);
        return ok({
          kind: "rndis-set",
          response: encodeRndisSetComplete({ requestId: m.requestId, status }),
          note,
        });
      }
      case "keepalive": {
        const b = new Uint8Array(16);
        const dv = new DataView(b.buffer);
        dv.setUint32(0, RNDIS_MSG_TYPE.KEEPALIVE_C, true);
        dv.setUint32(4, 16, true);
        dv.setUint32(8, m.requestId, true);
        dv.setUint32(12, RNDIS_STATUS.SUCCESS, true);
        return ok({ kind: "rndis-keepalive", response: b, note: null });
      }
      default:
        // RESET and SET_EX are not implemented by OpenVMM either; completions and INDICATE are
        // host-to-guest messages.
        return reject("EINVAL", "rndis-unsupported-type", `RNDIS message ${m.kind} from the guest`);
    }
  }

  #notInitialized(kind: string): NetvscResult<RndisControlOutcome, RndisControlRejectReason> {
    return reject("EINVAL", "rndis-not-initialized", `${kind} before RNDIS INIT`);
  }

  #initComplete(requestId: number, status: number): Uint8Array {
    const c = this.config;
    return encodeRndisInitComplete({
      requestId,
      status,
      majorVersion: RNDIS_MAJOR_VERSION,
      minorVersion: RNDIS_MINOR_VERSION,
      deviceFlags: RNDIS_DF_CONNECTIONLESS,
      medium: 0, // NdisMedium802_3
      maxPacketsPerMessage: c.maxPacketsPerMessage,
      maxTransferSize: c.maxTransferSize,
      packetAlignmentFactor: c.packetAlignmentFactor,
    });
  }

  #query(oid: number): Uint8Array | null {
    const O = RNDIS_OID;
    switch (oid) {
      case O.ETH_PERMANENT_ADDRESS:
      case O.ETH_CURRENT_ADDRESS:
        return this.config.mac.slice();
      case O.GEN_MAXIMUM_FRAME_SIZE:
        return u32(this.mtu - ETH_HLEN);
      case O.GEN_MAXIMUM_TOTAL_SIZE:
        return u32(this.mtu);
      case O.GEN_LINK_SPEED:
        return u32(Math.floor(this.config.linkSpeedBps / 100));
      case O.GEN_MEDIA_CONNECT_STATUS:
        return u32(0); // NdisMediaStateConnected: rndis_filter_query_device_link_status reads 0 as up
      case O.GEN_HARDWARE_STATUS:
        return u32(0); // NdisHardwareStatusReady
      case O.GEN_MEDIA_SUPPORTED:
      case O.GEN_MEDIA_IN_USE:
        return u32(0); // NdisMedium802_3
      case O.GEN_CURRENT_PACKET_FILTER:
        return u32(this.packetFilter);
      case O.TCP_OFFLOAD_HARDWARE_CAPABILITIES:
        return offloadCapabilities();
      case O.GEN_RECEIVE_SCALE_CAPABILITIES:
        return rssCapabilities(this.config.rssQueues);
      default:
        return null;
    }
  }

  #set(oid: number, info: Uint8Array | null): { status: number; note: RndisControlRejectReason | null } {
    const O = RNDIS_OID;
    if (info === null) return { status: RNDIS_STATUS.INVALID_DATA, note: "rndis-set-info-invalid" };
    switch (oid) {
      case O.GEN_CURRENT_PACKET_FILTER: {
        if (info.length !== 4) return { status: RNDIS_STATUS.INVALID_DATA, note: "rndis-set-info-invalid" };
        this.packetFilter = new DataView(info.buffer, info.byteOffset, 4).getUint32(0, true);
        return { status: RNDIS_STATUS.SUCCESS, note: null };
      }
      case O.GEN_RECEIVE_SCALE_PARAMETERS: {
        // Guest-supplied lengths and offsets: a bad message is refused with INVALID_DATA and counted.
        const p = decodeRssParam(info);
        const note = p.ok ? (this.onRssParam?.(p.value) ?? null) : p.error.reason;
        return { status: note === null ? RNDIS_STATUS.SUCCESS : RNDIS_STATUS.INVALID_DATA, note };
      }
      case O.TCP_OFFLOAD_PARAMETERS:
      case O.OFFLOAD_ENCAPSULATION:
      case O.GEN_RNDIS_CONFIG_PARAMETER:
        // Accepted and not acted on: the model offers no offloads.
        return { status: RNDIS_STATUS.SUCCESS, note: null };
      default:
        return { status: RNDIS_STATUS.NOT_SUPPORTED, note: "rndis-oid-unknown" };
    }
  }
}

/** struct ndis_offload with no offload enabled, only the 802.3 encapsulations filled in. */
function offloadCapabilities(): Uint8Array {
  const b = new Uint8Array(NDIS_OFFLOAD_SIZE);
  const dv = new DataView(b.buffer);
  dv.setUint8(0, NDIS_OBJECT_TYPE_OFFLOAD);
  dv.setUint8(1, 3); // NDIS_OFFLOAD_PARAMETERS_REVISION_3
  dv.setUint16(2, NDIS_OFFLOAD_SIZE, true);
  // csum: ip4_txenc, ip4_rxenc, ip6_txenc, ip6_rxenc at 4, 12, 20, 28 (capability words stay 0).
  for (const at of [4, 12, 20, 28]) dv.setUint32(at, NDIS_OFFLOAD_ENCAP_8023, true);
  return b;
}

/** struct ndis_recv_scale_cap: `queues` receive queues (with one, rndis_filter_device_add opens no sub-channel). */
function rssCapabilities(queues: number): Uint8Array {
  const b = new Uint8Array(NDIS_RSS_CAPS_SIZE);
  const dv = new DataView(b.buffer);
  dv.setUint8(0, NDIS_OBJECT_TYPE_RSS_CAPABILITIES);
  dv.setUint8(1, 2); // NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2
  dv.setUint16(2, NDIS_RSS_CAPS_SIZE, true);
  dv.setUint32(4, 0, true); // cap_flag
  dv.setUint32(8, 1, true); // num_int_msg
  dv.setUint32(12, queues, true); // num_recv_que
  dv.setUint16(16, 128, true); // num_indirect_tabent (ITAB_NUM)
  return b;
}
