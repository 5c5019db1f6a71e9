import { GuestMemory } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { RecvCompRing } from "./recv-comp-ring.js";

describe("receive completion ring (multi_recv_comp)", () => {
  const memory = new GuestMemory({ bytes: 16 * 1024 * 1024 });

  it("queues tids oldest first, as numbers below 2^53 and as the exact bigint above", () => {
    const ring = RecvCompRing.alloc(memory, 3)!; // recv_section_cnt + 1 = 4 slots, 3 usable
    expect([ring.entries, ring.slotsFree, ring.empty]).toEqual([4, 3, true]);
    ring.push(7, 1);
    ring.push(0xffff_ffff_ffff_fffen, 2);
    ring.push(2 ** 53 - 1, 1);
    expect([ring.pending, ring.slotsFree]).toEqual([3, 0]);
    expect(ring.slotAvail()).toEqual({ filled: 3, avail: 0 });
    const out: [number | bigint, number][] = [];
    while (!ring.empty) {
      out.push([ring.firstTid, ring.firstStatus]);
      ring.shift();
    }
    expect(out).toEqual([
      [7, 1],
      [0xffff_ffff_ffff_fffen, 2],
      [2 ** 53 - 1, 1],
    ]);
    // the slots wrap (3, 0, 1): slot 1 held the bigint and now holds a number
    ring.push(9, 1);
    ring.push(10, 1);
    ring.push(11, 0);
    expect(ring.peek()).toEqual({ tid: 9n, status: 1 });
    const again: (number | bigint)[] = [];
    while (!ring.empty) {
      again.push(ring.firstTid);
      ring.shift();
    }
    expect(again).toEqual([9, 10, 11]);
    ring.free(memory);
  });
});
