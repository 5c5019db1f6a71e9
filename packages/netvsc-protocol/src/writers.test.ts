// The allocation-free writers and checkers give exactly what the allocating encoders and decoders give.
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { encodeLabFrame, labFrameSeq, verifyLabFrame } from "./lab-frame.js";
import {
  decodeNvspMessage,
  encodeNvspMessage,
  encodeNvspRecvCompletion,
  NVSP_MSG_TYPE,
  nvspFieldLayout,
  readNvspRecvCompletion,
  writeNvspRecvCompletion,
  writeNvspRndisPacket,
} from "./nvsp.js";
import {
  checkRndisPacket,
  decodeRndisMessage,
  encodeRndisPacket,
  encodeRndisQuery,
  RNDIS_PACKET_AT,
  rndisFieldLayout,
  rndisPacketField,
  writeRndisDataHeader,
} from "./rndis.js";
import { encodeXferPagePacket, writeXferPagePacket, xferPagePacketSize } from "./xfer-page.js";

describe("writers into a reused buffer", () => {
  it("writeNvspRndisPacket writes encodeNvspMessage's bytes and clears what was there", () => {
    const buf = new Uint8Array(40).fill(0xee);
    const got = writeNvspRndisPacket(buf, 1, 7, 1544);
    const want = encodeNvspMessage({
      kind: "send-rndis-pkt",
      channelType: 1,
      sendBufSectionIndex: 7,
      sendBufSectionSize: 1544,
    });
    expect(got).toEqual(want);
    expect(() => writeNvspRndisPacket(new Uint8Array(39), 0, 0, 0)).toThrow(RangeError);
    expect(() => writeNvspRndisPacket(buf, 0, -1, 0)).toThrow(RangeError);
  });

  it("writeNvspRecvCompletion writes encodeNvspRecvCompletion's 8 bytes", () => {
    expect(writeNvspRecvCompletion(new Uint8Array(8), 2)).toEqual(encodeNvspRecvCompletion(2));
  });

  it("writeRndisDataHeader writes encodeRndisPacket's header (per_pkt_info_offset as asked)", () => {
    const frame = new Uint8Array(60).fill(5);
    const whole = encodeRndisPacket({ data: frame });
    const buf = new Uint8Array(44 + 60).fill(0xaa);
    writeRndisDataHeader(buf, 0, 60);
    buf.set(frame, 44);
    expect(buf).toEqual(whole);
    writeRndisDataHeader(buf, 0, 60, 36);
    expect(rndisPacketField(buf, "perPktInfoOffset")).toBe(36);
    expect(RNDIS_PACKET_AT.perPktInfoOffset).toBe(28);
  });

  it("encodeXferPagePacket into a dirty buffer gives the fresh packet's bytes", () => {
    const input = { transactionId: 9n, ranges: [{ offset: 1728, length: 108 }] };
    const fresh = encodeXferPagePacket(input);
    const into = new Uint8Array(256).fill(0xff);
    const got = encodeXferPagePacket({ ...input, into });
    expect(got).toEqual(fresh);
    expect(got.buffer).toBe(into.buffer);
    // too small: a buffer of its own
    expect(encodeXferPagePacket({ ...input, into: new Uint8Array(8) }).buffer).not.toBe(into.buffer);
  });

  it("writeXferPagePacket writes encodeXferPagePacket's bytes, a number trans_id as its u64", () => {
    const nvsp = writeNvspRndisPacket(new Uint8Array(40), 1, 0xffff_ffff, 0).subarray(0, 28);
    const ranges = [
      { offset: 0, length: 60 },
      { offset: 1728, length: 1514 },
      { offset: 3456, length: 9 },
    ];
    const want = encodeXferPagePacket({ transactionId: 2n ** 52n + 5n, ranges: ranges.slice(0, 2), nvsp });
    const out = new Uint8Array(xferPagePacketSize(2, nvsp.length)).fill(0xee);
    // The first two of a longer list, and the id as a number: the same bytes.
    writeXferPagePacket(out, { transactionId: 2 ** 52 + 5, ranges, rangeCount: 2, nvsp });
    expect(out).toEqual(want);
    writeXferPagePacket(out, { transactionId: 2n ** 52n + 5n, ranges, rangeCount: 2, nvsp });
    expect(out).toEqual(want);
    expect(xferPagePacketSize(2, 28)).toBe(72);
  });

  it("writeXferPagePacket refuses what its fields cannot hold and a buffer of another length", () => {
    const ranges = [{ offset: 0, length: 60 }];
    const out = new Uint8Array(xferPagePacketSize(1, 40));
    expect(() => writeXferPagePacket(new Uint8Array(out.length + 8), { transactionId: 1, ranges })).toThrow(
      RangeError,
    );
    expect(() => writeXferPagePacket(out, { transactionId: 2 ** 53, ranges })).toThrow(RangeError);
    expect(() => writeXferPagePacket(out, { transactionId: -1, ranges })).toThrow(RangeError);
    expect(() => writeXferPagePacket(out, { transactionId: 2n ** 64n, ranges })).toThrow(RangeError);
    expect(() => writeXferPagePacket(out, { transactionId: 1, ranges: [{ offset: -1, length: 1 }] })).toThrow(
      RangeError,
    );
    expect(() => writeXferPagePacket(out, { transactionId: 1, ranges, rangeCount: 2 })).toThrow(RangeError);
    expect(() => writeXferPagePacket(out, { transactionId: 1, ranges, pagesetId: 0x1_0000 })).toThrow(
      RangeError,
    );
    expect(() => xferPagePacketSize(0x1_0000, 40)).toThrow(RangeError);
  });
});

describe("checkers without a result object", () => {
  it("checkRndisPacket accepts what decodeRndisMessage decodes and rejects with its reasons", () => {
    const msg = encodeRndisPacket({ data: new Uint8Array(64) });
    expect(checkRndisPacket(msg)).toBeNull();
    const bad = msg.slice();
    bad[PKT_LEN_AT] = 0xff; // data_len past the buffer
    const decoded = decodeRndisMessage(bad);
    expect(decoded.ok).toBe(false);
    expect(checkRndisPacket(bad)).toBe(decoded.ok ? null : decoded.error.reason);
    expect(checkRndisPacket(msg.subarray(0, 4))).toBe("rndis-buflen-too-small");
    expect(checkRndisPacket(msg.subarray(0, 40))).toBe("rndis-msg-len-invalid");
  });

  it("labFrameSeq is verifyLabFrame's verdict: the seq, or -1 for any failure", () => {
    const f = encodeLabFrame({ seq: 41, seed: 3, length: 300 });
    expect(labFrameSeq(f)).toBe(41);
    expect(verifyLabFrame(f)).toEqual({ ok: true, seq: 41 });
    f[200]! ^= 1;
    expect(labFrameSeq(f)).toBe(-1);
    expect(verifyLabFrame(f)).toMatchObject({ ok: false, reason: "frame-checksum-mismatch" });
    expect(labFrameSeq(f.subarray(0, 10))).toBe(-1);
  });

  it("readNvspRecvCompletion reads a guest's receive completion's status", () => {
    expect(readNvspRecvCompletion(writeNvspRecvCompletion(new Uint8Array(8), 2))).toBe(2);
    expect(readNvspRecvCompletion(encodeNvspRecvCompletion(0xffff_ffff))).toBe(0xffff_ffff);
    expect(readNvspRecvCompletion(encodeNvspRecvCompletion(1).subarray(0, 7))).toBe(-1);
    expect(readNvspRecvCompletion(new Uint8Array(2))).toBe(-1);
    const other = encodeNvspMessage({ kind: "init", minProtocolVersion: 2, maxProtocolVersion: 2 });
    expect(readNvspRecvCompletion(other)).toBe(-1);
  });

  // Whatever the guest writes: a status exactly when decodeNvspMessage decodes a SEND_RNDIS_PKT_COMPLETE.
  test.prop([
    fc.uint8Array({ maxLength: 48 }),
    fc.constantFrom(
      NVSP_MSG_TYPE.SEND_RNDIS_PKT_COMPLETE,
      NVSP_MSG_TYPE.SEND_RNDIS_PKT,
      NVSP_MSG_TYPE.SUBCHANNEL,
    ),
  ])("readNvspRecvCompletion gives decodeNvspMessage's verdict", (raw, type) => {
    const bytes = raw.slice();
    if (bytes.length >= 4 && bytes[0]! % 4 !== 0) new DataView(bytes.buffer).setUint32(0, type, true);
    const d = decodeNvspMessage(bytes, "guest-to-host");
    const want = d.ok && d.value.kind === "send-rndis-pkt-complete" ? (d.value.status ?? -2) : -1;
    expect(readNvspRecvCompletion(bytes)).toBe(want);
  });

  it("decodeNvspMessage of a written SEND_RNDIS_PKT reads its fields", () => {
    const r = decodeNvspMessage(writeNvspRndisPacket(new Uint8Array(40), 0, 0xffff_ffff, 0), "guest-to-host");
    expect(r).toEqual({
      ok: true,
      value: {
        kind: "send-rndis-pkt",
        channelType: 0,
        sendBufSectionIndex: 0xffff_ffff,
        sendBufSectionSize: 0,
      },
    });
  });
});

const PKT_LEN_AT = RNDIS_PACKET_AT.dataLen;

describe("field layouts for tools", () => {
  const le = (b: Uint8Array, at: number, width: number): number => {
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + b[at + i]!;
    return v;
  };

  it("nvspFieldLayout places every decoded field where the encoder wrote it", () => {
    const msg = {
      kind: "send-recv-buf-complete",
      status: 1,
      numSections: 1,
      section: { offset: 0, subAllocSize: 1728, numSubAllocs: 9709, endOffset: 9709 * 1728 },
    } as const;
    const bytes = encodeNvspMessage(msg);
    const places = nvspFieldLayout("send-recv-buf-complete");
    expect(Object.keys(places)).toHaveLength(6);
    expect(le(bytes, ...places["section.endOffset"]!)).toBe(9709 * 1728);
    expect(le(bytes, ...places.status!)).toBe(1);
    expect(nvspFieldLayout("revoke-recv-buf")).toEqual({ id: [4, 2] });
  });

  it("rndisFieldLayout places msg_len and each field of the struct", () => {
    const bytes = encodeRndisQuery({ requestId: 7, oid: 0x10202 });
    const places = rndisFieldLayout("query");
    expect(le(bytes, ...places.msgLen!)).toBe(28);
    expect(le(bytes, ...places.requestId!)).toBe(7);
    expect(le(bytes, ...places.oid!)).toBe(0x10202);
    expect(le(bytes, ...places.infoBufOffset!)).toBe(20);
    expect(rndisFieldLayout("unknown")).toEqual({ msgLen: [4, 4] });
  });
});
