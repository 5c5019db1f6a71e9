import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { VmbusError, VmbusInvariantError } from "../errors.js";
import { hex } from "../testing/rng.js";
import {
  decodeGpaDirectPacket,
  decodeTransferPagePacket,
  encodeCompletionPacket,
  encodeMpbDescriptor,
  encodePageBufferDescriptor,
  encodeTransferPagePacket,
  GpaDirectReader,
  type HvPageBuffer,
  MAX_PAGE_BUFFER_PACKET,
  mpbRangesFromPageBuffers,
  PacketDescriptorReader,
  readPacketDescriptor,
  transferPagePacketSize,
  VM_PKT,
  VMBUS_RQST_ERROR,
  writeTransferPagePacket,
  writeTransferPageRange,
} from "./packet.js";

describe("packet wire formats", () => {
  it("lays out a completion (vmpacket_descriptor + payload + pad)", () => {
    const p = encodeCompletionPacket(0x0102030405060708n, new Uint8Array([0xaa, 0xbb, 0xcc]));
    expect(hex(p)).toBe(
      ["0b 00", "02 00", "03 00", "00 00", "08 07 06 05 04 03 02 01", "aa bb cc 00 00 00 00 00"].join(" "),
    );
    expect(readPacketDescriptor(p)).toEqual({
      type: 11,
      offset8: 2,
      len8: 3,
      flags: 0,
      transId: 0x0102030405060708n,
    });
  });

  it("builds the page-buffer descriptor and refuses more than 32 entries", () => {
    expect(MAX_PAGE_BUFFER_PACKET).toBe(536);
    const pbs: HvPageBuffer[] = [
      { len: 100, offset: 8, pfn: 0x1234 },
      { len: 4096, offset: 0, pfn: 0x1_0000_0001 },
    ];
    const r = encodePageBufferDescriptor(pbs, 20, 77n);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const d = r.value;
    expect(d.length).toBe(24 + 32);
    expect(hex(d)).toBe(
      [
        "09 00", // GPA_DIRECT
        "07 00", // dataoffset8 = 56/8
        "0a 00", // length8 = ALIGN(56 + 20, 8)/8 = 10
        "01 00", // COMPLETION_REQUESTED
        "4d 00 00 00 00 00 00 00", // 77
        "00 00 00 00", // reserved
        "02 00 00 00", // rangecount
        "64 00 00 00 08 00 00 00 34 12 00 00 00 00 00 00",
        "00 10 00 00 00 00 00 00 01 00 00 00 01 00 00 00",
      ].join(" "),
    );
    const tooMany = encodePageBufferDescriptor(
      Array.from({ length: 33 }, () => ({ len: 1, offset: 0, pfn: 1 })),
      0,
      0n,
    );
    expect(tooMany).toMatchObject({ ok: false, error: { code: "EINVAL" } });
  });

  it("merges physically contiguous fragments into one mpb range (2025 rule)", () => {
    // An RNDIS header crossing a page boundary, then a fragment elsewhere.
    const ranges = mpbRangesFromPageBuffers([
      { pfn: 10, offset: 4000, len: 96 },
      { pfn: 11, offset: 0, len: 200 },
      { pfn: 50, offset: 0, len: 100 },
      { pfn: 50, offset: 100, len: 4096 },
    ]);
    expect(ranges).toEqual([
      { offset: 4000, len: 296, pfns: [10, 11] },
      { offset: 0, len: 4196, pfns: [50, 51] },
    ]);
    const desc = encodeMpbDescriptor(ranges, 0);
    expect(desc.length).toBe(24 + (8 + 16) + (8 + 16));
    const d = readPacketDescriptor(desc);
    expect(d).toMatchObject({
      type: VM_PKT.DATA_USING_GPA_DIRECT,
      offset8: 9,
      len8: 9,
      flags: 1,
      transId: VMBUS_RQST_ERROR,
    });
    const parsed = decodeGpaDirectPacket(desc);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.value.ranges.map((r) => [r.offset, r.len, Array.from(r.pfns)])).toEqual([
        [4000, 296, [10, 11]],
        [0, 4196, [50, 51]],
      ]);
    }
  });

  it("rejects malformed GPA-direct packets", () => {
    const desc = encodeMpbDescriptor([{ len: 10, offset: 0, pfns: [1] }], 0);
    const zero = desc.slice();
    new DataView(zero.buffer).setUint32(20, 0, true);
    expect(decodeGpaDirectPacket(zero)).toMatchObject({ ok: false, error: { reason: "zero-range-count" } });
    const many = desc.slice();
    new DataView(many.buffer).setUint32(20, 5, true);
    expect(decodeGpaDirectPacket(many)).toMatchObject({ ok: false, error: { reason: "ranges-overflow" } });
    expect(decodeGpaDirectPacket(desc.subarray(0, 20))).toMatchObject({
      ok: false,
      error: { reason: "short-packet" },
    });
  });

  it("reads GPA-direct packets again and again into the same objects, with decodeGpaDirectPacket's results", () => {
    const reader = new GpaDirectReader();
    const shapes = [
      [{ len: 296, offset: 4000, pfns: [10, 11] }],
      [{ len: 296, offset: 4000, pfns: [20, 21] }],
      [
        { len: 10, offset: 0, pfns: [5] },
        { len: 4196, offset: 0, pfns: [50, 51] },
      ],
    ];
    const seen: unknown[] = [];
    for (const ranges of shapes) {
      const pkt = encodeMpbDescriptor(ranges, 0);
      const fresh = decodeGpaDirectPacket(pkt);
      const kept = reader.read(pkt);
      if (!(fresh.ok && kept.ok)) throw new Error("expected both to parse");
      const shape = (p: typeof kept.value) => ({
        type: p.desc.type,
        transId: p.desc.transId,
        ranges: p.ranges.map((r) => [r.len, r.offset, [...r.pfns]]),
        data: [...p.data],
      });
      expect(shape(kept.value)).toEqual(shape(fresh.value));
      expect(kept.value.ranges.map((r) => [r.len, r.offset, [...r.pfns]])).toEqual(
        ranges.map((r) => [r.len, r.offset, r.pfns]),
      );
      seen.push(kept.value.ranges[0]);
    }
    // the first range's slot is the same object every time (refilled, not made again)
    expect(seen[1]).toBe(seen[0]);
    expect(seen[2]).toBe(seen[0]);
    // and a malformed packet is the same typed rejection as decodeGpaDirectPacket's
    const bad = encodeMpbDescriptor([{ len: 10, offset: 0, pfns: [1] }], 0);
    new DataView(bad.buffer).setUint32(20, 5, true);
    expect(reader.read(bad)).toMatchObject({ ok: false, error: { reason: "ranges-overflow" } });
  });

  it("lays out a transfer-page packet and validates its range count", () => {
    const p = encodeTransferPagePacket({
      pagesetId: 0xcafe,
      senderOwns: false,
      ranges: [
        { byteCount: 1514, byteOffset: 0 },
        { byteCount: 60, byteOffset: 4096 },
      ],
      transId: 5n,
      flags: 1,
    });
    expect(hex(p)).toBe(
      [
        "07 00 05 00 05 00 01 00", // XFER_PAGES, offset8 = len8 = 40/8
        "05 00 00 00 00 00 00 00",
        "fe ca 00 00", // pageset id, sender_owns, reserved
        "02 00 00 00", // range_cnt
        "ea 05 00 00 00 00 00 00",
        "3c 00 00 00 00 10 00 00",
      ].join(" "),
    );
    const d = decodeTransferPagePacket(p);
    expect(d.ok && d.value.ranges).toEqual([
      { byteCount: 1514, byteOffset: 0 },
      { byteCount: 60, byteOffset: 4096 },
    ]);
    const lie = p.slice();
    new DataView(lie.buffer).setUint32(20, 3, true);
    expect(decodeTransferPagePacket(lie)).toMatchObject({ ok: false, error: { reason: "ranges-overflow" } });
  });

  it("writeTransferPagePacket and its ranges give encodeTransferPagePacket's bytes, over a dirty buffer", () => {
    const payload = new Uint8Array([1, 2, 3, 4, 5]);
    const want = encodeTransferPagePacket({
      pagesetId: 0xcafe,
      senderOwns: false,
      ranges: [{ byteCount: 60, byteOffset: 4096 }],
      transId: 2n ** 53n - 1n,
      flags: 1,
      payload,
    });
    const out = new Uint8Array(transferPagePacketSize(1, payload.length)).fill(0xee);
    writeTransferPagePacket(out, 0xcafe, false, 1, 2 ** 53 - 1, 1, payload);
    writeTransferPageRange(out, 0, 60, 4096);
    expect(out).toEqual(want);
    writeTransferPagePacket(out, 0xcafe, false, 1, 2n ** 53n - 1n, 1, payload);
    writeTransferPageRange(out, 0, 60, 4096);
    expect(out).toEqual(want);
    expect(() =>
      writeTransferPagePacket(new Uint8Array(out.length + 8), 0xcafe, false, 1, 1, 1, payload),
    ).toThrow(VmbusInvariantError);
  });

  it("PacketDescriptorReader reads readPacketDescriptor's fields in place, the trans_id as a number too", () => {
    const reader = new PacketDescriptorReader();
    const small = encodeCompletionPacket(0x1234_5678_9an, new Uint8Array(8));
    expect(reader.read(small)).toBe(reader);
    const want = readPacketDescriptor(small);
    expect([reader.type, reader.offset8, reader.len8, reader.flags, reader.transId]).toEqual([
      want.type,
      want.offset8,
      want.len8,
      want.flags,
      want.transId,
    ]);
    expect(reader.transIdNumber).toBe(0x1234_5678_9a);
    // 2^53 and more: no number, the bigint still exact; the descriptor may sit at an offset.
    const big = new Uint8Array(8 + 24);
    big.set(encodeCompletionPacket(VMBUS_RQST_ERROR, new Uint8Array(8)), 8);
    reader.read(big, 8);
    expect([reader.transIdNumber, reader.transId, reader.type]).toEqual([-1, VMBUS_RQST_ERROR, VM_PKT.COMP]);
    expect(() => reader.read(new Uint8Array(15))).toThrow(VmbusInvariantError);
  });

  test.prop([fc.uint8Array({ maxLength: 600 })], { numRuns: 2000 })(
    "packet decoders never throw on host bytes",
    (b) => {
      for (const r of [decodeGpaDirectPacket(b), decodeTransferPagePacket(b)]) {
        if (!r.ok) expect(r.error).toBeInstanceOf(VmbusError);
      }
    },
  );
});
