// The RNDIS filter (drivers/net/hyperv/rndis_filter.c): requests and their responses
// (get_rndis_request, rndis_filter_send_request, rndis_filter_receive_response), the receive dispatch
// (rndis_filter_receive, rndis_filter_receive_data, netvsc_linkstatus_callback), and the control
// sequences of rndis_filter_device_add, rndis_filter_open/close and rndis_filter_halt_device.
//
// Requests travel as NVSP control packets by page buffers (bounced through swiotlb in an isolated
// guest); responses come back in receive sections and are parsed from the private copy.

import {
  checkRndisPacket,
  encodeRndisHalt,
  encodeRndisInit,
  encodeRndisQuery,
  encodeRndisSet,
  encodeRssParam,
  ITAB_NUM,
  NDIS_OBJECT_TYPE,
  NDIS_OFFLOAD_SIZE,
  NDIS_OFFLOAD_SIZE_6_0,
  NDIS_RSS_PARAM_FLAG,
  NETVSC_INVALID_INDEX,
  NETVSC_RSS_HASHINFO,
  type NetvscResult,
  NVSP_PROTOCOL_VERSION,
  NVSP_STATUS,
  ok,
  parseRndisFromHost,
  RNDIS_EXT_LEN,
  RNDIS_HEADER_SIZE,
  RNDIS_MESSAGE_SIZE,
  RNDIS_OID,
  RNDIS_STATUS,
  type RndisMessage,
  rndisPacketField,
  rxfhIndirDefault,
} from "@ivm/netvsc-protocol";
import { fromVmbus } from "./control.js";
import type { NetvscDev, RndisRequest, TxPacket } from "./nvdev.js";
import { maxChannels } from "./queues.js";
import type { RndisRequestStep } from "./reasons.js";
import { reject } from "./reasons.js";
import { NO_RX_PPIS, type RxPacketInfo, rndisGetPpis } from "./rndis-ppi.js";
import { dmaUnmap, fillPgBuf, netvscSend } from "./send.js";
import { ViewCache } from "./view-cache.js";

export const RNDIS_REQUEST_TAG = "rndis-request";
/** The request_msg + request_ext part of struct rndis_request (computed; the rest is not modelled). */
export const RNDIS_REQUEST_BYTES: number = RNDIS_MESSAGE_SIZE + RNDIS_EXT_LEN;
/** NDIS_PACKET_TYPE_DIRECTED | ALL_MULTICAST | BROADCAST: the filter rndis_filter_open_device sets. */
export const NETVSC_PACKET_FILTER: number = 0x1 | 0x4 | 0x8;
/** NDIS_OFFLOAD_PARAMETERS_REVISION_3 and sizeof(struct ndis_offload_params) (28, computed). */
const NDIS_OFFLOAD_PARAMETERS_REVISION_3 = 3;
const NDIS_OFFLOAD_PARAMS_SIZE = 28;
/** VERSION_4_OFFLOAD_SIZE: the struct a host at NVSP <= v4 knows. */
const VERSION_4_OFFLOAD_SIZE = 22;
/** NDIS_OFFLOAD_PARAMETERS_TX_RX_DISABLED / _RSC_DISABLED. */
const OFFLOAD_DISABLED = 1;
/** sizeof(struct ndis_recv_scale_cap) and NDIS_RECEIVE_SCALE_CAPABILITIES_REVISION_2. */
const NDIS_RSS_CAPS_SIZE = 18;
const NDIS_RSS_CAPS_REVISION_2 = 2;

/** get_rndis_request + rndis_filter_send_request: the message is written to a kzalloc'd request. */
function sendRequest(
  nv: NetvscDev,
  build: (requestId: number) => Uint8Array,
  expectsResponse: boolean,
): NetvscResult<RndisRequest> {
  const { memory } = nv.env;
  const rndis = nv.rndis;
  const requestId = rndis.nextRequestId++;
  const msg = build(requestId);
  const va = memory.kmalloc.kzalloc(RNDIS_REQUEST_BYTES, { tag: RNDIS_REQUEST_TAG });
  if (va === null) return reject("ENOMEM", "rndis-request-alloc-failed", "get_rndis_request");
  memory.mmu.write(va, msg);
  const req: RndisRequest = {
    requestId,
    va,
    msgLen: msg.length,
    expectsResponse,
    response: undefined,
    pkt: undefined,
  };
  rndis.requests.set(requestId, req);
  // rndis_filter_send: one page buffer, two when the message crosses a page boundary.
  const pb: TxPacket["pb"] = [];
  fillPgBuf(memory, va, msg.length, pb);
  const pkt: TxPacket = {
    skb: null,
    rndisReq: req,
    sendBufIndex: NETVSC_INVALID_INDEX,
    totalDataBuflen: msg.length,
    rmsgSize: 0,
    rmsgPgcnt: 0,
    pb,
    pageBufCnt: pb.length,
    cpPartial: false,
    totalPackets: 0,
    totalBytes: 0,
    dmaRange: null,
  };
  req.pkt = pkt;
  const sent = netvscSend(nv, pkt, false);
  if (!sent.ok) {
    putRequest(nv, req);
    return sent;
  }
  return ok(req);
}

/** put_rndis_request. A mapping still held (no response came) is released with it. */
function putRequest(nv: NetvscDev, req: RndisRequest): void {
  nv.rndis.requests.delete(req.requestId);
  if (req.pkt !== undefined) dmaUnmap(nv, req.pkt);
  nv.env.memory.kmalloc.kfree(req.va);
}

/** Send and wait_for_completion(&request->wait_event); the model's wait ends with ETIMEDOUT. */
function request(
  nv: NetvscDev,
  build: (requestId: number) => Uint8Array,
  what: RndisRequestStep,
): NetvscResult<RndisMessage> {
  const r = sendRequest(nv, build, true);
  if (!r.ok) return r;
  const req = r.value;
  const w = nv.env.scheduler.runUntil(() => req.response !== undefined, what);
  putRequest(nv, req);
  if (!w.ok) return fromVmbus(w.error, `${what}-no-response`);
  return ok(req.response!);
}

/** rndis_filter_query_device: the info buffer, validated against the caller's size (-1 -> EINVAL). */
function query(nv: NetvscDev, oid: number, maxLen: number, info?: Uint8Array): NetvscResult<Uint8Array> {
  const r = request(
    nv,
    (requestId) => encodeRndisQuery({ requestId, oid, ...(info === undefined ? {} : { info }) }),
    `rndis-query-0x${oid.toString(16)}`,
  );
  if (!r.ok) return r;
  const m = r.value;
  if (m.kind !== "query-complete" || m.responseOverflow || m.info === null || m.info.length > maxLen) {
    return reject("EINVAL", "rndis-query-response-invalid", `query of OID 0x${oid.toString(16)}`);
  }
  return ok(m.info);
}

/** A SET whose SET_C must say SUCCESS (rndis_filter_set_packet_filter, _set_offload_params). */
function set(nv: NetvscDev, oid: number, info: Uint8Array): NetvscResult<void> {
  const r = request(
    nv,
    (requestId) => encodeRndisSet({ requestId, oid, info }),
    `rndis-set-0x${oid.toString(16)}`,
  );
  if (!r.ok) return r;
  const m = r.value;
  if (m.kind !== "set-complete" || m.status !== RNDIS_STATUS.SUCCESS) {
    return reject("EINVAL", "rndis-set-failed", `set of OID 0x${oid.toString(16)}`);
  }
  return ok(undefined);
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

function readU32(b: Uint8Array): number | null {
  return b.length === 4 ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) : null;
}

/** An info buffer that starts with a struct ndis_object_header (type, revision, size), zeroed after. */
function objectHeader(size: number, type: number, revision: number, headerSize: number = size): Uint8Array {
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  dv.setUint8(0, type);
  dv.setUint8(1, revision);
  dv.setUint16(2, headerSize, true);
  return b;
}

/** rndis_filter_init_device: INIT, then max_pkt and pkt_align from the host's INIT_CMPLT. */
function initDevice(nv: NetvscDev): NetvscResult<void> {
  nv.rndis.state = "initializing";
  const r = request(nv, (requestId) => encodeRndisInit({ requestId }), "rndis-init");
  if (!r.ok) {
    nv.rndis.state = "uninitialized";
    return r;
  }
  const m = r.value;
  if (m.kind !== "init-complete" || m.responseOverflow || m.status !== RNDIS_STATUS.SUCCESS) {
    nv.rndis.state = "uninitialized";
    return reject("EINVAL", "rndis-init-failed", "RNDIS INIT was not completed with SUCCESS");
  }
  // Divergence: 1 << factor is undefined in C for factors >= 32; the model keeps the default then.
  if (m.packetAlignmentFactor < 32) nv.pktAlign = 2 ** m.packetAlignmentFactor;
  else nv.env.stats.errors.count("rndis-pkt-alignment-invalid");
  nv.maxPkt = m.maxPacketsPerMessage;
  nv.rndis.state = "initialized";
  return ok(undefined);
}

/**
 * rndis_netdev_set_hwcaps: query the offload capabilities (validated as rndis_query_hwcaps does), then
 * set the offload parameters. The model turns nothing on: IP checksum and RSC are set "disabled".
 */
function setHwcaps(nv: NetvscDev): NetvscResult<void> {
  const caps = query(
    nv,
    RNDIS_OID.TCP_OFFLOAD_HARDWARE_CAPABILITIES,
    NDIS_OFFLOAD_SIZE,
    objectHeader(NDIS_OFFLOAD_SIZE, NDIS_OBJECT_TYPE.OFFLOAD, NDIS_OFFLOAD_PARAMETERS_REVISION_3),
  );
  if (!caps.ok) return caps;
  const c = caps.value;
  const size = c.length >= 4 ? c[2]! | (c[3]! << 8) : 0;
  if (
    c.length < 4 ||
    c[0] !== NDIS_OBJECT_TYPE.OFFLOAD ||
    c[1]! < 1 ||
    size > c.length ||
    size < NDIS_OFFLOAD_SIZE_6_0
  ) {
    return reject("EINVAL", "rndis-hwcaps-invalid", "invalid NDIS offload capabilities from the host");
  }
  const extlen =
    nv.nvspVersion <= NVSP_PROTOCOL_VERSION.V4 ? VERSION_4_OFFLOAD_SIZE : NDIS_OFFLOAD_PARAMS_SIZE;
  const params = objectHeader(extlen, NDIS_OBJECT_TYPE.DEFAULT, NDIS_OFFLOAD_PARAMETERS_REVISION_3);
  params[4] = OFFLOAD_DISABLED; // ip_v4_csum: Linux checksums IP itself
  if (extlen > 23) {
    params[22] = OFFLOAD_DISABLED; // rsc_ip_v4
    params[23] = OFFLOAD_DISABLED; // rsc_ip_v6
  }
  return set(nv, RNDIS_OID.TCP_OFFLOAD_PARAMETERS, params);
}

/**
 * The RNDIS half of rndis_filter_device_add, after netvsc_device_add: INIT, MTU, MAC, offloads, link
 * state, link speed (NVSP >= 5) and the RSS capabilities, which set max_chn and num_chn (queues.ts;
 * the sub-channels themselves are subchannel.ts's). Skipped: the friendly-name query (only without an
 * ifalias) and the indirection table size (the host's ITAB_NUM is used as is).
 */
export function rndisFilterDeviceAdd(nv: NetvscDev): NetvscResult<void> {
  const init = initDevice(nv);
  if (!init.ok) return init;
  const mtu = query(nv, RNDIS_OID.GEN_MAXIMUM_FRAME_SIZE, 4);
  if (mtu.ok) {
    const v = readU32(mtu.value);
    if (v !== null && v < nv.rndis.mtu) nv.rndis.mtu = v;
  }
  const mac = query(nv, RNDIS_OID.ETH_PERMANENT_ADDRESS, 6);
  if (!mac.ok) return mac;
  if (mac.value.length !== 6)
    return reject("EINVAL", "rndis-mac-invalid", `MAC of ${mac.value.length} bytes`);
  nv.rndis.mac = mac.value.slice();
  const hw = setHwcaps(nv);
  if (!hw.ok) return hw;
  // rndis_filter_query_device_link_status: 0 is NdisMediaStateConnected.
  const link = query(nv, RNDIS_OID.GEN_MEDIA_CONNECT_STATUS, 4);
  if (link.ok) nv.env.stats.linkUp = readU32(link.value) === 0;
  if (nv.nvspVersion < NVSP_PROTOCOL_VERSION.V5) return ok(undefined);
  const speed = query(nv, RNDIS_OID.GEN_LINK_SPEED, 4);
  if (speed.ok) nv.rndis.linkSpeed100bps = readU32(speed.value) ?? 0;
  const rss = query(
    nv,
    RNDIS_OID.GEN_RECEIVE_SCALE_CAPABILITIES,
    NDIS_RSS_CAPS_SIZE,
    objectHeader(NDIS_RSS_CAPS_SIZE, NDIS_OBJECT_TYPE.RSS_CAPABILITIES, NDIS_RSS_CAPS_REVISION_2),
  );
  // rndis_query_hwcaps failing or num_recv_que < 2 leaves one channel; otherwise max_chn and num_chn.
  const queues =
    rss.ok && rss.value.length >= 16
      ? new DataView(rss.value.buffer, rss.value.byteOffset).getUint32(12, true)
      : 0;
  nv.maxChn = maxChannels(nv.env.cpus, queues);
  nv.numChn = Math.min(nv.maxChn, nv.info.numChn);
  // The table spreads over the channels asked for, before the host says how many it grants.
  for (let i = 0; i < ITAB_NUM; i++) nv.rxTable[i] = rxfhIndirDefault(i, nv.numChn);
  return ok(undefined);
}

/** rndis_filter_open: the packet filter that lets the host send frames. */
export function rndisFilterOpen(nv: NetvscDev): NetvscResult<void> {
  const r = set(nv, RNDIS_OID.GEN_CURRENT_PACKET_FILTER, u32(NETVSC_PACKET_FILTER));
  if (r.ok) nv.rndis.state = "data-initialized";
  return r;
}

/** rndis_filter_close: filter 0 (the host stops sending frames). */
export function rndisFilterClose(nv: NetvscDev): NetvscResult<void> {
  const r = set(nv, RNDIS_OID.GEN_CURRENT_PACKET_FILTER, u32(0));
  if (r.ok || nv.env.channel.rescinded) {
    nv.rndis.state = "initialized";
    return ok(undefined);
  }
  return r;
}

/**
 * rndis_filter_halt_device: HALT (optional, no response), then destroy and wait until nothing is
 * outstanding and every receive completion went out.
 */
export function rndisFilterHalt(nv: NetvscDev): void {
  const r = sendRequest(nv, (requestId) => encodeRndisHalt({ requestId }), false);
  if (r.ok) nv.rndis.state = "uninitialized";
  nv.destroy = true;
  const w = nv.env.scheduler.runUntil(() => netvscDeviceIdle(nv), "netvsc-drain");
  if (!w.ok) nv.env.stats.errors.count("drain-timed-out");
  if (r.ok) putRequest(nv, r.value);
}

/** netvsc_device_idle: on every channel, no receive completion queued and no send outstanding. */
export function netvscDeviceIdle(nv: NetvscDev): boolean {
  for (const q of nv.chanTable) {
    if (q === undefined) continue;
    if ((q.dev.mrc !== undefined && q.dev.mrc.pending > 0) || q.dev.queueSends > 0) return false;
  }
  return (nv.mrc === undefined || nv.mrc.pending === 0) && nv.queueSends <= 0;
}

/** Bytes of each block the handed-up skbs are cut from. */
const SKB_BLOCK = 64 * 1024;
let skbBlock = new ArrayBuffer(0);
let skbBlockAt = 0;

/**
 * The skb handed to onReceive (napi_alloc_skb): bytes of its own, which the consumer may keep. Frames up
 * to 8 KiB are cut from a shared 64 KiB block, so a small frame costs a view rather than a fresh buffer.
 */
function allocSkb(len: number): Uint8Array {
  if (len > SKB_BLOCK / 8) return new Uint8Array(len);
  if (skbBlockAt + len > skbBlock.byteLength) {
    skbBlock = new ArrayBuffer(SKB_BLOCK);
    skbBlockAt = 0;
  }
  const skb = new Uint8Array(skbBlock, skbBlockAt, len);
  skbBlockAt = (skbBlockAt + len + 7) & ~7;
  return skb;
}

/** The skb of a frame nobody consumes: a view of the reused scratch (the parse is done with it). */
const scratchSkbs = new ViewCache();

/**
 * rndis_filter_receive for one range, parsed from its private copy (`copy`): a data frame is copied
 * from the shared receive buffer (`shared`, the range's address) into a fresh skb — the one copy of the
 * payload (rsc_add_data → skb_put_data); responses complete their request; status indications update
 * the link. Anything else, or a malformed message, fails the range.
 */
export function rndisFilterReceive(nv: NetvscDev, copy: Uint8Array, shared: number): number {
  const { stats } = nv.env;
  if (nv.rndis.state === "uninitialized") {
    stats.rxDrops.count("rndis-device-uninitialized");
    return NVSP_STATUS.FAIL;
  }
  // A data message is checked in place with decodeRndisMessage's checks and verdicts, and no message
  // built; its PPIs, if per_pkt_info_offset says it has any, are looked up as rndis_get_ppi does.
  // Any other type takes the decoder.
  const problem = checkRndisPacket(copy);
  if (problem === null) {
    const info =
      rndisPacketField(copy, "perPktInfoOffset") === 0 ? NO_RX_PPIS : rndisGetPpis(nv, copy, shared);
    const dataStart = RNDIS_HEADER_SIZE + rndisPacketField(copy, "dataOffset");
    receiveData(nv, shared, dataStart, rndisPacketField(copy, "dataLen"), info);
    return NVSP_STATUS.SUCCESS;
  }
  if (problem !== "rndis-unhandled-type") {
    stats.rxDrops.count(problem);
    return NVSP_STATUS.FAIL;
  }
  const r = parseRndisFromHost(copy);
  if (!r.ok) {
    stats.rxDrops.count(r.error.reason);
    return NVSP_STATUS.FAIL;
  }
  const m = r.value;
  switch (m.kind) {
    case "init-complete":
    case "query-complete":
    case "set-complete":
      receiveResponse(nv, m);
      return NVSP_STATUS.SUCCESS;
    case "indicate-status":
      stats.statusIndications++;
      if (m.status === RNDIS_STATUS.MEDIA_CONNECT) stats.linkUp = true;
      else if (m.status === RNDIS_STATUS.MEDIA_DISCONNECT) stats.linkUp = false;
      return NVSP_STATUS.SUCCESS;
    default:
      stats.rxDrops.count("rndis-unhandled-type");
      return NVSP_STATUS.FAIL;
  }
}

/**
 * rndis_filter_receive_data after its checks and PPI lookups: the frame at `dataStart` of the range,
 * `dataLen` bytes, copied once from the shared receive buffer into the skb and handed up with what the
 * lookups found.
 */
function receiveData(
  nv: NetvscDev,
  shared: number,
  dataStart: number,
  dataLen: number,
  info: RxPacketInfo,
): void {
  const { stats, onReceive } = nv.env;
  stats.rxPackets++;
  stats.rxBytes += dataLen;
  // Without a consumer the copy still happens (into the reused scratch: the parse is done with it).
  const skb = onReceive === undefined ? scratchSkbs.view(nv.rxScratch, 0, dataLen) : allocSkb(dataLen);
  nv.env.memory.mmu.read(shared + dataStart, skb);
  stats.rxSkbCopies++;
  stats.rxSkbBytes += dataLen;
  onReceive?.(skb, info);
}

/**
 * rndis_filter_receive_response: match the request id; keep a private copy of the response (the
 * decoded info buffer is a view of the receive scratch, reused by the next range); release the
 * request's DMA mappings; wake the waiter.
 */
function receiveResponse(nv: NetvscDev, m: RndisMessage & { readonly requestId: number }): void {
  const req = nv.rndis.requests.get(m.requestId);
  if (req === undefined || req.response !== undefined) {
    nv.env.stats.rxDrops.count("rndis-response-unknown-request");
    return;
  }
  req.response = m.kind === "query-complete" ? { ...m, info: m.info?.slice() ?? null } : m;
  if (req.pkt !== undefined) dmaUnmap(nv, req.pkt);
}

/** rndis_set_rss_param_msg: one OID_GEN_RECEIVE_SCALE_PARAMETERS set with ndc->rx_table and `key`. */
function setRssParam(nv: NetvscDev, key: Uint8Array, flag: number): NetvscResult<void> {
  const info = encodeRssParam({ flag, hashInfo: NETVSC_RSS_HASHINFO, table: nv.rxTable, key });
  const r = set(nv, RNDIS_OID.GEN_RECEIVE_SCALE_PARAMETERS, info);
  if (r.ok && (flag & (NDIS_RSS_PARAM_FLAG.DISABLE_RSS | NDIS_RSS_PARAM_FLAG.HASH_KEY_UNCHANGED)) === 0)
    nv.rndis.rssKey = key.slice();
  return r;
}

/**
 * rndis_filter_set_rss_param: disable RSS first (its result is ignored), then set the table and key;
 * the second set's result is the function's.
 */
export function rndisFilterSetRssParam(nv: NetvscDev, key: Uint8Array): NetvscResult<void> {
  setRssParam(nv, key, NDIS_RSS_PARAM_FLAG.DISABLE_RSS);
  return setRssParam(nv, key, 0);
}
