import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { ITAB_NUM, rxfhIndirDefault } from "./flow-hash.js";
import { NDIS_OBJECT_TYPE } from "./rndis.js";
import {
  decodeRssParam,
  encodeRssParam,
  NDIS_RSS_PARAM_FLAG,
  NDIS_RSS_PARAM_SIZE,
  NETVSC_HASH_KEY,
  NETVSC_HASH_KEYLEN,
  NETVSC_RSS_HASHINFO,
} from "./rss-param.js";

const table = Array.from({ length: ITAB_NUM }, (_, i) => rxfhIndirDefault(i, 8));

function linuxMessage(flag = 0): Uint8Array {
  return encodeRssParam({ flag, hashInfo: NETVSC_RSS_HASHINFO, table, key: NETVSC_HASH_KEY });
}

/** The message with one field overwritten (little-endian), as a hostile guest would send it. */
function patched(at: number, bytes: 1 | 2 | 4, value: number, msg = linuxMessage()): Uint8Array {
  const b = msg.slice();
  const dv = new DataView(b.buffer);
  if (bytes === 1) dv.setUint8(at, value);
  else if (bytes === 2) dv.setUint16(at, value, true);
  else dv.setUint32(at, value >>> 0, true);
  return b;
}

describe("OID_GEN_RECEIVE_SCALE_PARAMETERS (struct ndis_recv_scale_param)", () => {
  it("is laid out as rndis_set_rss_param_msg does: struct, table right after, then the key", () => {
    const m = linuxMessage();
    expect(m.length).toBe(NDIS_RSS_PARAM_SIZE + 4 * ITAB_NUM + NETVSC_HASH_KEYLEN); // 592
    const dv = new DataView(m.buffer);
    expect([dv.getUint8(0), dv.getUint8(1), dv.getUint16(2, true)]).toEqual([
      NDIS_OBJECT_TYPE.RSS_PARAMETERS,
      2,
      40,
    ]);
    expect(dv.getUint32(8, true)).toBe(0x1 | 0x100 | 0x200 | 0x400 | 0x1000);
    expect(dv.getUint16(12, true)).toBe(512); // indirect_tabsize = 4 * ITAB_NUM
    expect(dv.getUint32(16, true)).toBe(40); // indirect_taboffset = sizeof(struct)
    expect(dv.getUint16(20, true)).toBe(40); // hashkey_size
    expect(dv.getUint32(24, true)).toBe(40 + 512); // hashkey_offset
    expect(dv.getUint32(40 + 4 * 9, true)).toBe(1); // entry 9 of i % 8
    expect(m.subarray(552)).toEqual(NETVSC_HASH_KEY);
  });

  it("decodes what it encodes; DISABLE_RSS is read without its table", () => {
    const d = decodeRssParam(linuxMessage());
    if (!d.ok) throw d.error;
    expect(Array.from(d.value.table)).toEqual(table);
    expect(d.value.key).toEqual(NETVSC_HASH_KEY);
    expect(d.value.disabled).toBe(false);
    const off = decodeRssParam(patched(12, 2, 0xffff, linuxMessage(NDIS_RSS_PARAM_FLAG.DISABLE_RSS)));
    expect(off.ok && off.value.disabled).toBe(true);
  });

  it("refuses hostile lengths and offsets with a typed reason", () => {
    const cases: [Uint8Array, string][] = [
      [linuxMessage().subarray(0, 39), "rss-param-short"],
      [patched(0, 1, 0x88), "rss-param-header-invalid"],
      [patched(1, 1, 1), "rss-param-header-invalid"],
      [patched(2, 2, 0xffff), "rss-param-header-invalid"],
      [patched(2, 2, 36), "rss-param-header-invalid"],
      [patched(8, 4, 0x2 | 0x100), "rss-param-hash-invalid"],
      [patched(12, 2, 0), "rss-param-table-invalid"],
      [patched(12, 2, 510), "rss-param-table-invalid"],
      [patched(12, 2, 516), "rss-param-table-invalid"],
      [patched(16, 4, 0xffff_fffc), "rss-param-table-outside"], // would wrap to 508 in u32 arithmetic
      [patched(16, 4, 100), "rss-param-table-outside"],
      [patched(16, 4, 8), "rss-param-table-outside"], // inside the struct
      [patched(20, 2, 39), "rss-param-key-invalid"],
      [patched(24, 4, 560), "rss-param-key-outside"],
      [patched(24, 4, 0xffff_ffff), "rss-param-key-outside"],
    ];
    for (const [msg, reason] of cases) {
      const d = decodeRssParam(msg);
      expect(d.ok, reason).toBe(false);
      if (!d.ok) expect([d.error.code, d.error.reason]).toEqual(["EINVAL", reason]);
    }
  });

  it("accepts a shorter table (a Windows guest's) inside the buffer", () => {
    const m = encodeRssParam({
      flag: 0,
      hashInfo: NETVSC_RSS_HASHINFO,
      table: [0, 1, 2, 3],
      key: NETVSC_HASH_KEY,
    });
    const d = decodeRssParam(m);
    expect(d.ok && Array.from(d.value.table)).toEqual([0, 1, 2, 3]);
  });

  test.prop([fc.uint8Array({ maxLength: 700 })])("never throws on any bytes", (bytes) => {
    const d = decodeRssParam(bytes);
    if (d.ok && !d.value.disabled) {
      expect(d.value.table.length).toBeGreaterThan(0);
      expect(d.value.table.length).toBeLessThanOrEqual(ITAB_NUM);
      expect(d.value.key.length).toBe(NETVSC_HASH_KEYLEN);
    }
  });

  test.prop([fc.nat({ max: 591 }), fc.integer({ min: 0, max: 255 })])(
    "never throws when any one byte of the Linux message is changed",
    (at, v) => {
      expect(() => decodeRssParam(patched(at, 1, v))).not.toThrow();
    },
  );
});
