import { PAGE_SIZE } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { connectNic, makeWorld } from "./testing/world.js";
import { pfnRuns, type VmbusTraceEvent } from "./trace.js";
import { CHANNELMSG } from "./wire/channel-message.js";

describe("VMBus trace events (the kernel's tracepoints)", () => {
  it("a 4096-page GPADL is one header and 146 bodies carrying every PFN of the buffer, in order", () => {
    const w = makeWorld("address-bit");
    const { channel } = connectNic(w);
    const va = w.memory.vmalloc.vzalloc(4096 * PAGE_SIZE, { tag: "test-buf" })!;
    const events: VmbusTraceEvent[] = [];
    const off = w.conn.onTrace((e) => events.push(e));
    const g = channel.establishGpadl(va, 4096 * PAGE_SIZE);
    expect(g.ok).toBe(true);
    const handle = g.ok ? g.value.handle : -1;
    const header = events.filter((e) => e.kind === "establish-gpadl-header");
    const bodies = events.filter((e) => e.kind === "establish-gpadl-body");
    expect(header).toHaveLength(1);
    expect(bodies).toHaveLength(146);
    const pfns: number[] = [];
    for (const e of [...header, ...bodies]) {
      expect(e.handle).toBe(handle);
      expect(e.relid).toBe(channel.relid);
      pfns.push(...e.pfns);
    }
    const expected = Array.from({ length: 4096 }, (_, i) => w.memory.virtToPfn(va + i * PAGE_SIZE));
    expect(pfns).toEqual(expected);
    expect(pfnRuns(pfns).reduce((n, [, c]) => n + c, 0)).toBe(4096);
    // Every posted message is also a named "message" event, with the bytes that went out.
    const posted = events.filter((e) => e.kind === "message" && e.direction === "guest-to-host");
    expect(posted.map((e) => (e.kind === "message" ? e.name : ""))).toEqual([
      "GPADL header",
      ...Array<string>(146).fill("GPADL body"),
    ]);
    expect(posted.every((e) => e.kind === "message" && e.bytes.length > 0)).toBe(true);
    const received = events.filter((e) => e.kind === "message" && e.direction === "host-to-guest");
    expect(received.map((e) => (e.kind === "message" ? e.type : -1))).toEqual([CHANNELMSG.GPADL_CREATED]);

    events.length = 0;
    expect(g.ok && channel.teardownGpadl(g.value).ok).toBe(true);
    expect(events.filter((e) => e.kind === "teardown-gpadl")).toEqual([
      expect.objectContaining({ kind: "teardown-gpadl", handle, relid: channel.relid }),
    ]);
    off();
    events.length = 0;
    channel.establishGpadl(va, PAGE_SIZE);
    expect(events).toEqual([]); // unsubscribed: nothing is built or delivered
  });

  it("open and close are traced with the relid and the ring GPADL", () => {
    const w = makeWorld("pte-bit");
    const events: VmbusTraceEvent[] = [];
    w.conn.onTrace((e) => events.push(e));
    const { channel } = connectNic(w);
    const opened = channel.open({
      sendRingSize: 4 * PAGE_SIZE,
      recvRingSize: 4 * PAGE_SIZE,
      onChannelCallback: () => {},
    });
    expect(opened.ok).toBe(true);
    const open = events.find((e) => e.kind === "open");
    expect(open).toMatchObject({
      kind: "open",
      relid: channel.relid,
      ringGpadlHandle: channel.ringGpadl?.handle,
    });
    channel.close();
    expect(events.filter((e) => e.kind === "close")).toEqual([
      expect.objectContaining({ kind: "close", relid: channel.relid }),
    ]);
  });
});
