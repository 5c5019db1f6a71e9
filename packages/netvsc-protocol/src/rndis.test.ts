import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { NetvscError } from "./errors.js";
import {
  decodeRndisMessage,
  encodeRndisHalt,
  encodeRndisIndicateStatus,
  encodeRndisInit,
  encodeRndisInitComplete,
  encodeRndisPacket,
  encodeRndisQuery,
  encodeRndisQueryComplete,
  encodeRndisSet,
  encodeRndisSetComplete,
  findPpi,
  findRndisPpi,
  NDIS_PPI_TYPE,
  parseRndisFromHost,
  RNDIS_MAX_RESPONSE_LEN,
  RNDIS_MSG_TYPE,
  RNDIS_PKTINFO_ID,
  RNDIS_PPI_LOOKUPS,
  RNDIS_STATUS,
  type RndisMessage,
  RndisPpiLookup,
  rndisPacketHeaderSize,
  rndisPpiAreaIssue,
} from "./rndis.js";

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const zeros = (n: number): string => "00".repeat(n);
const le = (v: number): string => hex(new Uint8Array(new Uint32Array([v]).buffer));

function decoded(buf: Uint8Array): RndisMessage {
  const r = decodeRndisMessage(buf);
  if (!r.ok) throw r.error;
  return r.value;
}
function reason(buf: Uint8Array): string | null {
  const r = decodeRndisMessage(buf);
  return r.ok ? null : r.error.reason;
}
function set32(buf: Uint8Array, off: number, v: number): Uint8Array {
  new DataView(buf.buffer, buf.byteOffset).setUint32(off, v, true);
  return buf;
}

describe("RNDIS encoders match hand-computed bytes", () => {
  it("INIT: type 2, len 24, request id, version 1.0, max xfer 0x4000", () => {
    expect(hex(encodeRndisInit({ requestId: 1 }))).toBe(
      `${le(2)}${le(24)}${le(1)}${le(1)}${le(0)}${le(0x4000)}`,
    );
  });

  it("PACKET without PPIs: data right after the 36-byte rndis_packet (data_offset 36)", () => {
    const b = encodeRndisPacket({ data: new Uint8Array([0xaa, 0xbb, 0xcc]) });
    expect(b.length).toBe(47);
    expect(hex(b)).toBe(`${le(1)}${le(47)}${le(36)}${le(3)}${zeros(28)}aabbcc`);
  });

  it("PACKET with a VLAN PPI: PPI at offset 36, size 16, ppi_offset 12; data_offset 52", () => {
    const b = encodeRndisPacket({
      data: new Uint8Array([1, 2]),
      ppis: [{ type: NDIS_PPI_TYPE.IEEE_8021Q, data: new Uint8Array([5, 0, 0, 0]) }],
    });
    expect(rndisPacketHeaderSize([{ type: 6, data: new Uint8Array(4) }])).toBe(60);
    expect(hex(b)).toBe(
      `${le(1)}${le(62)}${le(52)}${le(2)}${zeros(12)}${le(36)}${le(16)}${zeros(8)}` +
        `${le(16)}${le(6)}${le(12)}05000000` +
        "0102",
    );
  });

  it("internal PPIs set the top bit of the type word", () => {
    const b = encodeRndisPacket({
      data: new Uint8Array(0),
      ppis: [{ type: RNDIS_PKTINFO_ID, internal: true, data: new Uint8Array(4) }],
    });
    expect(new DataView(b.buffer).getUint32(44 + 4, true)).toBe(0x80000001);
  });

  it("QUERY: info_buf_offset 20 even with no buffer", () => {
    expect(hex(encodeRndisQuery({ requestId: 9, oid: 0x01010101 }))).toBe(
      `${le(4)}${le(28)}${le(9)}${le(0x01010101)}${le(0)}${le(20)}${le(0)}`,
    );
  });

  it("SET carries its information buffer after the 20-byte struct", () => {
    const b = encodeRndisSet({ requestId: 2, oid: 0x0001010e, info: new Uint8Array([0x0b, 0, 0, 0]) });
    expect(hex(b)).toBe(`${le(5)}${le(32)}${le(2)}${le(0x0001010e)}${le(4)}${le(20)}${le(0)}0b000000`);
  });
});

describe("RNDIS decode(encode(x))", () => {
  it("PACKET with PPIs", () => {
    const vlan = new Uint8Array([7, 0, 0, 0]);
    const hash = new Uint8Array([1, 2, 3, 4]);
    const data = new Uint8Array(100).map((_, i) => i);
    const m = decoded(
      encodeRndisPacket({
        data,
        ppis: [
          { type: NDIS_PPI_TYPE.IEEE_8021Q, data: vlan },
          { type: NDIS_PPI_TYPE.NBL_HASH_VALUE, data: hash },
        ],
      }),
    );
    expect(m.kind).toBe("packet");
    if (m.kind !== "packet") return;
    expect(m.dataLen).toBe(100);
    expect(Array.from(m.data)).toEqual(Array.from(data));
    expect(m.ppiIssue).toBeNull();
    expect(findPpi(m.ppis, NDIS_PPI_TYPE.IEEE_8021Q)?.data).toEqual(vlan);
    expect(findPpi(m.ppis, NDIS_PPI_TYPE.NBL_HASH_VALUE)?.data).toEqual(hash);
    expect(findPpi(m.ppis, NDIS_PPI_TYPE.TCPIP_CHKSUM)).toBeUndefined();
  });

  it("INIT, QUERY, SET, HALT (guest requests, as the host parses them)", () => {
    expect(decoded(encodeRndisInit({ requestId: 5, maxTransferSize: 0x1000 }))).toEqual({
      kind: "init",
      msgLen: 24,
      requestId: 5,
      majorVersion: 1,
      minorVersion: 0,
      maxTransferSize: 0x1000,
    });
    const q = decoded(encodeRndisQuery({ requestId: 3, oid: 0x00010202, info: new Uint8Array([9, 9]) }));
    expect(q).toMatchObject({
      kind: "query",
      requestId: 3,
      oid: 0x00010202,
      infoBufLen: 2,
      infoBufOffset: 20,
    });
    expect(q.kind === "query" && Array.from(q.info ?? [])).toEqual([9, 9]);
    const s = decoded(encodeRndisSet({ requestId: 4, oid: 1, info: new Uint8Array([1, 2, 3, 4]) }));
    expect(s).toMatchObject({ kind: "set", requestId: 4, oid: 1, infoBufLen: 4 });
    expect(decoded(encodeRndisHalt({ requestId: 8 }))).toEqual({ kind: "halt", msgLen: 12, requestId: 8 });
  });

  it("INIT_CMPLT, QUERY_CMPLT, SET_CMPLT, INDICATE_STATUS (host messages, as the guest parses them)", () => {
    const ic = {
      requestId: 1,
      status: 0,
      maxPacketsPerMessage: 8,
      maxTransferSize: 0x4000,
      packetAlignmentFactor: 3,
    };
    expect(decoded(encodeRndisInitComplete(ic))).toEqual({
      kind: "init-complete",
      msgLen: 52,
      ...ic,
      majorVersion: 1,
      minorVersion: 0,
      deviceFlags: 0,
      medium: 0,
      afListOffset: 0,
      afListSize: 0,
      responseOverflow: false,
    });
    const qc = decoded(
      encodeRndisQueryComplete({ requestId: 2, status: 0, info: new Uint8Array([1, 0, 0, 0]) }),
    );
    expect(qc).toMatchObject({ kind: "query-complete", requestId: 2, infoBufLen: 4, infoBufOffset: 16 });
    expect(qc.kind === "query-complete" && Array.from(qc.info ?? [])).toEqual([1, 0, 0, 0]);
    expect(decoded(encodeRndisSetComplete({ requestId: 3, status: RNDIS_STATUS.FAILURE }))).toEqual({
      kind: "set-complete",
      msgLen: 16,
      requestId: 3,
      status: RNDIS_STATUS.FAILURE,
      responseOverflow: false,
    });
    const ind = decoded(
      encodeRndisIndicateStatus({ status: RNDIS_STATUS.LINK_SPEED_CHANGE, statusBuffer: new Uint8Array(4) }),
    );
    expect(ind).toMatchObject({ kind: "indicate-status", statusBufLen: 4, statusBufOffset: 12 });
    expect(ind.kind === "indicate-status" && ind.statusBuffer?.length).toBe(4);
  });
});

describe("header rules (rndis_filter_receive): 8 <= msg_len <= buflen", () => {
  const msg = (): Uint8Array => encodeRndisSetComplete({ requestId: 1, status: 0 });

  it("buflen below 8 is rejected before msg_len is read", () => {
    expect(reason(new Uint8Array(7))).toBe("rndis-buflen-too-small");
  });

  it("msg_len 7 rejected, msg_len == buflen accepted, buflen + 1 rejected", () => {
    expect(reason(set32(msg(), 4, 7))).toBe("rndis-msg-len-invalid");
    expect(reason(msg())).toBeNull();
    expect(reason(set32(msg(), 4, 17))).toBe("rndis-msg-len-invalid");
  });

  it("trailing bytes after msg_len are allowed (buflen may exceed msg_len)", () => {
    const b = new Uint8Array(40);
    b.set(msg());
    expect(reason(b)).toBeNull();
  });

  it("guest request types and unknown types are unhandled when they come from the host", () => {
    expect(parseRndisFromHost(encodeRndisInit({ requestId: 1 }))).toMatchObject({
      ok: false,
      error: { reason: "rndis-unhandled-type" },
    });
    const unknown = set32(set32(new Uint8Array(8), 0, 0x1234), 4, 8);
    expect(decodeRndisMessage(unknown)).toEqual({
      ok: true,
      value: { kind: "unknown", msgType: 0x1234, msgLen: 8 },
    });
    expect(parseRndisFromHost(unknown)).toMatchObject({
      ok: false,
      error: { reason: "rndis-unhandled-type" },
    });
  });
});

describe("PACKET bounds (rndis_filter_receive_data), against the range length", () => {
  // 44-byte header + 20 bytes of room: rpkt_len = 56.
  const pkt = (dataOffset: number, dataLen: number, buflen = 64): Uint8Array => {
    const b = new Uint8Array(buflen);
    set32(b, 0, RNDIS_MSG_TYPE.PACKET);
    set32(b, 4, buflen);
    set32(b, 8, dataOffset);
    return set32(b, 12, dataLen);
  };

  it("buflen 43 is too small for the rndis_packet, 44 is enough", () => {
    expect(reason(pkt(0, 0, 43))).toBe("rndis-packet-too-small");
    expect(reason(pkt(35, 1, 44))).toBeNull();
    // data_offset must be strictly inside: an empty frame right after the header is refused.
    expect(reason(pkt(36, 0, 44))).toBe("rndis-data-offset-invalid");
  });

  it("data_offset must be < rpkt_len (56)", () => {
    expect(reason(pkt(55, 1))).toBeNull();
    expect(reason(pkt(56, 0))).toBe("rndis-data-offset-invalid");
    expect(reason(pkt(0xffffffff, 0))).toBe("rndis-data-offset-invalid");
  });

  it("data_len == rpkt_len - data_offset accepted, one more rejected; no wrap-around", () => {
    expect(reason(pkt(36, 20))).toBeNull();
    expect(reason(pkt(36, 21))).toBe("rndis-data-overflow");
    expect(reason(pkt(36, 0xffffffff))).toBe("rndis-data-overflow");
  });

  it("data_offset counts from byte 8 (start of rndis_packet)", () => {
    const m = decoded(pkt(40, 4));
    expect(m.kind === "packet" && [m.dataStart, m.data.length]).toEqual([48, 4]);
  });
});

describe("PPI checks (rndis_get_ppi)", () => {
  const withPpi = (ppiOffset: number, ppiLen: number, entries: readonly number[][]): Uint8Array => {
    const b = new Uint8Array(128);
    set32(b, 0, RNDIS_MSG_TYPE.PACKET);
    set32(b, 4, 128);
    set32(b, 8, 100); // data_offset
    set32(b, 12, 0);
    set32(b, 28, ppiOffset);
    set32(b, 32, ppiLen);
    let pos = 8 + 36;
    for (const [size, type, off] of entries) {
      set32(b, pos, size!);
      set32(b, pos + 4, type!);
      set32(b, pos + 8, off!);
      pos += 16;
    }
    return b;
  };
  const issue = (b: Uint8Array): string | null => {
    const m = decoded(b);
    return m.kind === "packet" ? (m.ppiIssue?.reason ?? null) : "not-a-packet";
  };

  it("offset 0 means no PPIs", () => {
    expect(issue(withPpi(0, 16, []))).toBeNull();
  });

  it("offset below 36 or beyond rpkt_len: PPIs ignored, packet kept", () => {
    expect(issue(withPpi(35, 16, [[16, 6, 12]]))).toBe("ppi-offset-invalid");
    expect(issue(withPpi(121, 0, []))).toBe("ppi-offset-invalid");
    expect(issue(withPpi(36, 16, [[16, 6, 12]]))).toBeNull();
  });

  it("length below 12 or past rpkt_len: PPIs ignored", () => {
    expect(issue(withPpi(36, 11, [[16, 6, 12]]))).toBe("ppi-len-invalid");
    expect(issue(withPpi(36, 120 - 36 + 1, [[16, 6, 12]]))).toBe("ppi-len-invalid");
  });

  it("entry-level faults are reported (the kernel would spin on them)", () => {
    const big = decoded(withPpi(36, 16, [[17, 6, 12]]));
    expect(big.kind === "packet" && big.ppiIssue).toEqual({
      reason: "ppi-entry-size-invalid",
      at: 44,
      kernelHangs: true,
    });
    expect(issue(withPpi(36, 16, [[0, 6, 0]]))).toBe("ppi-entry-offset-invalid");
    expect(issue(withPpi(36, 16, [[16, 6, 16]]))).toBe("ppi-entry-offset-invalid");
    expect(issue(withPpi(36, 16, [[15, 99, 12]]))).toBe("ppi-entry-truncated"); // 1 byte left after it
    expect(issue(withPpi(36, 15, [[15, 6, 12]]))).toBe("ppi-entry-too-small");
    expect(issue(withPpi(36, 15, [[15, 99, 12]]))).toBeNull(); // not a type the driver looks up
  });

  it("entries before a bad one are kept", () => {
    const m = decoded(
      withPpi(36, 32, [
        [16, 6, 12],
        [20, 0, 12],
      ]),
    );
    expect(m.kind === "packet" && [m.ppis.length, m.ppiIssue?.reason]).toEqual([1, "ppi-entry-size-invalid"]);
  });
});

describe("one rndis_get_ppi lookup (findRndisPpi) and its area checks", () => {
  const [VLAN, CSUM, HASH, PKTINFO] = RNDIS_PPI_LOOKUPS as [
    (typeof RNDIS_PPI_LOOKUPS)[number],
    (typeof RNDIS_PPI_LOOKUPS)[number],
    (typeof RNDIS_PPI_LOOKUPS)[number],
    (typeof RNDIS_PPI_LOOKUPS)[number],
  ];
  /** An area of [size, type word, payload offset] entries, 16 bytes apart, from byte 0. */
  const area = (entries: readonly number[][]): Uint8Array => {
    const b = new Uint8Array(16 * entries.length);
    entries.forEach(([size, type, off], i) => {
      set32(b, 16 * i, size!);
      set32(b, 16 * i + 4, type!);
      set32(b, 16 * i + 8, off!);
    });
    return b;
  };

  it("looks up in the kernel's order: VLAN, checksum, hash, then the internal RNDIS_PKTINFO_ID", () => {
    expect(RNDIS_PPI_LOOKUPS.map((l) => [l.type, l.internal, l.size])).toEqual([
      [NDIS_PPI_TYPE.IEEE_8021Q, false, 4],
      [NDIS_PPI_TYPE.TCPIP_CHKSUM, false, 4],
      [NDIS_PPI_TYPE.NBL_HASH_VALUE, false, 4],
      [RNDIS_PKTINFO_ID, true, 4],
    ]);
  });

  it("returns the first matching entry's payload; the internal bit is part of the type", () => {
    const out = new RndisPpiLookup();
    const b = area([
      [16, RNDIS_PKTINFO_ID, 12], // external type 1 (IPSEC), not RNDIS_PKTINFO_ID
      [16, (RNDIS_PKTINFO_ID | 0x8000_0000) >>> 0, 12],
      [16, NDIS_PPI_TYPE.NBL_HASH_VALUE, 12],
      [16, NDIS_PPI_TYPE.NBL_HASH_VALUE, 13],
    ]);
    expect(findRndisPpi(b, 0, b.length, PKTINFO, out)).toBe(16 + 12);
    expect(findRndisPpi(b, 0, b.length, HASH, out)).toBe(32 + 12);
    expect(findRndisPpi(b, 0, b.length, VLAN, out)).toBe(-1);
    expect(out.issue).toBeNull();
  });

  it("checks entries only as far as it walks: a bad entry after the match is not seen", () => {
    const out = new RndisPpiLookup();
    const b = area([
      [16, NDIS_PPI_TYPE.IEEE_8021Q, 12],
      [99, NDIS_PPI_TYPE.IPSEC, 12], // size past the area
    ]);
    expect(findRndisPpi(b, 0, b.length, VLAN, out)).toBe(12);
    expect(out.issue).toBeNull();
    expect(findRndisPpi(b, 0, b.length, CSUM, out)).toBe(-1);
    expect([out.issue, out.at, out.kernelHangs]).toEqual(["ppi-entry-size-invalid", 16, true]);
  });

  it("stops where the kernel's loop would spin or read past the area", () => {
    const out = new RndisPpiLookup();
    const cases: [number[][], number, string, boolean][] = [
      [[[16, NDIS_PPI_TYPE.IPSEC, 16]], 16, "ppi-entry-offset-invalid", true],
      [[[0, NDIS_PPI_TYPE.IPSEC, 0]], 16, "ppi-entry-offset-invalid", true],
      [[[15, NDIS_PPI_TYPE.IEEE_8021Q, 12]], 16, "ppi-entry-too-small", true],
      [[[12, NDIS_PPI_TYPE.IPSEC, 4]], 16, "ppi-entry-truncated", false], // 4 bytes left after it
    ];
    for (const [entries, len, reason, hangs] of cases) {
      expect(findRndisPpi(area(entries), 0, len, VLAN, out)).toBe(-1);
      expect([out.issue, out.kernelHangs]).toEqual([reason, hangs]);
    }
    // a too-small entry of a type nobody asked for is walked over
    expect(findRndisPpi(area([[15, NDIS_PPI_TYPE.IEEE_8021Q, 12]]), 0, 15, HASH, out)).toBe(-1);
    expect(out.issue).toBeNull();
  });

  it("area: offset in [36, rpkt_len], length in [12, rpkt_len - offset]", () => {
    expect(rndisPpiAreaIssue(35, 16, 120)).toBe("ppi-offset-invalid");
    expect(rndisPpiAreaIssue(121, 0, 120)).toBe("ppi-offset-invalid");
    expect(rndisPpiAreaIssue(36, 11, 120)).toBe("ppi-len-invalid");
    expect(rndisPpiAreaIssue(36, 85, 120)).toBe("ppi-len-invalid");
    expect(rndisPpiAreaIssue(36, 84, 120)).toBeNull();
    expect(rndisPpiAreaIssue(108, 12, 120)).toBeNull();
  });
});

describe("responses (rndis_filter_receive_response, rndis_filter_query_device)", () => {
  it("the request id must be inside msg_len: 11 rejected, 12 accepted with missing fields read as 0", () => {
    const b = set32(set32(new Uint8Array(12), 0, RNDIS_MSG_TYPE.INIT_C), 4, 11);
    expect(reason(b)).toBe("rndis-response-too-small");
    set32(b, 4, 12);
    set32(b, 8, 77);
    expect(decoded(b)).toMatchObject({
      kind: "init-complete",
      requestId: 77,
      status: 0,
      maxPacketsPerMessage: 0,
    });
  });

  it("a response longer than 52 + 4096 bytes reports BUFFER_OVERFLOW", () => {
    const b = new Uint8Array(RNDIS_MAX_RESPONSE_LEN + 1);
    b.set(encodeRndisSetComplete({ requestId: 6, status: 0 }));
    set32(b, 4, b.length);
    expect(decoded(b)).toMatchObject({
      kind: "set-complete",
      requestId: 6,
      status: RNDIS_STATUS.BUFFER_OVERFLOW,
    });
    set32(b, 4, RNDIS_MAX_RESPONSE_LEN);
    expect(decoded(b)).toMatchObject({ status: 0, responseOverflow: false });
  });

  it("QUERY_CMPLT info: offset >= 16 and inside msg_len, length fits exactly", () => {
    const qc = (): Uint8Array =>
      encodeRndisQueryComplete({ requestId: 1, status: 0, info: new Uint8Array(4) });
    const info = (b: Uint8Array): number | null => {
      const m = decoded(b);
      return m.kind === "query-complete" ? (m.info?.length ?? null) : -1;
    };
    expect(info(qc())).toBe(4);
    expect(info(set32(qc(), 20, 15))).toBeNull();
    expect(info(set32(qc(), 16, 5))).toBeNull();
    expect(info(set32(set32(qc(), 16, 0), 20, 20))).toBe(0); // offset == msg_len - 8, empty buffer
    expect(info(set32(set32(qc(), 16, 0), 20, 21))).toBeNull();
  });

  it("INDICATE needs 12 body bytes; its status buffer is checked against the range length", () => {
    const b = encodeRndisIndicateStatus({ status: RNDIS_STATUS.MEDIA_CONNECT });
    expect(reason(set32(b.slice(), 4, 19))).toBe("rndis-indicate-too-small");
    // pre-Fe vSwitch: msg_len leaves the 4-byte buffer out, but it is inside the range.
    const pre = new Uint8Array(24);
    pre.set(b);
    set32(pre, 12, 4);
    set32(pre, 16, 12);
    const m = decoded(pre);
    expect(m.kind === "indicate-status" && m.statusBuffer?.length).toBe(4);
    set32(pre, 12, 5);
    const m2 = decoded(pre);
    expect(m2.kind === "indicate-status" && m2.statusBuffer).toBeNull();
  });
});

describe("property: arbitrary host bytes", () => {
  const checkBounds = (buf: Uint8Array): void => {
    const r = decodeRndisMessage(buf);
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(NetvscError);
      return;
    }
    const m = r.value;
    expect(m.msgLen).toBeLessThanOrEqual(buf.length);
    if (m.kind === "packet") {
      expect(m.dataStart + m.dataLen).toBeLessThanOrEqual(buf.length);
      expect(m.data.length).toBe(m.dataLen);
      for (const p of m.ppis) expect(p.dataStart + p.data.length).toBeLessThanOrEqual(buf.length);
    }
    if (m.kind === "query-complete" && m.info) {
      expect(8 + m.infoBufOffset + m.info.length).toBeLessThanOrEqual(m.msgLen);
    }
    if (m.kind === "indicate-status" && m.statusBuffer) {
      expect(8 + m.statusBufOffset + m.statusBuffer.length).toBeLessThanOrEqual(buf.length);
    }
  };

  test.prop([fc.uint8Array({ maxLength: 256 })])("raw bytes never throw or escape the buffer", checkBounds);

  // Structured inputs reach the deep paths: a plausible header with fuzzed fields and tail.
  test.prop([
    fc.constantFrom(...Object.values(RNDIS_MSG_TYPE), 0x1234),
    fc.array(fc.oneof(fc.nat(200), fc.constant(0xffffffff), fc.nat()), { minLength: 12, maxLength: 12 }),
    fc.uint8Array({ maxLength: 200 }),
    fc.boolean(),
  ])("structured messages never throw or escape the buffer", (type, words, tail, exactLen) => {
    const buf = new Uint8Array(8 + 48 + tail.length);
    set32(buf, 0, type);
    set32(buf, 4, exactLen ? buf.length : (words[0] ?? 0));
    for (const [i, w] of words.entries()) set32(buf, 8 + i * 4, w >>> 0);
    buf.set(tail, 56);
    checkBounds(buf);
  });
});
