import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { NetvscError } from "./errors.js";
import { encodeNvspMessage, NVSP_STATUS } from "./nvsp.js";
import {
  encodeXferPagePacket,
  type ReceiveBufferSizes,
  scanXferPagePacket,
  validateXferPagePacket,
  XferPageScan,
  type XferRange,
} from "./xfer-page.js";

const SIZES: ReceiveBufferSizes = { recvBufSize: 16 * 1024 * 1024, recvSectionSize: 1728 };
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function ranges(
  pkt: Uint8Array,
  sizes: { recvBufSize: number; recvSectionSize: number } = SIZES,
): readonly XferRange[] {
  const r = validateXferPagePacket(pkt, sizes);
  if (!r.ok) throw r.error;
  return r.value.ranges;
}
function rejection(pkt: Uint8Array, headerMin?: number): string | null {
  const r = validateXferPagePacket(pkt, SIZES, headerMin);
  return r.ok ? null : r.error.reason;
}

describe("transfer-page packet layout", () => {
  it("encodes descriptor, xfer header and ranges at the kernel's offsets", () => {
    const b = encodeXferPagePacket({
      transactionId: 0x1122334455667788n,
      ranges: [{ offset: 0x100, length: 60 }],
    });
    // type 7, offset8 = (24 + 8) / 8 = 4, len8 = 4 + 40/8 = 9, flags 1, trans_id, pageset 0xcafe, count 1
    expect(hex(b.subarray(0, 32))).toBe(
      "0700" +
        "0400" +
        "0900" +
        "0100" +
        "8877665544332211" +
        "feca" +
        "00" +
        "00" +
        "01000000" +
        "3c000000" +
        "00010000",
    );
    expect(b.length).toBe(72);
    expect(b.subarray(32)).toEqual(
      encodeNvspMessage({
        kind: "send-rndis-pkt",
        channelType: 0,
        sendBufSectionIndex: 0xffffffff,
        sendBufSectionSize: 0,
      }),
    );
  });

  it("round-trips the host's ranges and transaction id", () => {
    const r = validateXferPagePacket(
      encodeXferPagePacket({
        transactionId: 42n,
        ranges: [
          { offset: 0, length: 100 },
          { offset: 1728, length: 1728 },
        ],
      }),
      SIZES,
    );
    expect(r).toEqual({
      ok: true,
      value: {
        transactionId: 42n,
        flags: 1,
        pagesetId: 0xcafe,
        senderOwnsSet: 0,
        status: NVSP_STATUS.SUCCESS,
        ranges: [
          { index: 0, ok: true, offset: 0, length: 100 },
          { index: 1, ok: true, offset: 1728, length: 1728 },
        ],
      },
    });
  });
});

describe("packet-level checks (netvsc_receive returns without a completion)", () => {
  const good = (): Uint8Array =>
    encodeXferPagePacket({ transactionId: 1n, ranges: [{ offset: 0, length: 10 }] });

  it("accepts a good packet", () => {
    expect(rejection(good())).toBeNull();
  });

  it("the NVSP message must be SEND_RNDIS_PKT", () => {
    const b = encodeXferPagePacket({
      transactionId: 1n,
      ranges: [],
      nvsp: encodeNvspMessage({ kind: "send-rndis-pkt-complete", status: 1 }),
    });
    expect(rejection(b)).toBe("nvsp-not-rndis-pkt");
  });

  it("fewer than 4 NVSP bytes is a header error", () => {
    const b = encodeXferPagePacket({ transactionId: 1n, ranges: [], nvsp: new Uint8Array(0) });
    expect(rejection(b)).toBe("nvsp-header-too-short");
  });

  it("the pageset id must be 0xcafe", () => {
    expect(rejection(encodeXferPagePacket({ transactionId: 1n, ranges: [], pagesetId: 0xcaff }))).toBe(
      "xfer-pageset-id-invalid",
    );
  });

  it("the range count must fit before the data offset", () => {
    const b = good();
    new DataView(b.buffer).setUint32(20, 2, true);
    expect(rejection(b)).toBe("xfer-range-count-invalid");
    new DataView(b.buffer).setUint32(20, 0xffffffff, true);
    expect(rejection(b)).toBe("xfer-range-count-invalid");
  });

  it("the header must fit before the data offset (24 today, 32 while ranges was [1])", () => {
    const b = encodeXferPagePacket({ transactionId: 1n, ranges: [] }); // offset8 = 3 -> 24 bytes
    expect(rejection(b)).toBeNull();
    expect(rejection(b, 32)).toBe("xfer-header-too-short");
    const low = good();
    new DataView(low.buffer).setUint16(2, 2, true); // offset 16: the type is read first, from byte 16
    expect(rejection(low)).toBe("nvsp-not-rndis-pkt");
    new DataView(low.buffer).setUint32(16, 107, true);
    expect(rejection(low)).toBe("xfer-header-too-short");
  });

  it("a descriptor that does not describe the copy is refused", () => {
    const b = good();
    new DataView(b.buffer).setUint16(4, 0xffff, true);
    expect(rejection(b)).toBe("xfer-descriptor-invalid");
    expect(rejection(new Uint8Array(15))).toBe("xfer-descriptor-invalid");
  });
});

describe("per-range checks: reported per range, packet completed with FAIL", () => {
  const size = SIZES.recvBufSize;
  const one = (offset: number, length: number, sizes = SIZES): XferRange =>
    ranges(encodeXferPagePacket({ transactionId: 1n, ranges: [{ offset, length }] }), sizes)[0]!;
  const small = { recvBufSize: 4096, recvSectionSize: 4096 };

  it("len == buf_size - offset accepted, one more rejected", () => {
    expect(one(4096 - 100, 100, small).ok).toBe(true);
    expect(one(4096 - 100, 101, small)).toMatchObject({ ok: false, reason: "xfer-range-outside-buffer" });
  });

  it("offset == buf_size with len 0 accepted, offset past the end rejected", () => {
    expect(one(size, 0).ok).toBe(true);
    expect(one(size + 1, 0)).toMatchObject({ ok: false, reason: "xfer-range-outside-buffer" });
  });

  it("huge values cannot wrap around the check", () => {
    expect(one(0xffffffff, 0xffffffff)).toMatchObject({ ok: false, reason: "xfer-range-outside-buffer" });
    expect(one(16, 0xfffffff0)).toMatchObject({ ok: false, reason: "xfer-range-outside-buffer" });
  });

  it("len == recv_section_size accepted, one more rejected", () => {
    expect(one(0, 1728).ok).toBe(true);
    expect(one(0, 1729)).toMatchObject({ ok: false, reason: "xfer-range-exceeds-section" });
  });

  it("a bad range does not stop the others", () => {
    const r = validateXferPagePacket(
      encodeXferPagePacket({
        transactionId: 9n,
        ranges: [
          { offset: 0, length: 10 },
          { offset: size, length: 1 },
          { offset: 1728, length: 20 },
        ],
      }),
      SIZES,
    );
    expect(r.ok && r.value.status).toBe(NVSP_STATUS.FAIL);
    expect(r.ok && r.value.ranges.map((x) => x.ok)).toEqual([true, false, true]);
  });
});

describe("property: arbitrary host packets", () => {
  const sizesArb = fc.record({
    recvBufSize: fc.oneof(fc.constant(16 * 1024 * 1024), fc.integer({ min: 0, max: 1 << 20 })),
    recvSectionSize: fc.integer({ min: 68, max: 1 << 16 }),
  });

  const check = (pkt: Uint8Array, sizes: { recvBufSize: number; recvSectionSize: number }): void => {
    const r = validateXferPagePacket(pkt, sizes);
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(NetvscError);
      return;
    }
    for (const range of r.value.ranges) {
      if (!range.ok) continue;
      expect(range.offset + range.length).toBeLessThanOrEqual(sizes.recvBufSize);
      expect(range.length).toBeLessThanOrEqual(sizes.recvSectionSize);
    }
    expect(r.value.status).toBe(r.value.ranges.every((x) => x.ok) ? NVSP_STATUS.SUCCESS : NVSP_STATUS.FAIL);
  };

  test.prop([fc.uint8Array({ maxLength: 200 }), sizesArb])(
    "raw bytes never throw or escape the buffer",
    check,
  );

  test.prop([
    fc.array(
      fc.record({
        offset: fc.oneof(fc.nat(), fc.constant(0xffffffff)),
        length: fc.oneof(fc.nat(), fc.nat(4000)),
      }),
      {
        maxLength: 40,
      },
    ),
    sizesArb,
    fc.nat(0xffff),
    fc.array(fc.tuple(fc.nat(71), fc.nat(255)), { maxLength: 6 }),
  ])(
    "well-formed packets with hostile ranges and flipped bytes never escape the buffer",
    (rs, sizes, pageset, flips) => {
      const pkt = encodeXferPagePacket({
        transactionId: 5n,
        ranges: rs,
        pagesetId: flips.length % 2 ? pageset : 0xcafe,
      });
      for (const [at, v] of flips) if (at < pkt.length) pkt[at] = v;
      check(pkt, sizes);
    },
  );
});

describe("scanXferPagePacket: one scan reused from packet to packet", () => {
  const scanInto = (scan: XferPageScan, pkt: Uint8Array): string | null =>
    scanXferPagePacket(pkt, SIZES.recvBufSize, SIZES.recvSectionSize, 24, scan);

  it("holds the latest packet's ranges, status and trans id, growing for many ranges", () => {
    const scan = new XferPageScan();
    const many = Array.from({ length: 9 }, (_, i) => ({ offset: i * 100, length: 60 }));
    const big = encodeXferPagePacket({
      transactionId: 2n ** 60n,
      ranges: [...many, { offset: 16_777_000, length: 1500 }],
    });
    expect(scanInto(scan, big)).toBeNull();
    expect(scan.count).toBe(10);
    expect(scan.transactionId).toBe(2n ** 60n); // above 2^53: the exact bigint
    expect(scan.status).toBe(NVSP_STATUS.FAIL);
    expect(Array.from({ length: 10 }, (_, i) => scan.rangeReason(i))).toEqual([
      ...Array(9).fill(null),
      "xfer-range-outside-buffer",
    ]);

    const small = encodeXferPagePacket({ transactionId: 7n, ranges: [{ offset: 64, length: 2000 }] });
    expect(scanInto(scan, small)).toBeNull();
    expect(scan.count).toBe(1);
    expect(scan.transactionId).toBe(7); // below 2^53: a number
    expect([scan.offsets[0], scan.lengths[0], scan.rangeReason(0)]).toEqual([
      64,
      2000,
      "xfer-range-exceeds-section",
    ]);
    expect(scan.status).toBe(NVSP_STATUS.FAIL);

    const good = encodeXferPagePacket({ transactionId: 8n, ranges: [{ offset: 0, length: 60 }] });
    expect(scanInto(scan, good)).toBeNull();
    expect([scan.count, scan.status, scan.rangeReason(0)]).toEqual([1, NVSP_STATUS.SUCCESS, null]);
  });

  it("returns the packet-level reason validateXferPagePacket reports, with the kernel's log line there", () => {
    const scan = new XferPageScan();
    const wrongSet = encodeXferPagePacket({
      transactionId: 1n,
      ranges: [{ offset: 0, length: 60 }],
      pagesetId: 1,
    });
    expect(scanInto(scan, wrongSet)).toBe("xfer-pageset-id-invalid");
    const v = validateXferPagePacket(wrongSet, SIZES);
    expect(v.ok ? null : [v.error.reason, v.error.message]).toEqual([
      "xfer-pageset-id-invalid",
      "EINVAL xfer-pageset-id-invalid: Invalid xfer page set id - expecting cafe got 1",
    ]);
    expect(scanInto(scan, new Uint8Array(8))).toBe("xfer-descriptor-invalid");
  });
});
