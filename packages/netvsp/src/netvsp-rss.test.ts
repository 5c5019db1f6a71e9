import {
  encodeRndisSet,
  encodeRssParam,
  ITAB_NUM,
  NDIS_RSS_PARAM_FLAG,
  NETVSC_HASH_KEY,
  NETVSC_RSS_HASHINFO,
  NVSP_PROTOCOL_VERSION,
  RNDIS_OID,
  RNDIS_STATUS,
} from "@ivm/netvsc-protocol";
import { describe, expect, it } from "vitest";
import { ScriptedGuest } from "../test/test-guest.js";

function rssSet(g: ScriptedGuest, info: Uint8Array, requestId = 77): number {
  const { response } = g.rndisRequest(
    encodeRndisSet({ requestId, oid: RNDIS_OID.GEN_RECEIVE_SCALE_PARAMETERS, info }),
  );
  if (response.kind !== "set-complete") throw new Error(`got ${response.kind}`);
  return response.status;
}

const linux = (table: readonly number[], flag = 0) =>
  encodeRssParam({ flag, hashInfo: NETVSC_RSS_HASHINFO, table, key: NETVSC_HASH_KEY });

describe("netvsp: OID_GEN_RECEIVE_SCALE_PARAMETERS", () => {
  it("takes the guest's table over the open queues, and DISABLE_RSS puts everything on the primary", () => {
    const g = new ScriptedGuest({ rssQueues: 8 });
    g.attach(NVSP_PROTOCOL_VERSION.V61);
    expect(g.netvsp.rss.source).toBe("default");
    // One queue is open (the scripted guest has no VMBus server to offer sub-channels).
    expect(rssSet(g, linux(Array(ITAB_NUM).fill(0)))).toBe(RNDIS_STATUS.SUCCESS);
    expect(g.netvsp.rss).toMatchObject({ source: "guest", queues: 1, accepted: 1 });
    expect(rssSet(g, linux(Array(ITAB_NUM).fill(0), NDIS_RSS_PARAM_FLAG.DISABLE_RSS))).toBe(
      RNDIS_STATUS.SUCCESS,
    );
    expect(g.netvsp.rss.source).toBe("disabled");
  });

  it("refuses a table naming a queue that is not open: INVALID_DATA, counted, the table in use stays", () => {
    const g = new ScriptedGuest({ rssQueues: 8 });
    g.attach(NVSP_PROTOCOL_VERSION.V61);
    const before = g.netvsp.rss;
    const eight = Array.from({ length: ITAB_NUM }, (_, i) => i % 8);
    expect(rssSet(g, linux(eight))).toBe(RNDIS_STATUS.INVALID_DATA);
    expect(g.netvsp.counters.rejections.get("rss-param-entry-out-of-range")).toBe(1);
    expect(g.netvsp.rss).toEqual(before);
  });

  it("hostile lengths and offsets: INVALID_DATA with the decoder's reason counted, never a crash", () => {
    const g = new ScriptedGuest({ rssQueues: 8 });
    g.attach(NVSP_PROTOCOL_VERSION.V61);
    const good = linux(Array(ITAB_NUM).fill(0));
    const at = (off: number, v: number) => {
      const b = good.slice();
      new DataView(b.buffer).setUint32(off, v, true);
      return b;
    };
    const cases: [Uint8Array, string][] = [
      [good.subarray(0, 20), "rss-param-short"],
      [at(16, 0xffff_fffc), "rss-param-table-outside"],
      [at(24, 0x7fff_ffff), "rss-param-key-outside"],
    ];
    for (const [info, reason] of cases) {
      expect(rssSet(g, info), reason).toBe(RNDIS_STATUS.INVALID_DATA);
      expect(g.netvsp.counters.rejections.get(reason), reason).toBe(1);
    }
    expect(g.netvsp.rss.source).toBe("default");
    // The host still answers afterwards.
    expect(rssSet(g, good)).toBe(RNDIS_STATUS.SUCCESS);
  });
});
