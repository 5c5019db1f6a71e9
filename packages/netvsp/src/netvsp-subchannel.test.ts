import { decodeNvspMessage, NVSP_PROTOCOL_VERSION, NVSP_STATUS } from "@ivm/netvsc-protocol";
import { describe, expect, it } from "vitest";
import { ScriptedGuest } from "../test/test-guest.js";

function subchannelReply(g: ScriptedGuest, asked: number, operation = 1) {
  g.sendNvsp({ kind: "subchannel-request", operation, numSubchannels: asked });
  const got = g.exchange();
  expect(got).toHaveLength(1);
  const d = decodeNvspMessage(got[0]!.data, "host-to-guest");
  if (!d.ok || d.value.kind !== "subchannel-complete") throw new Error("no SUBCHANNEL completion");
  return d.value;
}

describe("netvsp: NVSP 5 SUBCHANNEL", () => {
  it("refuses a request before the receive buffer is mapped (the primary is not ready)", () => {
    const g = new ScriptedGuest({ rssQueues: 8 });
    g.sendNvsp({ kind: "init", minProtocolVersion: 0x60001, maxProtocolVersion: 0x60001 });
    g.exchange();
    const r = subchannelReply(g, 3);
    expect(r.status).toBe(NVSP_STATUS.FAIL);
    expect(r.numSubchannels).toBe(0);
    expect(g.netvsp.counters.rejections.get("subchannel-request-too-early")).toBe(1);
  });

  it("grants none without a VMBus server to offer them, and refuses an unknown operation", () => {
    const g = new ScriptedGuest({ rssQueues: 8 });
    g.attach(NVSP_PROTOCOL_VERSION.V61);
    const r = subchannelReply(g, 3);
    expect(r.status).toBe(NVSP_STATUS.SUCCESS);
    expect(r.numSubchannels).toBe(0);
    expect(subchannelReply(g, 3, 7).status).toBe(NVSP_STATUS.FAIL);
    expect(g.netvsp.counters.subchannelRequests).toBe(2);
  });

  it("an adversarial completion claims whatever count it likes", () => {
    const g = new ScriptedGuest({ rssQueues: 2, adversary: { subchannelGrant: 40 } });
    g.attach(NVSP_PROTOCOL_VERSION.V61);
    expect(subchannelReply(g, 1).numSubchannels).toBe(40);
  });

  it("refuses an RSS queue count outside 1..64", () => {
    expect(() => new ScriptedGuest({ rssQueues: 0 })).toThrow(RangeError);
    expect(() => new ScriptedGuest({ rssQueues: 65 })).toThrow(RangeError);
  });
});
