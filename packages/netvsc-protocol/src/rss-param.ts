// OID_GEN_RECEIVE_SCALE_PARAMETERS: the information buffer of the RNDIS SET with which the guest tells
// the host how to spread received frames over its queues. One layout: struct ndis_recv_scale_param
// (hyperv_net.h, naturally aligned, 40 bytes), then the indirection table (ITAB_NUM u32 queue indices)
// at indirect_taboffset, then the Toeplitz key (NETVSC_HASH_KEYLEN bytes) at hashkey_offset, as
// rndis_set_rss_param_msg (rndis_filter.c) lays them out. The decoder is the host's: every length and
// offset comes from the guest and is checked against the buffer before anything is read.

import { type NetvscResult, ok, reject } from "./errors.js";
import { ITAB_NUM } from "./flow-hash.js";
import { NDIS_OBJECT_TYPE } from "./rndis.js";
import { checkU16, readU16, readU32, writeU16, writeU32 } from "./wire.js";

/** NDIS_RECEIVE_SCALE_PARAMETERS_REVISION_2, the revision netvsc sends. */
export const NDIS_RSS_PARAMETERS_REVISION_2 = 2;
/** sizeof(struct ndis_recv_scale_param). */
export const NDIS_RSS_PARAM_SIZE = 40;
/** NETVSC_HASH_KEYLEN (= NDIS_RSS_HASH_SECRET_KEY_MAX_SIZE_REVISION_2). */
export const NETVSC_HASH_KEYLEN = 40;

/** NDIS_RSS_PARAM_FLAG_*: which parts of the message the host should ignore, or that RSS is off. */
export const NDIS_RSS_PARAM_FLAG: {
  readonly BASE_CPU_UNCHANGED: 0x1;
  readonly HASH_INFO_UNCHANGED: 0x2;
  readonly ITABLE_UNCHANGED: 0x4;
  readonly HASH_KEY_UNCHANGED: 0x8;
  readonly DISABLE_RSS: 0x10;
} = {
  BASE_CPU_UNCHANGED: 0x1,
  HASH_INFO_UNCHANGED: 0x2,
  ITABLE_UNCHANGED: 0x4,
  HASH_KEY_UNCHANGED: 0x8,
  DISABLE_RSS: 0x10,
} as const;

/** NDIS_HASH_*: the hash function (low byte) and the header types hashed. */
export const NDIS_HASH: {
  readonly FUNC_TOEPLITZ: 0x1;
  readonly IPV4: 0x100;
  readonly TCP_IPV4: 0x200;
  readonly IPV6: 0x400;
  readonly TCP_IPV6: 0x1000;
} = { FUNC_TOEPLITZ: 0x1, IPV4: 0x100, TCP_IPV4: 0x200, IPV6: 0x400, TCP_IPV6: 0x1000 } as const;

/** The hashinfo rndis_set_rss_param_msg sends: Toeplitz over IPv4/IPv6, with and without TCP ports. */
export const NETVSC_RSS_HASHINFO: number =
  NDIS_HASH.FUNC_TOEPLITZ | NDIS_HASH.IPV4 | NDIS_HASH.TCP_IPV4 | NDIS_HASH.IPV6 | NDIS_HASH.TCP_IPV6;

/**
 * netvsc_hash_key: the key the driver sends unless `ethtool -X hkey` set another, the well-known
 * Toeplitz key of Microsoft's RSS specification (its verification suite's key).
 */
export const NETVSC_HASH_KEY: Uint8Array = Uint8Array.from([
  0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca,
  0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b,
  0xbe, 0xac, 0x01, 0xfa,
]);

/** Field offsets of struct ndis_recv_scale_param (u16 fields followed by u32 fields are padded). */
const AT = {
  type: 0,
  revision: 1,
  size: 2,
  flag: 4,
  baseCpu: 6,
  hashInfo: 8,
  tableSize: 12,
  tableOffset: 16,
  keySize: 20,
  keyOffset: 24,
} as const;

/** What the guest asks for. */
export interface RssParamInput {
  readonly flag: number;
  readonly hashInfo: number;
  /** The indirection table: one queue index per entry (ITAB_NUM entries on Linux). */
  readonly table: ArrayLike<number>;
  readonly key: Uint8Array;
}

/** The message as the host read it. `table` and `key` are copies. */
export interface RssParam {
  readonly flag: number;
  readonly hashInfo: number;
  readonly table: Uint32Array;
  readonly key: Uint8Array;
  /** DISABLE_RSS was set: the table and key were not read. */
  readonly disabled: boolean;
}

export type RssParamRejectReason =
  | "rss-param-short"
  | "rss-param-header-invalid"
  | "rss-param-hash-invalid"
  | "rss-param-table-invalid"
  | "rss-param-table-outside"
  | "rss-param-key-invalid"
  | "rss-param-key-outside";

/** rndis_set_rss_param_msg's information buffer: the struct, the table right after it, then the key. */
export function encodeRssParam(input: RssParamInput): Uint8Array {
  const tableBytes = 4 * input.table.length;
  const buf = new Uint8Array(NDIS_RSS_PARAM_SIZE + tableBytes + input.key.length);
  buf[AT.type] = NDIS_OBJECT_TYPE.RSS_PARAMETERS;
  buf[AT.revision] = NDIS_RSS_PARAMETERS_REVISION_2;
  writeU16(buf, AT.size, NDIS_RSS_PARAM_SIZE);
  writeU16(buf, AT.flag, checkU16("flag", input.flag));
  writeU32(buf, AT.hashInfo, input.hashInfo >>> 0);
  writeU16(buf, AT.tableSize, checkU16("table bytes", tableBytes));
  writeU32(buf, AT.tableOffset, NDIS_RSS_PARAM_SIZE);
  writeU16(buf, AT.keySize, checkU16("key bytes", input.key.length));
  writeU32(buf, AT.keyOffset, NDIS_RSS_PARAM_SIZE + tableBytes);
  for (let i = 0; i < input.table.length; i++)
    writeU32(buf, NDIS_RSS_PARAM_SIZE + 4 * i, input.table[i]! >>> 0);
  buf.set(input.key, NDIS_RSS_PARAM_SIZE + tableBytes);
  return buf;
}

/**
 * The host's reading of the information buffer (OpenVMM's netvsp checks the same things before it
 * uses the table): the header, then, unless RSS is being disabled, a Toeplitz hash, a table of whole
 * u32 entries no longer than ITAB_NUM and a key of NETVSC_HASH_KEYLEN bytes, each inside the buffer.
 * Offsets are u32 from the guest; the sums are done in doubles, so no wrap-around hides an overrun.
 */
export function decodeRssParam(info: Uint8Array): NetvscResult<RssParam, RssParamRejectReason> {
  if (info.length < NDIS_RSS_PARAM_SIZE)
    return reject("EINVAL", "rss-param-short", `RSS parameters of ${info.length} bytes`);
  const size = readU16(info, AT.size);
  if (
    info[AT.type] !== NDIS_OBJECT_TYPE.RSS_PARAMETERS ||
    info[AT.revision]! < NDIS_RSS_PARAMETERS_REVISION_2 ||
    size < NDIS_RSS_PARAM_SIZE ||
    size > info.length
  )
    return reject("EINVAL", "rss-param-header-invalid", "RSS parameters header");
  const flag = readU16(info, AT.flag);
  const hashInfo = readU32(info, AT.hashInfo);
  if ((flag & NDIS_RSS_PARAM_FLAG.DISABLE_RSS) !== 0)
    return ok({ flag, hashInfo, table: new Uint32Array(0), key: new Uint8Array(0), disabled: true });
  if ((hashInfo & 0xff) !== NDIS_HASH.FUNC_TOEPLITZ)
    return reject("EINVAL", "rss-param-hash-invalid", `hash function 0x${(hashInfo & 0xff).toString(16)}`);
  const tableBytes = readU16(info, AT.tableSize);
  const tableOffset = readU32(info, AT.tableOffset);
  if (tableBytes === 0 || tableBytes % 4 !== 0 || tableBytes > 4 * ITAB_NUM)
    return reject("EINVAL", "rss-param-table-invalid", `indirection table of ${tableBytes} bytes`);
  if (tableOffset < NDIS_RSS_PARAM_SIZE || tableOffset + tableBytes > info.length)
    return reject(
      "EINVAL",
      "rss-param-table-outside",
      `table at ${tableOffset}+${tableBytes} of ${info.length}`,
    );
  const keyBytes = readU16(info, AT.keySize);
  const keyOffset = readU32(info, AT.keyOffset);
  if (keyBytes !== NETVSC_HASH_KEYLEN)
    return reject("EINVAL", "rss-param-key-invalid", `hash key of ${keyBytes} bytes`);
  if (keyOffset < NDIS_RSS_PARAM_SIZE || keyOffset + keyBytes > info.length)
    return reject("EINVAL", "rss-param-key-outside", `key at ${keyOffset}+${keyBytes} of ${info.length}`);
  const table = new Uint32Array(tableBytes / 4);
  for (let i = 0; i < table.length; i++) table[i] = readU32(info, tableOffset + 4 * i);
  return ok({ flag, hashInfo, table, key: info.slice(keyOffset, keyOffset + keyBytes), disabled: false });
}
