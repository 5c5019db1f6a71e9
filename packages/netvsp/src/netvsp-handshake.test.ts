import {
  decodeNvspMessage,
  encodeRndisHalt,
  encodeRndisInit,
  encodeRndisQuery,
  encodeRndisSet,
  NDIS_OFFLOAD_SIZE,
  NETVSP_HOST_MAC,
  NVSP_PROTOCOL_VERSION,
  NVSP_STATUS,
  RNDIS_OID,
  RNDIS_STATUS,
  validateRecvBufComplete,
  validateSendBufComplete,
} from "@ivm/netvsc-protocol";
import { VM_PKT } from "@ivm/vmbus";
import { describe, expect, it } from "vitest";
import { type GuestPacket, RECV_GPADL, ScriptedGuest, SEND_GPADL } from "../test/test-guest.js";

const V = NVSP_PROTOCOL_VERSION;

function onlyCompletion(got: GuestPacket[], tid: bigint | null): GuestPacket {
  expect(got).toHaveLength(1);
  const p = got[0]!;
  expect(p.type).toBe(VM_PKT.COMP);
  expect(p.transId).toBe(tid);
  return p;
}

function nvsp(p: GuestPacket) {
  const d = decodeNvspMessage(p.data, "host-to-guest");
  if (!d.ok) throw d.error;
  return d.value;
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return b;
}

function infoU32(info: Uint8Array | null): number {
  if (info === null || info.length !== 4) throw new Error("no u32 info");
  return new DataView(info.buffer, info.byteOffset, 4).getUint32(0, true);
}

describe("netvsp: NVSP handshake as a Linux guest runs it", () => {
  it("answers INIT, NDIS_CONFIG, NDIS_VER, SEND_RECV_BUF and SEND_SEND_BUF with the exact replies", () => {
    const g = new ScriptedGuest();
    const host = g.netvsp;
    expect(host.phase).toBe("version");

    // netvsc_connect_vsp offers min = max = v6.1 first.
    const t1 = g.sendNvsp({ kind: "init", minProtocolVersion: V.V61, maxProtocolVersion: V.V61 });
    const init = onlyCompletion(g.exchange(), t1);
    // The reply was built before the packet size grew: 28 bytes of nvsp_message, padded to 8.
    expect(init.bytes.length).toBe(48);
    expect(Array.from(init.data.subarray(0, 16))).toEqual([
      2, 0, 0, 0, 0x01, 0x00, 0x06, 0x00, 34, 0, 0, 0, 1, 0, 0, 0,
    ]);
    expect(nvsp(init)).toEqual({
      kind: "init-complete",
      negotiatedProtocolVersion: V.V61,
      maxMdlChainLength: 34,
      status: NVSP_STATUS.SUCCESS,
    });
    expect(host.version).toBe(V.V61);
    expect(host.phase).toBe("init");

    // NDIS_CONFIG and NDIS_VER go without COMPLETION_REQUESTED: no reply at all.
    g.sendNvsp({ kind: "send-ndis-config", mtu: 1514, capabilities: 0x88n }, false);
    g.sendNvsp({ kind: "send-ndis-version", ndisMajor: 6, ndisMinor: 0x1e }, false);
    expect(g.exchange()).toEqual([]);
    expect(host.ndisVersion).toEqual({ major: 6, minor: 0x1e });

    const t4 = g.sendNvsp({ kind: "send-recv-buf", gpadlHandle: RECV_GPADL, id: 0xcafe });
    const rb = onlyCompletion(g.exchange(), t4);
    expect(rb.bytes.length).toBe(16 + 40); // padded to PACKET_SIZE_V61 from here on
    const rbMsg = nvsp(rb);
    const count = Math.floor(g.recvBuf.size / 1728);
    expect(rbMsg).toEqual({
      kind: "send-recv-buf-complete",
      status: NVSP_STATUS.SUCCESS,
      numSections: 1,
      section: { offset: 0, subAllocSize: 1728, numSubAllocs: count, endOffset: 1728 * count },
    });
    if (rbMsg.kind !== "send-recv-buf-complete") throw new Error("kind");
    expect(validateRecvBufComplete(rbMsg, g.recvBuf.size)).toEqual({
      ok: true,
      value: { sectionSize: 1728, sectionCount: count },
    });
    expect(host.phase).toBe("ready");

    const t5 = g.sendNvsp({ kind: "send-send-buf", gpadlHandle: SEND_GPADL, id: 0 });
    const sb = nvsp(onlyCompletion(g.exchange(), t5));
    expect(sb).toEqual({ kind: "send-send-buf-complete", status: NVSP_STATUS.SUCCESS, sectionSize: 6144 });
    if (sb.kind !== "send-send-buf-complete") throw new Error("kind");
    expect(validateSendBufComplete(sb, g.sendBuf.size)).toEqual({
      ok: true,
      value: { sectionSize: 6144, sectionCount: 32 },
    });
    expect(host.counters.control).toEqual({
      init: 1,
      "send-ndis-config": 1,
      "send-ndis-version": 1,
      "send-recv-buf": 1,
      "send-send-buf": 1,
    });
    expect(host.counters.rejections.total).toBe(0);
  });

  it("answers the RNDIS requests of rndis_filter_device_add through control sections", () => {
    const g = new ScriptedGuest();
    g.sendNvsp({ kind: "init", minProtocolVersion: V.V61, maxProtocolVersion: V.V61 });
    g.sendNvsp({ kind: "send-ndis-config", mtu: 1514, capabilities: 0n }, false);
    g.sendNvsp({ kind: "send-ndis-version", ndisMajor: 6, ndisMinor: 0x1e }, false);
    g.sendNvsp({ kind: "send-recv-buf", gpadlHandle: RECV_GPADL, id: 0xcafe });
    g.sendNvsp({ kind: "send-send-buf", gpadlHandle: SEND_GPADL, id: 0 });
    g.exchange();
    const host = g.netvsp;

    const init = g.rndisRequest(encodeRndisInit({ requestId: 1 }));
    expect(init.sendStatus).toBe(NVSP_STATUS.SUCCESS);
    expect(init.response).toMatchObject({
      kind: "init-complete",
      msgLen: 52,
      requestId: 1,
      status: RNDIS_STATUS.SUCCESS,
      majorVersion: 1,
      minorVersion: 0,
      deviceFlags: 1,
      medium: 0,
      maxPacketsPerMessage: 8,
      maxTransferSize: 0xefff_ffff,
      packetAlignmentFactor: 3,
    });
    expect(host.rndisState).toBe("operational");

    const mac = g.rndisRequest(encodeRndisQuery({ requestId: 2, oid: RNDIS_OID.ETH_PERMANENT_ADDRESS }));
    expect(mac.response).toMatchObject({ kind: "query-complete", requestId: 2, status: 0, infoBufLen: 6 });
    if (mac.response.kind !== "query-complete") throw new Error("kind");
    expect(mac.response.info).toEqual(NETVSP_HOST_MAC);

    const frame = g.rndisRequest(encodeRndisQuery({ requestId: 3, oid: RNDIS_OID.GEN_MAXIMUM_FRAME_SIZE }));
    if (frame.response.kind !== "query-complete") throw new Error("kind");
    expect(infoU32(frame.response.info)).toBe(1500);

    const caps = g.rndisRequest(
      encodeRndisQuery({
        requestId: 4,
        oid: RNDIS_OID.TCP_OFFLOAD_HARDWARE_CAPABILITIES,
        info: new Uint8Array(NDIS_OFFLOAD_SIZE),
      }),
    );
    if (caps.response.kind !== "query-complete") throw new Error("kind");
    const ci = caps.response.info!;
    // rndis_query_hwcaps: type NDIS_OBJECT_TYPE_OFFLOAD, revision >= 1, 112 <= size <= length.
    expect(ci.length).toBe(NDIS_OFFLOAD_SIZE);
    expect([ci[0], ci[1], ci[2]! | (ci[3]! << 8)]).toEqual([0xa7, 3, NDIS_OFFLOAD_SIZE]);

    const offload = g.rndisRequest(
      encodeRndisSet({ requestId: 5, oid: RNDIS_OID.TCP_OFFLOAD_PARAMETERS, info: new Uint8Array(24) }),
    );
    expect(offload.response).toMatchObject({
      kind: "set-complete",
      requestId: 5,
      status: RNDIS_STATUS.SUCCESS,
    });

    const link = g.rndisRequest(encodeRndisQuery({ requestId: 6, oid: RNDIS_OID.GEN_MEDIA_CONNECT_STATUS }));
    if (link.response.kind !== "query-complete") throw new Error("kind");
    expect(infoU32(link.response.info)).toBe(0); // connected

    const speed = g.rndisRequest(encodeRndisQuery({ requestId: 7, oid: RNDIS_OID.GEN_LINK_SPEED }));
    if (speed.response.kind !== "query-complete") throw new Error("kind");
    expect(infoU32(speed.response.info)).toBe(100_000_000); // 10 Gbit/s in 100 bps units

    const rss = g.rndisRequest(
      encodeRndisQuery({ requestId: 8, oid: RNDIS_OID.GEN_RECEIVE_SCALE_CAPABILITIES }),
    );
    if (rss.response.kind !== "query-complete") throw new Error("kind");
    const ri = rss.response.info!;
    expect(ri[0]).toBe(0x88);
    expect(new DataView(ri.buffer, ri.byteOffset).getUint32(12, true)).toBe(1); // one receive queue

    const unknown = g.rndisRequest(encodeRndisQuery({ requestId: 9, oid: 0x0001_0199 }));
    expect(unknown.response).toMatchObject({
      kind: "query-complete",
      status: RNDIS_STATUS.NOT_SUPPORTED,
      info: null,
    });

    expect(host.rxReady).toBe(false);
    const filter = g.rndisRequest(
      encodeRndisSet({ requestId: 10, oid: RNDIS_OID.GEN_CURRENT_PACKET_FILTER, info: u32(0x9) }),
    );
    expect(filter.response).toMatchObject({
      kind: "set-complete",
      requestId: 10,
      status: RNDIS_STATUS.SUCCESS,
    });
    expect(host.packetFilter).toBe(0x9);
    expect(host.rxReady).toBe(true);

    // HALT has no response: only the NVSP completion.
    const tid = g.sendByPages(0x2000, encodeRndisHalt({ requestId: 11 }), 1);
    const got = g.exchange();
    expect(got.map((p) => [p.type, p.transId])).toEqual([[VM_PKT.COMP, tid]]);
    expect(host.rndisState).toBe("halted");

    expect(host.counters.control).toMatchObject({
      "rndis-init": 1,
      "rndis-query": 7,
      "rndis-set": 2,
      "rndis-halt": 1,
    });
    expect(host.counters.controlResponsesSent).toBe(10);
    expect(host.counters.rejections.snapshot()).toEqual({ "rndis-oid-unknown": 1 });
    // Every control section came back.
    expect(host.recvBuffer?.sectionsInUse).toBe(0);
    expect(host.outstandingRx).toBe(0);
  });

  it("picks the guest's highest version inside the host's range", () => {
    const g = new ScriptedGuest({ maxVersion: V.V5 });
    const tid = g.sendNvsp({ kind: "init", minProtocolVersion: V.V2, maxProtocolVersion: V.V61 });
    expect(nvsp(onlyCompletion(g.exchange(), tid))).toMatchObject({
      negotiatedProtocolVersion: V.V5,
      status: NVSP_STATUS.SUCCESS,
    });
    expect(g.netvsp.version).toBe(V.V5);
  });

  it("refuses an isolated guest offering less than 6.1, then accepts 6.1", () => {
    const g = new ScriptedGuest({ isolated: true });
    for (const v of [V.V6, V.V5, V.V4]) {
      const tid = g.sendNvsp({ kind: "init", minProtocolVersion: v, maxProtocolVersion: v });
      expect(nvsp(onlyCompletion(g.exchange(), tid))).toEqual({
        kind: "init-complete",
        negotiatedProtocolVersion: 0xffff_ffff,
        maxMdlChainLength: 34,
        status: NVSP_STATUS.NONE,
      });
    }
    expect(g.netvsp.phase).toBe("version");
    expect(g.netvsp.counters.rejections.get("nvsp-version-isolated")).toBe(3);
    const tid = g.sendNvsp({ kind: "init", minProtocolVersion: V.V61, maxProtocolVersion: V.V61 });
    expect(nvsp(onlyCompletion(g.exchange(), tid))).toMatchObject({ status: NVSP_STATUS.SUCCESS });
  });

  it("answers a GPADL lookup failure with FAIL and stays usable", () => {
    const g = new ScriptedGuest();
    g.sendNvsp({ kind: "init", minProtocolVersion: V.V61, maxProtocolVersion: V.V61 });
    g.exchange();
    const bad = g.sendNvsp({ kind: "send-recv-buf", gpadlHandle: 0xdead, id: 0xcafe });
    const sendBad = g.sendNvsp({ kind: "send-send-buf", gpadlHandle: 0xbeef, id: 0 });
    const got = g.exchange();
    expect(got.map((p) => p.transId)).toEqual([bad, sendBad]);
    expect(nvsp(got[0]!)).toMatchObject({ kind: "send-recv-buf-complete", status: NVSP_STATUS.FAIL });
    expect(nvsp(got[1]!)).toMatchObject({ kind: "send-send-buf-complete", status: NVSP_STATUS.FAIL });
    expect(g.netvsp.counters.rejections.get("gpadl-unknown")).toBe(2);
    // The right handle still works afterwards.
    const good = g.sendNvsp({ kind: "send-recv-buf", gpadlHandle: RECV_GPADL, id: 0xcafe });
    expect(nvsp(onlyCompletion(g.exchange(), good))).toMatchObject({ status: NVSP_STATUS.SUCCESS });
  });

  it("refuses a second receive buffer and a buffer too small for one data section", () => {
    const g = new ScriptedGuest({}, { recv: 1728 * 16 });
    g.sendNvsp({ kind: "init", minProtocolVersion: V.V61, maxProtocolVersion: V.V61 });
    g.exchange();
    const t = g.sendNvsp({ kind: "send-recv-buf", gpadlHandle: RECV_GPADL, id: 0xcafe });
    expect(nvsp(onlyCompletion(g.exchange(), t))).toMatchObject({ status: NVSP_STATUS.FAIL });
    expect(g.netvsp.counters.rejections.get("recv-buffer-too-small")).toBe(1);
  });

  it("unmaps on REVOKE_RECV_BUF / REVOKE_SEND_BUF and completes when asked", () => {
    const g = new ScriptedGuest();
    g.attach();
    const host = g.netvsp;
    expect(host.recvBuffer).not.toBeNull();
    const t1 = g.sendNvsp({ kind: "revoke-recv-buf", id: 0xcafe });
    const t2 = g.sendNvsp({ kind: "revoke-send-buf", id: 0 }, false);
    const got = g.exchange();
    expect(got.map((p) => [p.type, p.transId, p.data.length])).toEqual([[VM_PKT.COMP, t1, 0]]);
    expect(t2).not.toBeNull();
    expect(host.recvBuffer).toBeNull();
    expect(host.sendBufferMapped).toBe(false);
    expect(host.counters.rejections.total).toBe(0);
  });

  it("ignores NVSP before INIT and counts it", () => {
    const g = new ScriptedGuest();
    g.sendNvsp({ kind: "send-recv-buf", gpadlHandle: RECV_GPADL, id: 0xcafe });
    expect(g.exchange()).toEqual([]);
    expect(g.netvsp.counters.rejections.get("nvsp-before-init")).toBe(1);
  });
});
