import { fc, test } from "@fast-check/vitest";
import {
  encodeNvspMessage,
  encodeRndisHalt,
  encodeRndisInit,
  encodeRndisQuery,
  encodeRndisSet,
  type NvspMessage,
} from "@ivm/netvsc-protocol";
import { type ChannelMessage, encodeChannelMessage } from "@ivm/vmbus";
import { describe, expect } from "vitest";

// I5 for what the guest writes into shared memory: every outgoing message is built from zero, so its
// bytes depend on its fields only — never on what an earlier message (or a reused buffer) held — and
// the NVSP padding up to 40 bytes is zero.
const u32 = fc.nat({ max: 0xffff_ffff });
const ones = (n: number): Uint8Array => new Uint8Array(n).fill(0xff);

const guestNvsp: fc.Arbitrary<NvspMessage> = fc.oneof(
  fc.record({ kind: fc.constant("init" as const), minProtocolVersion: u32, maxProtocolVersion: u32 }),
  fc.record({ kind: fc.constant("send-recv-buf" as const), gpadlHandle: u32, id: fc.nat({ max: 0xffff }) }),
  fc.record({ kind: fc.constant("send-send-buf" as const), gpadlHandle: u32, id: fc.nat({ max: 0xffff }) }),
  fc.record({ kind: fc.constant("revoke-recv-buf" as const), id: fc.nat({ max: 0xffff }) }),
  fc.record({ kind: fc.constant("revoke-send-buf" as const), id: fc.nat({ max: 0xffff }) }),
  fc.record({
    kind: fc.constant("send-rndis-pkt" as const),
    channelType: fc.nat({ max: 1 }),
    sendBufSectionIndex: u32,
    sendBufSectionSize: u32,
  }),
);

const guestChannel: fc.Arbitrary<ChannelMessage> = fc.oneof(
  fc.record({ kind: fc.constant("close-channel" as const), childRelid: u32 }),
  fc.record({ kind: fc.constant("gpadl-teardown" as const), childRelid: u32, gpadl: u32 }),
  fc.record({ kind: fc.constant("relid-released" as const), childRelid: u32 }),
  fc.constant({ kind: "request-offers" as const }),
);

const STRUCT_BYTES: Partial<Record<NvspMessage["kind"], number>> = {
  init: 4 + 8,
  "send-recv-buf": 4 + 6,
  "send-send-buf": 4 + 6,
  "revoke-recv-buf": 4 + 2,
  "revoke-send-buf": 4 + 2,
  "send-rndis-pkt": 4 + 12,
};

describe("outgoing encoders write only what they mean (I5)", () => {
  test.prop([guestNvsp, guestNvsp])(
    "NVSP: 40 bytes, zero past the struct, independent of the previous message",
    (a, b) => {
      const alone = encodeNvspMessage(b);
      encodeNvspMessage(a);
      expect(alone.length).toBe(40);
      expect(encodeNvspMessage(b)).toEqual(alone);
      // struct nvsp_message_header + the message's own struct (hyperv_net.h); the union's rest is padding.
      expect(alone.subarray(STRUCT_BYTES[b.kind]!).every((x) => x === 0)).toBe(true);
    },
  );

  test.prop([guestChannel, guestChannel])(
    "channel messages: the same bytes whatever was sent before",
    (a, b) => {
      const alone = encodeChannelMessage(b);
      encodeChannelMessage(a);
      expect(encodeChannelMessage(b)).toEqual(alone);
      expect(alone.subarray(4, 8).every((x) => x === 0)).toBe(true); // the header's padding
    },
  );

  test.prop([u32, u32, fc.uint8Array({ maxLength: 64 })])(
    "RNDIS requests: fresh zeroed buffers, independent of earlier requests",
    (requestId, oid, info) => {
      const make = () => [
        encodeRndisInit({ requestId }),
        encodeRndisQuery({ requestId, oid }),
        encodeRndisSet({ requestId, oid, info }),
        encodeRndisHalt({ requestId }),
      ];
      const first = make();
      encodeRndisSet({ requestId: 0xffff_ffff, oid: 0xffff_ffff, info: ones(64) });
      expect(make()).toEqual(first);
    },
  );
});
