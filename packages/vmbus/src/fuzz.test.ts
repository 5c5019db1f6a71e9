import { fc, test } from "@fast-check/vitest";
import { PAGE_SIZE } from "@ivm/memory";
import { describe, expect } from "vitest";
import { connectNic, makeWorld, type WorldEra } from "./testing/world.js";
import { CHANNEL_MESSAGE_SIZE, CHANNELMSG } from "./wire/channel-message.js";
import { VM_PKT } from "./wire/packet.js";

/** Host message bytes: fully arbitrary, or a known type with arbitrary fields (reaches the handlers). */
const hostMessage = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 260 }),
  fc
    .record({
      type: fc.integer({ min: 0, max: 30 }),
      body: fc.uint8Array({ minLength: 0, maxLength: 232 }),
      relid: fc.constantFrom(1, 2, 0, 2047, 2048, 0xffffffff),
      handle: fc.constantFrom(0xe1e10, 0xe1e11, 0, 0x1234),
    })
    .map(({ type, body, relid, handle }) => {
      const sizes = Object.values(CHANNEL_MESSAGE_SIZE) as number[];
      const len = Math.max(8 + body.length, Math.min(240, sizes[type % sizes.length] ?? 8));
      const b = new Uint8Array(Math.min(240, len));
      b.set(body.subarray(0, b.length - 8), 8);
      const v = new DataView(b.buffer);
      v.setUint32(0, type, true);
      if (b.length >= 12) v.setUint32(8, relid, true);
      if (b.length >= 16) v.setUint32(12, handle, true);
      return b;
    }),
);

describe("arbitrary host channel messages", () => {
  for (const era of ["address-bit", "pte-bit"] as WorldEra[]) {
    test.prop([fc.array(hostMessage, { maxLength: 30 }), fc.boolean()], { numRuns: 60 })(
      `never crash the guest, and its state stays consistent (${era})`,
      (messages, whileOpen) => {
        const w = makeWorld(era, { bytes: 16 * 2 ** 20 });
        const { channel } = connectNic(w);
        if (whileOpen)
          expect(channel.open({ sendRingSize: 4 * PAGE_SIZE, recvRingSize: 4 * PAGE_SIZE }).ok).toBe(true);
        for (const m of messages) w.server.sendRaw(m);
        w.scheduler.runIdle();
        expect(w.conn.pendingRequests).toBe(0);
        expect(w.memory.mmu.totalFaults).toBe(0);
        expect(w.memory.checkInvariants()).toEqual([]);
        const received = [...w.conn.counters.received.values()].reduce((a, b) => a + b, 0);
        expect(received).toBeGreaterThanOrEqual(messages.length);

        // The guest still works: GPADLs, sends and close behave as the channel's state says.
        const va = w.memory.vmalloc.vzalloc(8 * PAGE_SIZE, { tag: "fuzz" })!;
        const g = channel.establishGpadl(va, 8 * PAGE_SIZE);
        if (channel.rescinded) {
          expect(g.ok === false && g.error.code).toBe("ENODEV");
        } else {
          expect(g.ok).toBe(true);
          if (g.ok) expect(channel.teardownGpadl(g.value).ok).toBe(true);
        }
        if (whileOpen) {
          const s = channel.sendPacket(new Uint8Array(8), { type: VM_PKT.DATA_INBAND, flags: 0 });
          expect(s.ok || (channel.rescinded && s.error.code === "ENODEV")).toBe(true);
          const c = channel.close();
          expect(c.ok && c.value.freed).toBe(true);
        }
        w.memory.vmalloc.vfree(va);
        expect(w.memory.checkInvariants()).toEqual([]);
        expect(w.memory.leakedPages).toBe(0);
        expect(w.conn.posted(CHANNELMSG.RELID_RELEASED)).toBeLessThanOrEqual(
          w.conn.received(CHANNELMSG.RESCIND_CHANNELOFFER),
        );
      },
    );
  }
});
