import { fc, test } from "@fast-check/vitest";
import { NETVSC_INVALID_INDEX } from "@ivm/netvsc-protocol";
import { describe, expect, it } from "vitest";
import {
  maxCopyablePacket,
  SendSectionMap,
  sendCopyDecision,
  sendPadding,
  sendSectionOffset,
} from "./send-buffer.js";

describe("SendSectionMap (netvsc_get_next_send_section)", () => {
  it("170 sections need ceil(170 / 64) = 3 longs (24 bytes)", () => {
    const m = new SendSectionMap(170);
    expect([m.mapLongs, m.mapBytes, m.freeCount]).toEqual([3, 24, 170]);
  });

  it("hands out the lowest clear bit", () => {
    const m = new SendSectionMap(170);
    expect([m.allocate(), m.allocate(), m.allocate()]).toEqual([0, 1, 2]);
    expect(m.free(1).ok).toBe(true);
    expect(m.allocate()).toBe(1);
    expect(m.allocate()).toBe(3);
  });

  it("crosses 32- and 64-bit word boundaries and stops at count", () => {
    const m = new SendSectionMap(170);
    const got: number[] = [];
    for (let i = 0; i < 170; i++) got.push(m.allocate());
    expect(got).toEqual([...Array(170).keys()]);
    expect(m.allocate()).toBe(NETVSC_INVALID_INDEX);
    expect(m.snapshotLongs()).toEqual([(1n << 64n) - 1n, (1n << 64n) - 1n, (1n << 42n) - 1n]);
    expect(m.free(100).ok).toBe(true);
    expect(m.allocate()).toBe(100);
  });

  it("an empty map never allocates", () => {
    expect(new SendSectionMap(0).allocate()).toBe(NETVSC_INVALID_INDEX);
  });

  it("rejects a free of an index >= count or of a free section, without touching the map", () => {
    const m = new SendSectionMap(170);
    m.allocate();
    const before = m.snapshotLongs();
    expect(m.free(170)).toMatchObject({ ok: false, error: { reason: "send-section-index-out-of-range" } });
    expect(m.free(0xffffffff)).toMatchObject({
      ok: false,
      error: { reason: "send-section-index-out-of-range" },
    });
    expect(m.free(-1)).toMatchObject({ ok: false, error: { reason: "send-section-index-out-of-range" } });
    expect(m.free(5)).toMatchObject({ ok: false, error: { reason: "send-section-not-in-use" } });
    expect(m.free(0).ok).toBe(true);
    expect(m.free(0)).toMatchObject({ ok: false, error: { reason: "send-section-not-in-use" } });
    expect(m.snapshotLongs()).toEqual(before.map(() => 0n));
    expect(m.inUse).toBe(0);
  });

  test.prop([
    fc.integer({ min: 0, max: 300 }),
    fc.array(fc.oneof(fc.constant<"alloc">("alloc"), fc.integer({ min: -2, max: 320 })), { maxLength: 400 }),
  ])("random alloc/free keeps the count and the lowest-free order", (count, ops) => {
    const m = new SendSectionMap(count);
    const used = new Set<number>();
    for (const op of ops) {
      if (op === "alloc") {
        let expected = NETVSC_INVALID_INDEX;
        for (let i = 0; i < count; i++) {
          if (!used.has(i)) {
            expected = i;
            break;
          }
        }
        expect(m.allocate()).toBe(expected);
        if (expected !== NETVSC_INVALID_INDEX) used.add(expected);
      } else {
        const r = m.free(op);
        expect(r.ok).toBe(used.has(op));
        used.delete(op);
      }
      expect(m.inUse).toBe(used.size);
      expect(m.freeCount).toBe(count - used.size);
    }
    for (let i = 0; i < count; i++) expect(m.isInUse(i)).toBe(used.has(i));
  });
});

describe("netvsc_send copy decision", () => {
  const base = { rmsgSize: 60, msdLen: 0, msdCount: 0, sectionSize: 6144 };

  it("6135 bytes still get a section of 6144, 6136 go as page buffers", () => {
    expect(maxCopyablePacket(6144)).toBe(6135);
    expect(sendCopyDecision({ ...base, pktLen: 6135 })).toBe("new-section");
    expect(sendCopyDecision({ ...base, pktLen: 6136 })).toBe("direct");
  });

  it("batches while msd_len + pktlen + 8 < section size", () => {
    const pending = { ...base, msdLen: 100, msdCount: 1 };
    expect(sendCopyDecision({ ...pending, pktLen: 6035 })).toBe("batch"); // 100 + 6035 + 8 = 6143
    expect(sendCopyDecision({ ...pending, pktLen: 6036 })).toBe("batch-partial"); // header still fits
  });

  it("partial copy needs msd_len + rmsg_size < section size, else a new section", () => {
    const pending = { ...base, msdLen: 6084, msdCount: 1, pktLen: 1000 };
    expect(sendCopyDecision({ ...pending, rmsgSize: 59 })).toBe("batch-partial");
    expect(sendCopyDecision({ ...pending, rmsgSize: 60 })).toBe("new-section");
  });

  it("stops batching at max_pkt packets (8 by default)", () => {
    const pending = { ...base, msdLen: 100, pktLen: 100 };
    expect(sendCopyDecision({ ...pending, msdCount: 7 })).toBe("batch");
    expect(sendCopyDecision({ ...pending, msdCount: 8 })).toBe("new-section");
    expect(sendCopyDecision({ ...pending, msdCount: 8, maxPkt: 9 })).toBe("batch");
  });

  it("pads batched packets to pkt_align with zeros when more follow", () => {
    expect(sendPadding(45, 8, true)).toBe(3);
    expect(sendPadding(48, 8, true)).toBe(0);
    expect(sendPadding(45, 8, false)).toBe(0);
  });

  it("section offsets are index * size + pending bytes", () => {
    expect(sendSectionOffset(169, 6144)).toBe(1038336);
    expect(sendSectionOffset(2, 6144, 64)).toBe(12352);
  });
});
