import { describe, expect, it } from "vitest";
import { HV_IDE_GUID, HV_NIC_GUID, HV_SCSI_GUID } from "./channel-offer.js";
import type { MessageEvent } from "./connection.js";
import { Scheduler } from "./scheduler.js";
import { HV_POST_STATUS } from "./synic.js";
import { connectNic, makeWorld, RecordingDevice } from "./testing/world.js";
import { CHANNELMSG, encodeChannelMessage, VMBUS_VERSION } from "./wire/channel-message.js";

describe("scheduler", () => {
  it("a wait nobody can satisfy is a typed ETIMEDOUT, not a hang", () => {
    const s = new Scheduler();
    const r = s.runUntil(() => false, "a reply");
    expect(r.ok === false && [r.error.code, r.error.reason]).toEqual(["ETIMEDOUT", "host-never-answered"]);
    expect(s.counters.stalls).toBe(1);
  });

  it("a poller that keeps busy without ever answering is stopped by the round limit", () => {
    const s = new Scheduler({ maxRoundsPerWait: 50 });
    s.addPoller("chatty host", () => true);
    const r = s.runUntil(() => false, "a reply");
    expect(r.ok === false && r.error.reason).toBe("round-limit");
    expect(s.counters.rounds).toBe(50);
  });
});

describe("connection", () => {
  it("negotiates the newest version the host accepts, then collects the offers", () => {
    const w = makeWorld("pte-bit");
    w.server.registerDevice({ interfaceType: HV_NIC_GUID }, new RecordingDevice());
    w.server.registerDevice({ interfaceType: HV_SCSI_GUID }, new RecordingDevice());
    const events: string[] = [];
    w.conn.onMessage((e) => events.push(`${e.direction === "guest-to-host" ? ">" : "<"}${e.type}`));
    const r = w.conn.connect();
    expect(r).toEqual({ ok: true, value: VMBUS_VERSION.WIN10_V5_3 });
    expect(w.conn.state).toBe("connected");
    expect(w.conn.channels.size).toBe(2);
    expect(events).toEqual([">14", "<15", ">3", "<1", "<1", "<4"]);
    expect(w.conn.posted(CHANNELMSG.INITIATE_CONTACT)).toBe(1);
    expect(w.conn.received(CHANNELMSG.OFFERCHANNEL)).toBe(2);
  });

  it("each message event's bytes are an array of its own, the same on every read, as the message crossed", () => {
    const w = makeWorld("pte-bit");
    w.server.registerDevice({ interfaceType: HV_NIC_GUID }, new RecordingDevice());
    const events: { e: MessageEvent; want: number[] }[] = [];
    w.conn.onMessage((e) => events.push({ e, want: [] }));
    expect(w.conn.connect().ok).toBe(true);
    // enough messages to fill several chunks of kept copies, read only afterwards
    const sent: number[][] = [];
    for (let i = 0; i < 600; i++) {
      const bytes = encodeChannelMessage({ kind: "relid-released", childRelid: 1000 + i });
      sent.push(Array.from(bytes));
      expect(w.conn.postMessage(bytes).ok).toBe(true);
      bytes.fill(0xee); // the poster's buffer changes; the event keeps what was posted
    }
    const posted = events.filter(
      ({ e }) => e.direction === "guest-to-host" && e.type === CHANNELMSG.RELID_RELEASED,
    );
    expect(posted.map(({ e }) => Array.from(e.bytes))).toEqual(sent);
    for (const { e } of posted) {
      expect(e.bytes).toBe(e.bytes);
      expect(e.bytes.byteOffset).toBe(0);
      expect(e.bytes.buffer.byteLength).toBe(e.bytes.length);
    }
    // a copy changed by its reader stays changed, and changes no other event
    posted[0]!.e.bytes[8] = 0x55;
    expect(posted[0]!.e.bytes[8]).toBe(0x55);
    expect(Array.from(posted[1]!.e.bytes)).toEqual(sent[1]);
  });

  it("falls back version by version; an isolated guest refuses anything below 5.2", () => {
    const iso = makeWorld("address-bit", { hostMaxVersion: VMBUS_VERSION.WIN10 });
    const r = iso.conn.connect();
    expect(r.ok === false && r.error.reason).toBe("version-too-old");
    expect(iso.conn.posted(CHANNELMSG.INITIATE_CONTACT)).toBe(6);

    const plain = makeWorld("none", { hostMaxVersion: VMBUS_VERSION.WIN10 });
    expect(plain.conn.connect()).toEqual({ ok: true, value: VMBUS_VERSION.WIN10 });
  });

  it("an isolated guest accepts only devices allowed in isolated VMs", () => {
    for (const era of ["address-bit", "none"] as const) {
      const w = makeWorld(era);
      w.server.registerDevice({ interfaceType: HV_IDE_GUID }, new RecordingDevice());
      w.server.registerDevice({ interfaceType: HV_NIC_GUID }, new RecordingDevice());
      expect(w.conn.connect().ok).toBe(true);
      expect(w.conn.channels.size).toBe(era === "none" ? 2 : 1);
      expect(w.conn.counters.dropped["invalid-offer"]).toBe(era === "none" ? 0 : 1);
    }
  });

  it("vmbus_post_msg retries -ENOBUFS/-EAGAIN-like statuses, up to 100 tries", () => {
    const w = makeWorld("none");
    const { channel } = connectNic(w);
    let refusals = 2;
    w.server.postStatus = () =>
      refusals-- > 0 ? HV_POST_STATUS.INSUFFICIENT_BUFFERS : HV_POST_STATUS.SUCCESS;
    expect(channel.open({ sendRingSize: 16384, recvRingSize: 16384 }).ok).toBe(true);
    expect(w.conn.counters.postRetries).toBe(2);
    expect(w.conn.counters.retryDelayUs).toBe(1 + 2);

    const calls = w.synic.counters.postCalls;
    w.server.postStatus = () => HV_POST_STATUS.INVALID_CONNECTION_ID;
    const r = w.conn.postMessage(encodeChannelMessage({ kind: "request-offers" }));
    expect(r.ok === false && r.error.code).toBe("EAGAIN");
    expect(w.synic.counters.postCalls - calls).toBe(100);

    w.server.postStatus = () => HV_POST_STATUS.INSUFFICIENT_MEMORY;
    const nobufs = w.conn.postMessage(encodeChannelMessage({ kind: "request-offers" }));
    expect(nobufs.ok === false && nobufs.error.code).toBe("ENOBUFS");
  });

  it("other statuses are EINVAL at once; INVALID_CONNECTION_ID on INITIATE_CONTACT too", () => {
    const w = makeWorld("none");
    w.server.postStatus = () => HV_POST_STATUS.INVALID_PARAMETER;
    const calls = w.synic.counters.postCalls;
    const r = w.conn.postMessage(encodeChannelMessage({ kind: "request-offers" }));
    expect(r.ok === false && r.error.code).toBe("EINVAL");
    expect(w.synic.counters.postCalls - calls).toBe(1);
    w.server.postStatus = () => HV_POST_STATUS.INVALID_CONNECTION_ID;
    const c = w.conn.connect();
    expect(c.ok === false && c.error.code).toBe("EINVAL");
    expect(w.synic.counters.postCalls - calls).toBe(2);
  });

  it("a host that never answers INITIATE_CONTACT is ETIMEDOUT", () => {
    const w = makeWorld("pte-bit");
    w.server.hooks.intercept = () => ({ kind: "drop" });
    const r = w.conn.connect();
    expect(r.ok === false && r.error.code).toBe("ETIMEDOUT");
    expect(w.conn.pendingRequests).toBe(0);
  });

  it("drops malformed, unknown, unexpected and unmatched host messages, counted", () => {
    const w = makeWorld("pte-bit");
    connectNic(w);
    w.server.sendRaw(new Uint8Array(3));
    w.server.sendRaw(new Uint8Array([99, 0, 0, 0, 0, 0, 0, 0]));
    w.server.sendRaw(encodeChannelMessage({ kind: "request-offers" }));
    w.server.sendRaw(encodeChannelMessage({ kind: "gpadl-torndown", gpadl: 7 }));
    w.server.sendRaw(encodeChannelMessage({ kind: "rescind-channel-offer", childRelid: 999 }));
    w.scheduler.runIdle();
    const d = w.conn.counters.dropped;
    expect([d.malformed, d["unknown-type"], d["unexpected-type"], d["unmatched-reply"]]).toEqual([
      1, 1, 1, 1,
    ]);
    expect(d["rescind-unknown-channel"]).toBe(1);
  });
});
