import { fc, test } from "@fast-check/vitest";
import {
  decodeNvspMessage,
  encodeLabFrame,
  encodeNvspMessage,
  encodeRndisPacket,
  NVSP_PROTOCOL_VERSION,
  NVSP_STATUS,
  RNDIS_MSG_TYPE,
  validateRecvBufComplete,
  validateXferPagePacket,
} from "@ivm/netvsc-protocol";
import { VM_PKT, writePacketDescriptor } from "@ivm/vmbus";
import { describe, expect, it } from "vitest";
import { CONTROL_GPA, RECV_GPADL, ScriptedGuest } from "../test/test-guest.js";
import type { RecvBufCompleteTamper } from "./adversary.js";

const V = NVSP_PROTOCOL_VERSION;

describe("netvsp adversarial knobs", () => {
  it.each<[RecvBufCompleteTamper, string]>([
    ["section-size-67", "recv-section-size-too-small"],
    ["count-overflow", "recv-sections-exceed-buffer"],
    ["offset-nonzero", "recv-buf-section-offset-invalid"],
    ["two-sections", "recv-buf-section-count-invalid"],
  ])("a %s SEND_RECV_BUF_COMPLETE is one netvsc_init_buf refuses (%s)", (tamper, reason) => {
    const g = new ScriptedGuest({ adversary: { recvBufComplete: tamper } });
    g.sendNvsp({ kind: "init", minProtocolVersion: V.V61, maxProtocolVersion: V.V61 });
    g.exchange();
    g.sendNvsp({ kind: "send-recv-buf", gpadlHandle: RECV_GPADL, id: 0xcafe });
    const [p] = g.exchange();
    const d = decodeNvspMessage(p!.data, "host-to-guest");
    if (!d.ok || d.value.kind !== "send-recv-buf-complete") throw new Error("no reply");
    const v = validateRecvBufComplete(d.value, g.recvBuf.size);
    expect(v.ok ? null : v.error.reason).toBe(reason);
  });

  it.each([
    ["offset-past-buffer", "xfer-range-outside-buffer"],
    ["length-past-section", "xfer-range-exceeds-section"],
  ] as const)("bad transfer-page ranges (%s) are refused by the guest's validator", (tamper, reason) => {
    const g = new ScriptedGuest();
    g.attach();
    const host = g.netvsp;
    host.adversary = { xferRange: tamper };
    host.queueRx([100]);
    const [p] = g.exchange();
    const v = validateXferPagePacket(p!.bytes, { recvBufSize: g.recvBuf.size, recvSectionSize: 1728 });
    if (!v.ok) throw v.error;
    expect(v.value.ranges[0]).toMatchObject({ ok: false, reason });
    // The guest completes with FAIL; the host still gets its (honest) section back.
    g.completeRx(p!.transId, NVSP_STATUS.FAIL);
    g.pump();
    expect(host.counters.rxCompletionsFailed).toBe(1);
    expect(host.recvBuffer?.sectionsInUse).toBe(0);
  });

  it("an interceptor drops or replaces any outgoing message", () => {
    const g = new ScriptedGuest({
      adversary: {
        interceptor: (m) => (m.kind === "init-complete" ? null : undefined),
      },
    });
    g.sendNvsp({ kind: "init", minProtocolVersion: V.V61, maxProtocolVersion: V.V61 });
    expect(g.exchange()).toEqual([]);
    expect(g.netvsp.version).toBe(V.V61); // the host moved on as if it had answered
    g.netvsp.adversary = {
      interceptor: (m) => {
        const b = m.bytes.slice();
        b[16] = 0x99; // the NVSP message type of the reply
        return b;
      },
    };
    g.sendNvsp({ kind: "send-recv-buf", gpadlHandle: RECV_GPADL, id: 0xcafe });
    const [p] = g.exchange();
    expect(p!.data[0]).toBe(0x99);
    expect(g.netvsp.counters.intercepted).toBe(2);
  });

  it("sends duplicate and forged send completions", () => {
    const g = new ScriptedGuest();
    g.attach();
    g.netvsp.adversary = { duplicateTxCompletions: true };
    const tid = g.sendInSection(
      0,
      encodeRndisPacket({ data: encodeLabFrame({ seq: 0, seed: 1, length: 64 }) }),
    );
    expect(g.exchange().map((p) => p.transId)).toEqual([tid, tid]);
    expect(g.netvsp.forgeTxCompletion(0x4242n)).toBe(true);
    const [forged] = g.receive();
    expect([forged!.type, forged!.transId]).toEqual([VM_PKT.COMP, 0x4242n]);
  });

  it("rewrites a receive section after the guest read it", () => {
    const g = new ScriptedGuest();
    g.attach();
    g.netvsp.adversary = { rxRewrite: { offset: 4, bytes: Uint8Array.of(0xff, 0xff, 0xff, 0x7f) } };
    g.netvsp.queueRx([200]);
    const [p] = g.exchange();
    const first = g.readXfer(p!).messages[0]!;
    expect(first).toMatchObject({ kind: "packet", msgLen: 244 });
    g.pump(); // the next poll flips msg_len in shared memory
    const again = validateXferPagePacket(p!.bytes, { recvBufSize: g.recvBuf.size, recvSectionSize: 1728 });
    if (!again.ok) throw again.error;
    const r = again.value.ranges[0]!;
    const shared = new DataView(g.recvBuf.bytes.buffer, r.offset);
    expect(shared.getUint32(4, true)).toBe(0x7fff_ffff);
    expect(first.msgLen).toBe(244); // the private copy is what the guest parsed
  });
});

describe("netvsp against arbitrary guest bytes", () => {
  /** Write one raw packet (descriptor + body, 8-aligned) into the guest's outbound ring. */
  function rawPacket(
    g: ScriptedGuest,
    type: number,
    flags: number,
    offset8: number,
    body: Uint8Array,
  ): boolean {
    const len = Math.ceil((16 + body.length) / 8) * 8;
    const pkt = new Uint8Array(len);
    pkt.set(body, 16);
    writePacketDescriptor(pkt, 0, { type, offset8, len8: len / 8, flags, transId: 7n });
    return g.out.write([pkt], 7n).ok;
  }

  const packetArb = fc.record({
    type: fc.oneof(
      fc.constantFrom(VM_PKT.DATA_INBAND, VM_PKT.DATA_USING_GPA_DIRECT, VM_PKT.COMP),
      fc.nat(0xffff),
    ),
    flags: fc.nat(3),
    offset8: fc.oneof(fc.constant(2), fc.nat(40)),
    body: fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      // A plausible NVSP header with random fields behind it.
      fc
        .tuple(
          fc.constantFrom(1, 100, 101, 103, 104, 106, 107, 108, 125, 133, 9999),
          fc.uint8Array({ maxLength: 60 }),
        )
        .map(([t, rest]) => {
          const b = new Uint8Array(4 + rest.length);
          new DataView(b.buffer).setUint32(0, t, true);
          b.set(rest, 4);
          return b;
        }),
    ),
  });

  test.prop([fc.boolean(), fc.array(packetArb, { maxLength: 12 })])(
    "never throws; every packet is handled or a typed rejection is counted",
    (attached, packets) => {
      const g = new ScriptedGuest({}, { recv: 1728 * 32, send: 6144 * 4, pages: 16 });
      if (attached) g.attach();
      const host = g.netvsp;
      for (const p of packets) {
        if (!rawPacket(g, p.type, p.flags, Math.min(p.offset8, Math.ceil((16 + p.body.length) / 8)), p.body))
          break;
        const before =
          host.counters.rejections.total +
          host.counters.txPackets +
          Object.values(host.counters.control).reduce((a, b) => a + b, 0);
        g.pump();
        g.receive();
        const after =
          host.counters.rejections.total +
          host.counters.txPackets +
          Object.values(host.counters.control).reduce((a, b) => a + b, 0);
        expect(after).toBeGreaterThan(before);
      }
      // A descriptor the ring cannot frame wedges the ring (as in OpenVMM): nothing more to check.
      if (Object.keys(host.counters.rejections.snapshot()).some((r) => r.startsWith("ring-corrupt"))) return;
      // Otherwise still a working device: a fresh INIT is answered (SUCCESS or a refusal, but answered).
      g.sendNvsp({ kind: "init", minProtocolVersion: V.V61, maxProtocolVersion: V.V61 });
      expect(g.exchange().length).toBeGreaterThanOrEqual(1);
    },
  );

  test.prop([
    fc.constantFrom(
      RNDIS_MSG_TYPE.PACKET,
      RNDIS_MSG_TYPE.INIT,
      RNDIS_MSG_TYPE.QUERY,
      RNDIS_MSG_TYPE.SET,
      3,
      6,
      8,
      0x1234,
    ),
    fc.array(fc.oneof(fc.nat(300), fc.constant(0xffff_ffff), fc.nat()), { minLength: 10, maxLength: 10 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.boolean(),
  ])(
    "arbitrary RNDIS bytes in a section or in page buffers are completed, never thrown on",
    (type, fields, tail, bySection) => {
      const g = new ScriptedGuest({}, { recv: 1728 * 32, send: 6144 * 4, pages: 16 });
      g.attach();
      const msg = new Uint8Array(8 + fields.length * 4 + tail.length);
      const dv = new DataView(msg.buffer);
      dv.setUint32(0, type, true);
      fields.forEach((f, i) => {
        dv.setUint32(4 + i * 4, f >>> 0, true);
      });
      msg.set(tail, 8 + fields.length * 4);
      const tid = bySection ? g.sendInSection(1, msg) : g.sendByPages(CONTROL_GPA, msg);
      const got = g.exchange();
      const completion = got.find((p) => p.type === VM_PKT.COMP && p.transId === tid);
      expect(completion).toBeDefined();
      const d = decodeNvspMessage(completion!.data, "host-to-guest");
      expect(d.ok && d.value.kind === "send-rndis-pkt-complete").toBe(true);
    },
  );

  it("keeps NVSP as sent by a hostile guest from reaching past its own bytes", () => {
    const g = new ScriptedGuest();
    g.attach();
    // SEND_RNDIS_PKT with an absurd section index and a GPA-direct descriptor claiming many ranges.
    const nvsp = encodeNvspMessage({
      kind: "send-rndis-pkt",
      channelType: 0,
      sendBufSectionIndex: 0x7fff_ffff,
      sendBufSectionSize: 16,
    });
    g.sendNvsp(nvsp);
    const body = new Uint8Array(8 + 40);
    new DataView(body.buffer).setUint32(4, 1000, true); // rangecount 1000
    body.set(nvsp, 8);
    rawPacket(g, VM_PKT.DATA_USING_GPA_DIRECT, 1, 3, body);
    g.exchange();
    expect(g.netvsp.counters.rejections.snapshot()).toMatchObject({ "send-section-out-of-range": 1 });
    expect(g.netvsp.counters.rejections.total).toBe(2);
  });
});
