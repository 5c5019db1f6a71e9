import { decodeNvspMessage, NVSP_PROTOCOL_VERSION, NVSP_STATUS } from "@ivm/netvsc-protocol";
import { describe, expect, it } from "vitest";
import { ScriptedGuest } from "../test/test-guest.js";
import type { NetvspOptions, SubchannelOrder } from "./netvsp.js";

/** Reopens the host's primary with ports that can offer sub-channels, each offer going to `onOffer`. */
function reopenWithOffers(g: ScriptedGuest, onOffer: (count: number) => void): void {
  g.netvsp.close();
  g.netvsp.open({
    ring: g.endpoint,
    gpadl: (h) => g.gpadls.get(h),
    guestMemory: g.memory,
    offerSubChannels: (count) => {
      onOffer(count);
      return count;
    },
  });
}

/**
 * A host whose primary can offer sub-channels. Each offer records how many packets were already in the
 * guest's inbound ring (taken from it), so a test sees whether the SUBCHANNEL completion came first.
 */
function hostWithOffers(options: NetvspOptions) {
  const g = new ScriptedGuest({ rssQueues: 8, ...options });
  const offers: { readonly count: number; readonly completionsBefore: number[] }[] = [];
  const claimed = (packets: ReturnType<ScriptedGuest["receive"]>): number[] =>
    packets.flatMap((p) => {
      const d = decodeNvspMessage(p.data, "host-to-guest");
      return d.ok && d.value.kind === "subchannel-complete" && d.value.status === NVSP_STATUS.SUCCESS
        ? [d.value.numSubchannels]
        : [];
    });
  reopenWithOffers(g, (count) => offers.push({ count, completionsBefore: claimed(g.receive()) }));
  g.attach(NVSP_PROTOCOL_VERSION.V61);
  g.sendNvsp({ kind: "subchannel-request", operation: 1, numSubchannels: 3 });
  return { g, offers, completions: () => claimed(g.receive()) };
}

describe("netvsp: the order of the SUBCHANNEL completion and the offers", () => {
  it("offers first (the default): the offers are made before the completion is written, in one poll", () => {
    const { g, offers, completions } = hostWithOffers({ adversary: { subchannelGrant: 1 } });
    expect(g.netvsp.subchannelOrder).toBe("offers-first");
    expect(g.netvsp.poll()).toBe(true);
    expect(offers).toEqual([{ count: 3, completionsBefore: [] }]);
    expect(completions()).toEqual([1]);
    expect(g.netvsp.counters.subchannelsGranted).toBe(3);
  });

  it("completion first: the completion goes out, and the offers once the guest has had its turn", () => {
    const { g, offers, completions } = hostWithOffers({
      subchannelOrder: "completion-first",
      adversary: { subchannelGrant: 1 },
    });
    expect(g.netvsp.poll()).toBe(true);
    expect(offers).toEqual([]);
    // The guest's turn: the host finds nothing to do and goes idle.
    expect(g.netvsp.poll()).toBe(false);
    expect(offers).toEqual([]);
    expect(g.netvsp.poll()).toBe(true);
    // The completion (claiming 1) was in the guest's ring before the 3 offers were made.
    expect(offers).toEqual([{ count: 3, completionsBefore: [1] }]);
    expect(completions()).toEqual([]);
    expect(g.netvsp.poll()).toBe(false);
    expect(offers).toHaveLength(1);
    expect(g.netvsp.counters.subchannelsGranted).toBe(3);
  });

  it("completion first, honest: the completion claims the sub-channels it is about to offer", () => {
    const { g, offers } = hostWithOffers({ subchannelOrder: "completion-first" });
    // Until idle (the completion), then until idle again (the offers).
    g.pump();
    g.pump();
    expect(offers).toEqual([{ count: 3, completionsBefore: [3] }]);
  });

  it("completion first: a channel closed before the offers were made offers nothing", () => {
    const { g, offers } = hostWithOffers({ subchannelOrder: "completion-first" });
    expect(g.netvsp.poll()).toBe(true);
    let offered = 0;
    reopenWithOffers(g, (n) => {
      offered += n;
    });
    g.pump();
    g.pump();
    expect(offers).toEqual([]);
    expect(offered).toBe(0);
  });

  it("completion first: a refused request (before the receive buffer) offers nothing", () => {
    const g = new ScriptedGuest({ rssQueues: 8, subchannelOrder: "completion-first" });
    let offered = 0;
    reopenWithOffers(g, (n) => {
      offered += n;
    });
    g.sendNvsp({ kind: "init", minProtocolVersion: 0x60001, maxProtocolVersion: 0x60001 });
    g.exchange();
    g.sendNvsp({ kind: "subchannel-request", operation: 1, numSubchannels: 3 });
    g.pump();
    g.pump();
    expect(offered).toBe(0);
    expect(g.netvsp.counters.rejections.get("subchannel-request-too-early")).toBe(1);
  });

  it("refuses an order that is neither", () => {
    expect(() => new ScriptedGuest({ subchannelOrder: "later" as SubchannelOrder })).toThrow(RangeError);
  });
});
