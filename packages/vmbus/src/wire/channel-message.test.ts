import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { HV_IDE_GUID, HV_NIC_GUID, isValidOffer } from "../channel-offer.js";
import { VmbusError } from "../errors.js";
import { guidFromString, guidToString } from "./bytes.js";
import {
  CHANNEL_MESSAGE_SIZE,
  CHANNELMSG,
  type ChannelMessage,
  decodeChannelMessage,
  encodeChannelMessage,
  type OfferChannelMessage,
  VMBUS_CHANNEL_FLAG,
  VMBUS_VERSION,
} from "./channel-message.js";

function offer(over: Partial<OfferChannelMessage> = {}): OfferChannelMessage {
  return {
    kind: "offer-channel",
    interfaceType: HV_NIC_GUID,
    interfaceInstance: guidFromString("00112233-4455-6677-8899-aabbccddeeff"),
    chnFlags: VMBUS_CHANNEL_FLAG.REQUEST_MONITORED_NOTIFICATION,
    mmioMegabytes: 0,
    userDefined: new Uint8Array(120).fill(0xab),
    subChannelIndex: 3,
    childRelid: 0x11,
    monitorId: 0x22,
    monitorAllocated: true,
    isDedicatedInterrupt: true,
    connectionId: 0x44332211,
    ...over,
  };
}

describe("channel message layouts", () => {
  it("lays out vmbus_channel_offer_channel at the kernel's offsets", () => {
    const b = encodeChannelMessage(offer());
    expect(b.length).toBe(196);
    const v = new DataView(b.buffer);
    expect(v.getUint32(0, true)).toBe(CHANNELMSG.OFFERCHANNEL);
    expect(v.getUint32(4, true)).toBe(0); // header padding
    // if_type: GUID_INIT byte order of f8615163-df3e-46c5-913f-f2d2f965ed0e.
    expect(Array.from(b.subarray(8, 24))).toEqual([
      0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46, 0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e,
    ]);
    expect(b.subarray(40, 56).every((x) => x === 0)).toBe(true); // reserved1/2
    expect(v.getUint16(56, true)).toBe(0x400);
    expect(b[60]).toBe(0xab);
    expect(b[179]).toBe(0xab);
    expect(v.getUint16(180, true)).toBe(3);
    expect(v.getUint16(182, true)).toBe(0);
    expect(v.getUint32(184, true)).toBe(0x11);
    expect(b[188]).toBe(0x22);
    expect(b[189]).toBe(1);
    expect(v.getUint16(190, true)).toBe(1);
    expect(v.getUint32(192, true)).toBe(0x44332211);
  });

  it("encodes the small fixed messages byte for byte", () => {
    expect(Array.from(encodeChannelMessage({ kind: "gpadl-torndown", gpadl: 0xe1e10 }))).toEqual([
      12, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x1e, 0x0e, 0,
    ]);
    expect(
      Array.from(
        encodeChannelMessage({
          kind: "gpadl-created",
          childRelid: 5,
          gpadl: 0xe1e11,
          creationStatus: 0xc0000001,
        }),
      ),
    ).toEqual([10, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0x11, 0x1e, 0x0e, 0, 0x01, 0, 0, 0xc0]);
    expect(Array.from(encodeChannelMessage({ kind: "request-offers" }))).toEqual([3, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(encodeChannelMessage({ kind: "unload" }))).toEqual([16, 0, 0, 0, 0, 0, 0, 0]);
    const open = encodeChannelMessage({
      kind: "open-channel",
      childRelid: 1,
      openId: 2,
      ringBufferGpadlHandle: 3,
      targetVp: 4,
      downstreamRingBufferPageOffset: 5,
      userData: new Uint8Array([9, 9]),
    });
    expect(open.length).toBe(148);
    expect(Array.from(open.subarray(0, 30))).toEqual([
      5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 9, 9,
    ]);
    expect(open.subarray(30).every((x) => x === 0)).toBe(true);
    const contact = encodeChannelMessage({
      kind: "initiate-contact",
      versionRequested: VMBUS_VERSION.WIN10_V5_3,
      targetVcpu: 0,
      msgSint: 2,
      msgVtl: 0,
      featureFlags: 0,
      monitorPage1: 0x4000_0000_1000,
      monitorPage2: 0x4000_0000_2000,
    });
    expect(contact.length).toBe(40);
    const cv = new DataView(contact.buffer);
    expect(cv.getUint32(8, true)).toBe(0x50003);
    expect(contact[16]).toBe(2);
    expect(cv.getBigUint64(24, true)).toBe(0x4000_0000_1000n);
    expect(cv.getBigUint64(32, true)).toBe(0x4000_0000_2000n);
  });

  it("round-trips every modelled kind", () => {
    const msgs: ChannelMessage[] = [
      offer(),
      { kind: "rescind-channel-offer", childRelid: 9 },
      { kind: "request-offers" },
      { kind: "all-offers-delivered" },
      {
        kind: "open-channel",
        childRelid: 1,
        openId: 2,
        ringBufferGpadlHandle: 3,
        targetVp: 4,
        downstreamRingBufferPageOffset: 5,
        userData: new Uint8Array(120).fill(7),
      },
      { kind: "open-channel-result", childRelid: 1, openId: 2, status: 0 },
      { kind: "close-channel", childRelid: 1 },
      {
        kind: "gpadl-header",
        childRelid: 1,
        gpadl: 2,
        rangeBufLen: 16,
        rangeCount: 1,
        rangeData: new Uint8Array(16).fill(1),
      },
      { kind: "gpadl-body", msgNumber: 0, gpadl: 2, data: new Uint8Array(8).fill(3) },
      { kind: "gpadl-created", childRelid: 1, gpadl: 2, creationStatus: 0 },
      { kind: "gpadl-teardown", childRelid: 1, gpadl: 2 },
      { kind: "gpadl-torndown", gpadl: 2 },
      { kind: "relid-released", childRelid: 1 },
      {
        kind: "initiate-contact",
        versionRequested: VMBUS_VERSION.WIN10_V5_2,
        targetVcpu: 1,
        msgSint: 2,
        msgVtl: 0,
        featureFlags: 0x10,
        monitorPage1: 123 * 4096,
        monitorPage2: 124 * 4096,
      },
      { kind: "version-response", versionSupported: 1, connectionState: 0, msgConnId: 4 },
      { kind: "unload" },
      { kind: "unload-response" },
    ];
    for (const m of msgs) {
      const r = decodeChannelMessage(encodeChannelMessage(m));
      expect(r.ok).toBe(true);
      if (r.ok) expect(r.value).toEqual(m);
    }
  });

  it("keeps unknown types representable and rejects short or oversize payloads", () => {
    const unknown = new Uint8Array(12);
    new DataView(unknown.buffer).setUint32(0, 0x99, true);
    const r = decodeChannelMessage(unknown);
    expect(r.ok && r.value.kind === "unknown" && r.value.msgtype === 0x99).toBe(true);
    // A known-to-Linux type the model does not decode (MODIFYCHANNEL) is also 'unknown'.
    const mod = new Uint8Array(16);
    mod[0] = CHANNELMSG.MODIFYCHANNEL;
    expect(decodeChannelMessage(mod)).toMatchObject({ ok: true, value: { kind: "unknown", msgtype: 22 } });

    const short = encodeChannelMessage(offer()).subarray(0, 195);
    const s = decodeChannelMessage(short);
    expect(s.ok).toBe(false);
    if (!s.ok) {
      expect(s.error).toBeInstanceOf(VmbusError);
      expect(s.error.reason).toBe("short-message");
    }
    expect(decodeChannelMessage(new Uint8Array(241))).toMatchObject({
      ok: false,
      error: { reason: "oversize-message" },
    });
    expect(decodeChannelMessage(new Uint8Array(7))).toMatchObject({
      ok: false,
      error: { reason: "short-message" },
    });
    expect(CHANNEL_MESSAGE_SIZE.GPADL_HEADER).toBe(20);
  });

  it("decodes from a private copy: later changes to the input do not leak through", () => {
    const b = encodeChannelMessage(offer());
    const r = decodeChannelMessage(b);
    b.fill(0xff);
    expect(r.ok && r.value.kind === "offer-channel" && r.value.childRelid).toBe(0x11);
  });

  it("rejects a monitor page address at or above 2^53", () => {
    const b = encodeChannelMessage({
      kind: "initiate-contact",
      versionRequested: 0,
      targetVcpu: 0,
      msgSint: 0,
      msgVtl: 0,
      featureFlags: 0,
      monitorPage1: 0,
      monitorPage2: 0,
    });
    new DataView(b.buffer).setBigUint64(24, 1n << 53n, true);
    expect(decodeChannelMessage(b)).toMatchObject({ ok: false, error: { reason: "u64-out-of-range" } });
  });

  it("accepts offers as vmbus_is_valid_offer does in an isolated guest", () => {
    expect(isValidOffer(offer(), true)).toBe(true);
    expect(isValidOffer(offer({ interfaceType: HV_IDE_GUID }), true)).toBe(false);
    expect(isValidOffer(offer({ interfaceType: HV_IDE_GUID }), false)).toBe(true);
    const unknownGuid = guidFromString("deadbeef-0000-0000-0000-000000000000");
    expect(isValidOffer(offer({ interfaceType: unknownGuid }), true)).toBe(false);
    expect(
      isValidOffer(
        offer({ interfaceType: unknownGuid, chnFlags: VMBUS_CHANNEL_FLAG.TLNPI_PROVIDER_OFFER }),
        true,
      ),
    ).toBe(true);
    expect(guidToString(HV_NIC_GUID)).toBe("f8615163-df3e-46c5-913f-f2d2f965ed0e");
  });
});

describe("decodeChannelMessage on host bytes (property)", () => {
  test.prop([fc.uint8Array({ minLength: 0, maxLength: 260 })], { numRuns: 3000 })(
    "never throws; errors are VmbusError",
    (bytes) => {
      const r = decodeChannelMessage(bytes);
      if (!r.ok) expect(r.error).toBeInstanceOf(VmbusError);
    },
  );

  test.prop([fc.integer({ min: 0, max: 30 }), fc.uint8Array({ minLength: 232, maxLength: 232 })], {
    numRuns: 3000,
  })("240-byte payloads of every type decode and re-encode to a valid message", (type, rest) => {
    const bytes = new Uint8Array(240);
    new DataView(bytes.buffer).setUint32(0, type, true);
    bytes.set(rest, 8);
    const r = decodeChannelMessage(bytes);
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(VmbusError);
      return;
    }
    const again = encodeChannelMessage(r.value);
    expect(again.length).toBeLessThanOrEqual(240);
    expect(decodeChannelMessage(again).ok).toBe(true);
  });
});
