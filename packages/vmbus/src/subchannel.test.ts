import { PAGE_SIZE } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import type { VmbusChannel } from "./channel.js";
import { HV_NIC_GUID } from "./channel-offer.js";
import { offerSubChannel, rescindSubChannels } from "./host/subchannel.js";
import { RING_TAGS } from "./ring/ring-buffer.js";
import { connectNic, ERAS, makeWorld, RecordingDevice } from "./testing/world.js";
import { CHANNELMSG } from "./wire/channel-message.js";

const RING = 4 * PAGE_SIZE;
const openOpts = { sendRingSize: RING, recvRingSize: RING, requestTableSize: 16 };

function primaryWithCallback(era: (typeof ERAS)[number]) {
  const w = makeWorld(era);
  const nic = connectNic(w);
  const opened: VmbusChannel[] = [];
  nic.channel.scCreationCallback = (sc) => {
    const r = sc.open(openOpts);
    if (r.ok) opened.push(sc);
  };
  const r = nic.channel.open(openOpts);
  if (!r.ok) throw r.error;
  return { w, ...nic, opened };
}

describe.each(ERAS)("sub-channels (%s)", (era) => {
  it("attaches each offer to its primary and opens it with its own rings and ring GPADL", () => {
    const { w, channel, host, opened } = primaryWithCallback(era);
    const ringPagesBefore = w.memory.buddy.pagesOwnedBy(RING_TAGS.pages);
    const gpadlsBefore = w.conn.posted(CHANNELMSG.GPADL_HEADER);
    const devices = [1, 2, 3].map((i) => {
      const d = new RecordingDevice();
      offerSubChannel(w.server, host, i, d);
      return d;
    });
    w.scheduler.runIdle();
    expect(channel.subChannels.map((c) => c.offer.subChannelIndex)).toEqual([1, 2, 3]);
    expect(opened.length).toBe(3);
    for (const sc of opened) {
      expect(sc.primaryChannel).toBe(channel);
      expect(sc.state).toBe("opened");
      expect(sc.ringGpadl?.handle).not.toBe(channel.ringGpadl?.handle);
    }
    // Every sub-channel is its own get_order allocation, its own GPADL and its own OPENCHANNEL.
    expect(w.memory.buddy.pagesOwnedBy(RING_TAGS.pages) - ringPagesBefore).toBe(3 * 8);
    expect(w.conn.posted(CHANNELMSG.GPADL_HEADER) - gpadlsBefore).toBe(3);
    expect(devices.every((d) => d.opened === 1)).toBe(true);
    expect(w.conn.counters.subChannelOffers).toBe(3);
    // A sub-channel is never probed as a device of its own.
    expect(w.conn.counters.orphanSubChannelOffers).toBe(0);
  });

  it("onSubChannel sees each sub-channel before the driver opens it, onOffer never does", () => {
    const { w, host } = primaryWithCallback(era);
    const seen: string[] = [];
    const offers: number[] = [];
    const offSeen = w.conn.onSubChannel((sc) => seen.push(`${sc.offer.subChannelIndex}:${sc.state}`));
    const offOffers = w.conn.onOffer((c) => offers.push(c.relid));
    for (const i of [1, 2]) offerSubChannel(w.server, host, i, new RecordingDevice());
    w.scheduler.runIdle();
    expect(seen).toEqual(["1:open-state", "2:open-state"]); // CHANNEL_OPEN_STATE: not opened yet
    expect(offers).toEqual([]);
    offSeen();
    offOffers();
    offerSubChannel(w.server, host, 3, new RecordingDevice());
    w.scheduler.runIdle();
    expect(seen).toHaveLength(2);
  });

  it("closing the primary closes every open sub-channel first (vmbus_disconnect_ring)", () => {
    const { w, channel, host } = primaryWithCallback(era);
    for (const i of [1, 2]) offerSubChannel(w.server, host, i, new RecordingDevice());
    w.scheduler.runIdle();
    const closes: number[] = [];
    w.conn.onMessage((e) => {
      if (e.direction === "guest-to-host" && e.type === CHANNELMSG.CLOSECHANNEL)
        closes.push(new DataView(e.bytes.buffer).getUint32(8, true));
    });
    const r = channel.close();
    expect(r.ok).toBe(true);
    const [a, b] = channel.subChannels;
    expect(closes).toEqual([a!.relid, b!.relid, channel.relid]);
    expect(w.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(0);
  });

  it("a rescinded sub-channel is closed by its driver and leaves the primary's list", () => {
    const { w, channel, host, opened } = primaryWithCallback(era);
    offerSubChannel(w.server, host, 1, new RecordingDevice());
    w.scheduler.runIdle();
    const sc = opened[0]!;
    sc.onRescind((c) => c.close());
    expect(rescindSubChannels(w.server, host)).toBe(1);
    w.scheduler.runIdle();
    expect(sc.rescinded).toBe(true);
    expect(sc.released).toBe(true);
    expect(channel.subChannels).toEqual([]);
    expect(w.conn.channels.has(sc.relid)).toBe(false);
    expect(channel.state).toBe("opened");
  });

  it("a rescind while the sub-channel waits for OPENCHANNEL_RESULT fails that open with ENODEV", () => {
    const w = makeWorld(era);
    const nic = connectNic(w);
    const results: string[] = [];
    nic.channel.scCreationCallback = (sc) => {
      const r = sc.open(openOpts);
      results.push(r.ok ? "ok" : r.error.code);
    };
    nic.channel.open(openOpts);
    const sub = offerSubChannel(w.server, nic.host, 1, new RecordingDevice());
    // The host rescinds as soon as it sees the OPENCHANNEL and never answers it.
    w.server.hooks.intercept = (bytes) => {
      const type = new DataView(bytes.buffer).getUint32(0, true);
      if (type !== CHANNELMSG.OPENCHANNEL_RESULT) return undefined;
      w.server.hooks.intercept = undefined;
      w.server.rescind(sub.relid);
      return { kind: "drop" };
    };
    w.scheduler.runIdle();
    expect(results).toEqual(["ENODEV"]);
    expect(nic.channel.subChannels).toEqual([]);
    expect(w.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(8); // the primary's only
  });

  it("an offer with a sub-channel index but no primary becomes a device of its own (fnew)", () => {
    const w = makeWorld(era);
    const probed: VmbusChannel[] = [];
    w.conn.onOffer((c) => probed.push(c));
    w.server.registerDevice({ interfaceType: HV_NIC_GUID, subChannelIndex: 4 }, new RecordingDevice());
    w.conn.connect();
    expect(probed.length).toBe(1);
    expect(probed[0]!.primaryChannel).toBeUndefined();
    expect(w.conn.counters.orphanSubChannelOffers).toBe(1);
  });

  it("a second index-0 offer of the same device is dropped, and a sub-channel without callback stays unopened", () => {
    const w = makeWorld(era);
    const nic = connectNic(w);
    w.server.registerDevice(
      { interfaceType: nic.host.offer.interfaceType, interfaceInstance: nic.host.offer.interfaceInstance },
      new RecordingDevice(),
    );
    offerSubChannel(w.server, nic.host, 1, new RecordingDevice());
    w.scheduler.runIdle();
    expect(w.conn.counters.dropped["duplicate-primary"]).toBe(1);
    expect(nic.channel.subChannels.length).toBe(1);
    expect(nic.channel.subChannels[0]!.state).toBe("open-state");
  });
});
