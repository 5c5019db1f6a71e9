import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { NetvscError } from "./errors.js";
import {
  decodeNvspMessage,
  encodeNvspMessage,
  encodeNvspRecvCompletion,
  encodeSendIndirectionTable,
  NVSP_MESSAGE_SIZE,
  NVSP_MSG_TYPE,
  NVSP_PROTOCOL_VERSION,
  NVSP_STATUS,
  type NvspDirection,
  type NvspMessage,
  ndisConfigFor,
  ndisVersionFor,
  parseSendIndirectionTable,
} from "./nvsp.js";

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const zeros = (n: number): string => "00".repeat(n);

describe("NVSP encoders match hand-computed bytes", () => {
  it("INIT carries min = max = the version tried, padded with zeros to 40 bytes", () => {
    const b = encodeNvspMessage({ kind: "init", minProtocolVersion: 0x60001, maxProtocolVersion: 0x60001 });
    expect(b.length).toBe(40);
    expect(hex(b)).toBe(`01000000${"01000600"}${"01000600"}${zeros(28)}`);
  });

  it("SEND_RECV_BUF: gpadl handle u32 then id 0xcafe as u16", () => {
    const b = encodeNvspMessage({ kind: "send-recv-buf", gpadlHandle: 0x12345678, id: 0xcafe });
    expect(hex(b)).toBe(`65000000${"78563412"}${"feca"}${zeros(30)}`);
  });

  it("SEND_SEND_BUF uses id 0", () => {
    const b = encodeNvspMessage({ kind: "send-send-buf", gpadlHandle: 7, id: 0 });
    expect(hex(b)).toBe(`68000000${"07000000"}${zeros(32)}`);
  });

  it("SEND_RNDIS_PKT without a send section: index 0xffffffff, size 0", () => {
    const b = encodeNvspMessage({
      kind: "send-rndis-pkt",
      channelType: 1,
      sendBufSectionIndex: 0xffffffff,
      sendBufSectionSize: 0,
    });
    expect(hex(b)).toBe(`6b000000${"01000000"}${"ffffffff"}${"00000000"}${zeros(24)}`);
  });

  it("REVOKE_RECV_BUF and REVOKE_SEND_BUF carry a u16 id", () => {
    expect(hex(encodeNvspMessage({ kind: "revoke-recv-buf", id: 0xcafe }))).toBe(`67000000feca${zeros(34)}`);
    expect(hex(encodeNvspMessage({ kind: "revoke-send-buf", id: 0 }))).toBe(`6a000000${zeros(36)}`);
  });

  it("SEND_NDIS_CONFIG for v6.1, MTU 1500: mtu + 14, reserved 0, capability u64 = 802.1q|sriov|teaming|rsc", () => {
    const msg = ndisConfigFor(NVSP_PROTOCOL_VERSION.V61, 1500);
    expect(msg).not.toBeNull();
    const b = encodeNvspMessage(msg!);
    expect(hex(b)).toBe(`7d000000${"ea050000"}${"00000000"}${"ac00000000000000"}${zeros(20)}`);
  });

  it("the NDIS config capabilities grow with the NVSP version; v1 sends none", () => {
    expect(ndisConfigFor(NVSP_PROTOCOL_VERSION.V1, 1500)).toBeNull();
    expect(ndisConfigFor(NVSP_PROTOCOL_VERSION.V4, 1500)).toEqual({
      kind: "send-ndis-config",
      mtu: 1514,
      capabilities: 0x08n,
    });
    expect(ndisConfigFor(NVSP_PROTOCOL_VERSION.V6, 1500)).toMatchObject({ capabilities: 0x2cn });
  });

  it("NDIS version is 6.1 up to NVSP v4 and 6.30 after", () => {
    expect(ndisVersionFor(NVSP_PROTOCOL_VERSION.V4)).toEqual({ major: 6, minor: 1 });
    expect(ndisVersionFor(NVSP_PROTOCOL_VERSION.V5)).toEqual({ major: 6, minor: 30 });
  });

  it("the receive completion is the 8-byte recv_comp_msg", () => {
    expect(hex(encodeNvspRecvCompletion(NVSP_STATUS.FAIL))).toBe("6c00000002000000");
  });

  it("rejects values that do not fit the C field (a caller bug)", () => {
    expect(() => encodeNvspMessage({ kind: "revoke-recv-buf", id: 0x10000 })).toThrow(RangeError);
    expect(() => encodeNvspMessage({ kind: "init", minProtocolVersion: -1, maxProtocolVersion: 0 })).toThrow(
      RangeError,
    );
  });
});

const samples: readonly [NvspDirection, NvspMessage][] = [
  ["guest-to-host", { kind: "init", minProtocolVersion: 2, maxProtocolVersion: 0x30002 }],
  [
    "host-to-guest",
    { kind: "init-complete", negotiatedProtocolVersion: 0, maxMdlChainLength: 34, status: 1 },
  ],
  ["guest-to-host", { kind: "send-ndis-version", ndisMajor: 6, ndisMinor: 30 }],
  ["guest-to-host", { kind: "send-recv-buf", gpadlHandle: 0xdeadbeef, id: 0xcafe }],
  [
    "host-to-guest",
    {
      kind: "send-recv-buf-complete",
      status: 1,
      numSections: 1,
      section: { offset: 0, subAllocSize: 1728, numSubAllocs: 9709, endOffset: 16777152 },
    },
  ],
  ["guest-to-host", { kind: "revoke-recv-buf", id: 0xcafe }],
  ["guest-to-host", { kind: "send-send-buf", gpadlHandle: 3, id: 0 }],
  ["host-to-guest", { kind: "send-send-buf-complete", status: 1, sectionSize: 6144 }],
  ["guest-to-host", { kind: "revoke-send-buf", id: 0 }],
  [
    "guest-to-host",
    { kind: "send-rndis-pkt", channelType: 0, sendBufSectionIndex: 5, sendBufSectionSize: 1514 },
  ],
  ["host-to-guest", { kind: "send-rndis-pkt-complete", status: 1 }],
  ["guest-to-host", { kind: "send-ndis-config", mtu: 1514, capabilities: 0xffff_ffff_ffff_ffffn }],
  ["host-to-guest", { kind: "send-vf-association", allocated: 1, serial: 42 }],
  ["guest-to-host", { kind: "switch-data-path", activeDatapath: 1 }],
  ["guest-to-host", { kind: "subchannel-request", operation: 1, numSubchannels: 7 }],
  ["host-to-guest", { kind: "subchannel-complete", status: 1, numSubchannels: 3 }],
  ["host-to-guest", { kind: "send-indirection-table", count: 16, offset: 12 }],
];

describe("NVSP decode(encode(x))", () => {
  it.each(samples)("%s %o", (direction, msg) => {
    const r = decodeNvspMessage(encodeNvspMessage(msg), direction);
    expect(r).toEqual({ ok: true, value: msg });
  });

  it("unknown and unmodelled types stay representable", () => {
    const body = new Uint8Array(36).fill(0xab);
    const b = encodeNvspMessage({ kind: "other", msgType: 999, body });
    const r = decodeNvspMessage(b, "host-to-guest");
    expect(r).toEqual({ ok: true, value: { kind: "other", msgType: 999, body } });
    const chimney = decodeNvspMessage(
      new Uint8Array([NVSP_MSG_TYPE.SEND_CHIMNEY_PKT, 0, 0, 0]),
      "host-to-guest",
    );
    expect(chimney.ok && chimney.value.kind).toBe("other");
  });

  it("SUBCHANNEL decodes by direction", () => {
    const b = encodeNvspMessage({ kind: "subchannel-request", operation: 1, numSubchannels: 4 });
    expect(decodeNvspMessage(b, "host-to-guest")).toMatchObject({
      ok: true,
      value: { kind: "subchannel-complete", status: 1, numSubchannels: 4 },
    });
  });
});

describe("NVSP decoder length rules (netvsc_send_completion)", () => {
  const withLen = (msg: NvspMessage, n: number): Uint8Array => encodeNvspMessage(msg).slice(0, n);
  const reason = (r: ReturnType<typeof decodeNvspMessage>): string | null => (r.ok ? null : r.error.reason);

  it("fewer than 4 bytes is a header error", () => {
    expect(reason(decodeNvspMessage(new Uint8Array(3), "host-to-guest"))).toBe("nvsp-header-too-short");
  });

  it("INIT_COMPLETE falls through to the SEND_RECV_BUF_COMPLETE check: 27 rejected, 28 accepted", () => {
    const m: NvspMessage = {
      kind: "init-complete",
      negotiatedProtocolVersion: 0,
      maxMdlChainLength: 0,
      status: 1,
    };
    expect(reason(decodeNvspMessage(withLen(m, 16), "host-to-guest"))).toBe("nvsp-message-too-short");
    expect(reason(decodeNvspMessage(withLen(m, 27), "host-to-guest"))).toBe("nvsp-message-too-short");
    expect(decodeNvspMessage(withLen(m, 28), "host-to-guest").ok).toBe(true);
  });

  it("SEND_SEND_BUF_COMPLETE needs 12 bytes", () => {
    const m: NvspMessage = { kind: "send-send-buf-complete", status: 1, sectionSize: 6144 };
    expect(reason(decodeNvspMessage(withLen(m, 11), "host-to-guest"))).toBe("nvsp-message-too-short");
    expect(decodeNvspMessage(withLen(m, 12), "host-to-guest").ok).toBe(true);
  });

  it("a bare-header SEND_RNDIS_PKT_COMPLETE is accepted with no status (the kernel never reads it)", () => {
    const r = decodeNvspMessage(new Uint8Array([108, 0, 0, 0]), "host-to-guest");
    expect(r).toEqual({ ok: true, value: { kind: "send-rndis-pkt-complete", status: null } });
  });

  test.prop([
    fc.uint8Array({ maxLength: 64 }),
    fc.constantFrom<NvspDirection>("guest-to-host", "host-to-guest"),
  ])("never throws on arbitrary bytes; rejections are NetvscError", (bytes, direction) => {
    const r = decodeNvspMessage(bytes, direction);
    if (!r.ok) expect(r.error).toBeInstanceOf(NetvscError);
  });

  test.prop([fc.constantFrom(...Object.values(NVSP_MSG_TYPE)), fc.uint8Array({ maxLength: 40 })])(
    "never throws for any known type with any body",
    (type, body) => {
      const b = new Uint8Array(4 + body.length);
      new DataView(b.buffer).setUint32(0, type, true);
      b.set(body, 4);
      for (const d of ["guest-to-host", "host-to-guest"] as const) {
        const r = decodeNvspMessage(b, d);
        if (!r.ok) expect(r.error).toBeInstanceOf(NetvscError);
      }
    },
  );
});

describe("send indirection table (netvsc_send_table)", () => {
  const build = (len: number, count: number, offset: number): Uint8Array => {
    const b = new Uint8Array(len);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, NVSP_MSG_TYPE.SEND_INDIRECTION_TABLE, true);
    dv.setUint32(4, count, true);
    dv.setUint32(8, offset, true);
    for (let i = 0; i + 4 <= len - 12; i += 4) dv.setUint32(12 + i, i / 4, true);
    return b;
  };

  it("v6.1 reads the table at the host's offset", () => {
    const r = parseSendIndirectionTable(build(76, 16, 12), NVSP_PROTOCOL_VERSION.V61);
    expect(r.ok && Array.from(r.value)).toEqual([...Array(16).keys()]);
  });

  it("<= v6 ignores the host offset and reads after the v6 union (byte 40)", () => {
    const r = parseSendIndirectionTable(build(104, 16, 12), NVSP_PROTOCOL_VERSION.V6);
    expect(r.ok && r.value[0]).toBe(7); // word at byte 40 = index (40 - 12) / 4
  });

  it("count must be 16; offset must leave room for the table", () => {
    expect(parseSendIndirectionTable(build(76, 15, 12), NVSP_PROTOCOL_VERSION.V61)).toMatchObject({
      ok: false,
      error: { reason: "send-table-size-wrong" },
    });
    expect(parseSendIndirectionTable(build(76, 16, 13), NVSP_PROTOCOL_VERSION.V61)).toMatchObject({
      ok: false,
      error: { reason: "send-table-offset-too-big" },
    });
    // Shorter than the table: refused before the unsigned difference could wrap (505e3f00c3f3).
    expect(parseSendIndirectionTable(build(40, 16, 12), NVSP_PROTOCOL_VERSION.V61)).toMatchObject({
      ok: false,
      error: { reason: "send-table-offset-too-big" },
    });
  });

  it("encodeSendIndirectionTable writes what a v6.1 host sends, which both readings take", () => {
    const entries = Array.from({ length: 16 }, (_, i) => (i * 3) % 5);
    const msg = encodeSendIndirectionTable(entries);
    expect(msg.length).toBe(40 + 64);
    const dv = new DataView(msg.buffer);
    expect([dv.getUint32(0, true), dv.getUint32(4, true), dv.getUint32(8, true)]).toEqual([
      NVSP_MSG_TYPE.SEND_INDIRECTION_TABLE,
      16,
      40,
    ]);
    for (const v of [NVSP_PROTOCOL_VERSION.V6, NVSP_PROTOCOL_VERSION.V61]) {
      const r = parseSendIndirectionTable(msg, v);
      expect(r.ok && Array.from(r.value)).toEqual(entries);
    }
    // A claimed offset without the entries there: the header says one thing, the bytes another.
    const lying = encodeSendIndirectionTable(entries, { offset: 12, at: 40 });
    expect(new DataView(lying.buffer).getUint32(8, true)).toBe(12);
    const v61 = parseSendIndirectionTable(lying, NVSP_PROTOCOL_VERSION.V61);
    expect(v61.ok && Array.from(v61.value)).not.toEqual(entries);
    expect(() => encodeSendIndirectionTable([-1])).toThrow(RangeError);
  });

  test.prop([fc.uint8Array({ maxLength: 200 }), fc.constantFrom(...Object.values(NVSP_PROTOCOL_VERSION))])(
    "never throws on arbitrary bytes",
    (bytes, v) => {
      const r = parseSendIndirectionTable(bytes, v);
      if (!r.ok) expect(r.error).toBeInstanceOf(NetvscError);
    },
  );
});

it("the wire size is sizeof(struct nvsp_message) = 40", () => {
  expect(NVSP_MESSAGE_SIZE).toBe(40);
});
