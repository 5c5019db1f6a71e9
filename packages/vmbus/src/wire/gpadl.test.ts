import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { VmbusError } from "../errors.js";
import { GpadlAssembler } from "../host/gpadl-assembler.js";
import { hex } from "../testing/rng.js";
import { decodeChannelMessage, type GpadlBodyMessage, type GpadlHeaderMessage } from "./channel-message.js";
import {
  createGpadlMessages,
  decodePfnArray,
  GPADL_BODY_MAX_PFNS,
  GPADL_HANDLE_START,
  GPADL_HEADER_MAX_PFNS,
  gpadlMessageCount,
  gpadlRangeBufLen,
} from "./gpadl.js";

function decodeHeader(b: Uint8Array): GpadlHeaderMessage {
  const r = decodeChannelMessage(b);
  if (!r.ok || r.value.kind !== "gpadl-header") throw new Error("not a header");
  return r.value;
}
function decodeBody(b: Uint8Array): GpadlBodyMessage {
  const r = decodeChannelMessage(b);
  if (!r.ok || r.value.kind !== "gpadl-body") throw new Error("not a body");
  return r.value;
}
function seqPfns(n: number, base = 0x1000): number[] {
  return Array.from({ length: n }, (_, i) => base + i);
}

describe("GPADL fragmentation (create_gpadl_header)", () => {
  it("fits 26 PFNs in the header and 28 in each body", () => {
    expect(GPADL_HEADER_MAX_PFNS).toBe(26);
    expect(GPADL_BODY_MAX_PFNS).toBe(28);
  });

  it("needs 147 messages for 4096 pages and 10 for 255", () => {
    expect(gpadlMessageCount(4096)).toBe(147);
    expect(gpadlMessageCount(255)).toBe(10);
    expect(gpadlMessageCount(26)).toBe(1);
    expect(gpadlMessageCount(27)).toBe(2);
    expect(gpadlMessageCount(54)).toBe(2);
    expect(gpadlMessageCount(55)).toBe(3);
    const m = createGpadlMessages({ childRelid: 1, gpadl: 2, sizeBytes: 4096 * 4096, pfns: seqPfns(4096) });
    expect(1 + m.bodies.length).toBe(147);
    const m2 = createGpadlMessages({
      childRelid: 1,
      gpadl: 2,
      sizeBytes: 255 * 4096,
      pfns: new Float64Array(seqPfns(255)),
    });
    expect(1 + m2.bodies.length).toBe(10);
    expect(m2.bodies.at(-1)!.length).toBe(16 + 8 * (255 - 26 - 8 * 28));
  });

  it("writes the header byte for byte", () => {
    const m = createGpadlMessages({
      childRelid: 7,
      gpadl: GPADL_HANDLE_START,
      sizeBytes: 3 * 4096,
      pfns: [0x100, 0x12_3456_789a, 5],
    });
    expect(m.bodies).toHaveLength(0);
    expect(hex(m.header)).toBe(
      [
        "08 00 00 00 00 00 00 00", // msgtype GPADL_HEADER, padding
        "07 00 00 00", // child_relid
        "10 1e 0e 00", // gpadl 0xE1E10
        "20 00", // range_buflen = 8 + 8·3 = 32
        "01 00", // rangecount
        "00 30 00 00", // byte_count 12288
        "00 00 00 00", // byte_offset
        "00 01 00 00 00 00 00 00",
        "9a 78 56 34 12 00 00 00",
        "05 00 00 00 00 00 00 00",
      ].join(" "),
    );
  });

  it("writes bodies byte for byte, msgnumber left 0", () => {
    const m = createGpadlMessages({
      childRelid: 7,
      gpadl: 0xe1e11,
      sizeBytes: 30 * 4096,
      pfns: seqPfns(30, 1000),
    });
    expect(m.header.length).toBe(20 + 8 + 26 * 8);
    expect(new DataView(m.header.buffer).getUint16(16, true)).toBe(8 + 30 * 8);
    expect(m.bodies).toHaveLength(1);
    expect(hex(m.bodies[0]!)).toBe(
      [
        "09 00 00 00 00 00 00 00", // GPADL_BODY
        "00 00 00 00", // msgnumber
        "11 1e 0e 00", // gpadl
        "02 04 00 00 00 00 00 00", // 1026
        "03 04 00 00 00 00 00 00",
        "04 04 00 00 00 00 00 00",
        "05 04 00 00 00 00 00 00",
      ].join(" "),
    );
  });

  it("decodes body PFNs and refuses values of 2^53 or more", () => {
    const m = createGpadlMessages({
      childRelid: 1,
      gpadl: 2,
      sizeBytes: 30 * 4096,
      pfns: seqPfns(30, 2 ** 40),
    });
    const body = decodeBody(m.bodies[0]!);
    const pfns = decodePfnArray(body.data);
    expect(pfns.ok && Array.from(pfns.value)).toEqual([
      2 ** 40 + 26,
      2 ** 40 + 27,
      2 ** 40 + 28,
      2 ** 40 + 29,
    ]);
    const bad = body.data.slice();
    new DataView(bad.buffer).setBigUint64(8, 1n << 53n, true);
    expect(decodePfnArray(bad)).toMatchObject({
      ok: false,
      error: { code: "EPROTO", reason: "pfn-out-of-range" },
    });
    expect(decodePfnArray(bad.subarray(0, 12))).toMatchObject({ ok: false, error: { reason: "malformed" } });
  });

  it("truncates range_buflen to a u16, as the kernel does", () => {
    expect(gpadlRangeBufLen(8190)).toBe(65528);
    expect(gpadlRangeBufLen(8191)).toBe(0);
    expect(gpadlRangeBufLen(8200)).toBe(72);
  });

  it("throws on a caller bug (PFN list not matching the size)", () => {
    expect(() => createGpadlMessages({ childRelid: 1, gpadl: 1, sizeBytes: 8192, pfns: [1] })).toThrow(
      /needs 2 PFNs/,
    );
  });
});

describe("GpadlAssembler (host side)", () => {
  function feed(a: GpadlAssembler, header: Uint8Array, bodies: readonly Uint8Array[]) {
    let step = a.header(decodeHeader(header));
    for (const b of bodies) step = a.body(decodeBody(b));
    return step;
  }

  it("reassembles 4096 PFNs from 147 messages", () => {
    const pfns = seqPfns(4096, 0x40000);
    const m = createGpadlMessages({ childRelid: 3, gpadl: 0xe1e10, sizeBytes: 4096 * 4096, pfns });
    const a = new GpadlAssembler();
    const first = a.header(decodeHeader(m.header));
    expect(first).toMatchObject({ kind: "pending", received: 8 + 26 * 8, expected: 8 + 4096 * 8 });
    let step = first;
    for (const b of m.bodies) step = a.body(decodeBody(b));
    expect(step.kind).toBe("complete");
    if (step.kind !== "complete") return;
    expect(Array.from(step.value.pfns)).toEqual(pfns);
    expect(step.value.ranges[0]).toMatchObject({ byteCount: 4096 * 4096, byteOffset: 0 });
    expect(a.get(0xe1e10)?.childRelid).toBe(3);
    expect(a.teardown(0xe1e10).ok).toBe(true);
    expect(a.get(0xe1e10)).toBeUndefined();
  });

  it("rejects each malformed case with its reason and cleans up", () => {
    const a = new GpadlAssembler();
    const good = createGpadlMessages({ childRelid: 1, gpadl: 10, sizeBytes: 40 * 4096, pfns: seqPfns(40) });

    // body for no header
    expect(a.body(decodeBody(good.bodies[0]!))).toMatchObject({
      kind: "rejected",
      reason: "body-for-no-header",
    });

    // count mismatch: a body carrying one PFN more than range_buflen leaves room for
    const tooLong = a.header(decodeHeader(good.header));
    expect(tooLong.kind).toBe("pending");
    const extra = a.body({ kind: "gpadl-body", msgNumber: 0, gpadl: 10, data: new Uint8Array(8 * 15) });
    expect(extra).toMatchObject({ kind: "rejected", reason: "count-mismatch" });
    // the half-built GPADL was dropped, so the handle is reusable
    expect(feed(a, good.header, good.bodies).kind).toBe("complete");

    // duplicate handle
    expect(a.header(decodeHeader(good.header))).toMatchObject({
      kind: "rejected",
      reason: "duplicate-handle",
    });
    expect(a.get(10)).toBeDefined();

    // range_buflen wrapped past u16 (8191 pages → 0)
    const big = createGpadlMessages({
      childRelid: 1,
      gpadl: 11,
      sizeBytes: 8191 * 4096,
      pfns: seqPfns(8191),
    });
    expect(a.header(decodeHeader(big.header))).toMatchObject({
      kind: "rejected",
      reason: "range-buflen-inconsistent",
    });
    // 8200 pages → range_buflen 72, shorter than the header's own data
    const big2 = createGpadlMessages({
      childRelid: 1,
      gpadl: 12,
      sizeBytes: 8200 * 4096,
      pfns: seqPfns(8200),
    });
    expect(a.header(decodeHeader(big2.header))).toMatchObject({
      kind: "rejected",
      reason: "range-buflen-inconsistent",
    });

    // byte_count inconsistent with the PFNs sent
    const lying = createGpadlMessages({ childRelid: 1, gpadl: 13, sizeBytes: 3 * 4096, pfns: seqPfns(3) });
    new DataView(lying.header.buffer).setUint32(20, 2 * 4096, true);
    expect(a.header(decodeHeader(lying.header))).toMatchObject({
      kind: "rejected",
      reason: "range-inconsistent",
    });
    const offsetPastPage = createGpadlMessages({
      childRelid: 1,
      gpadl: 14,
      sizeBytes: 3 * 4096,
      pfns: seqPfns(3),
    });
    new DataView(offsetPastPage.header.buffer).setUint32(24, 4096, true);
    expect(a.header(decodeHeader(offsetPastPage.header))).toMatchObject({
      kind: "rejected",
      reason: "range-inconsistent",
    });

    // PFN ≥ 2^53
    const huge = createGpadlMessages({ childRelid: 1, gpadl: 15, sizeBytes: 4096, pfns: [1] });
    new DataView(huge.header.buffer).setUint32(32, 0x20_0000, true);
    expect(a.header(decodeHeader(huge.header))).toMatchObject({
      kind: "rejected",
      reason: "pfn-out-of-range",
    });

    // unknown handle on teardown
    const t = a.teardown(0x1234);
    expect(t.ok).toBe(false);
    if (!t.ok) expect(t.error.reason).toBe("unknown-handle");

    expect(a.rejected).toMatchObject({
      "body-for-no-header": 1,
      "count-mismatch": 1,
      "duplicate-handle": 1,
      "range-buflen-inconsistent": 2,
      "range-inconsistent": 2,
      "pfn-out-of-range": 1,
      "unknown-handle": 1,
    });
  });

  test.prop(
    [
      fc.array(
        fc.record({
          isHeader: fc.boolean(),
          gpadl: fc.integer({ min: 0, max: 3 }),
          rangeBufLen: fc.integer({ min: 0, max: 0xffff }),
          rangeCount: fc.integer({ min: 0, max: 4 }),
          data: fc.uint8Array({ maxLength: 224 }),
        }),
        { maxLength: 20 },
      ),
    ],
    { numRuns: 2000 },
  )("never throws on arbitrary header/body sequences", (steps) => {
    const a = new GpadlAssembler();
    for (const s of steps) {
      const r = s.isHeader
        ? a.header({
            kind: "gpadl-header",
            childRelid: 1,
            gpadl: s.gpadl,
            rangeBufLen: s.rangeBufLen,
            rangeCount: s.rangeCount,
            rangeData: s.data,
          })
        : a.body({ kind: "gpadl-body", msgNumber: 0, gpadl: s.gpadl, data: s.data });
      if (r.kind === "rejected") expect(r.error).toBeInstanceOf(VmbusError);
      if (r.kind === "complete") expect(r.value.pfns.every((p) => Number.isSafeInteger(p))).toBe(true);
    }
  });
});
