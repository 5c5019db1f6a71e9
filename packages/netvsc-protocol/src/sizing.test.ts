import { describe, expect, it } from "vitest";
import { NVSP_PROTOCOL_VERSION } from "./nvsp.js";
import {
  clampRingParam,
  NETVSC_DEFAULT_RX,
  NETVSC_DEFAULT_TX,
  NETVSC_RECV_SECTION_SIZE,
  NETVSC_SEND_SECTION_SIZE,
  PAGE_SIZE,
  recvBufferBytes,
  recvCompletionRing,
  recvCompSlotAvail,
  ringParamMax,
  sendBufferBytes,
  shouldStopQueue,
  shouldWakeQueue,
  validateRecvBufComplete,
  validateSendBufComplete,
} from "./sizing.js";

const V61 = NVSP_PROTOCOL_VERSION.V61;

describe("default buffer sizes (netvsc_init_buf)", () => {
  it("9709 receive sections of 1728 round up to 16,777,216 bytes (4096 pages)", () => {
    expect(NETVSC_DEFAULT_RX).toBe(9709);
    expect(9709 * 1728).toBe(16_777_152);
    const rx = recvBufferBytes(NETVSC_DEFAULT_RX, NETVSC_RECV_SECTION_SIZE, V61);
    expect([rx, rx / PAGE_SIZE]).toEqual([16_777_216, 4096]);
  });

  it("170 send sections of 6144 are exactly 1,044,480 bytes (255 pages)", () => {
    expect(NETVSC_DEFAULT_TX).toBe(170);
    const tx = sendBufferBytes(NETVSC_DEFAULT_TX, NETVSC_SEND_SECTION_SIZE);
    expect([tx, tx / PAGE_SIZE]).toEqual([1_044_480, 255]);
  });

  it("hosts at NVSP <= v2 get at most 15 MiB of receive buffer", () => {
    expect(recvBufferBytes(18811, 1728, NVSP_PROTOCOL_VERSION.V2)).toBe(15 * 1024 * 1024);
    expect(recvBufferBytes(18811, 1728, NVSP_PROTOCOL_VERSION.V4)).toBe(32_505_856);
  });
});

describe("ethtool ring parameters", () => {
  it("max pending: 18,811 rx (9102 legacy) and 2560 tx with the default section sizes", () => {
    expect(ringParamMax(V61, 1728, 6144)).toEqual({ rxMaxPending: 18811, txMaxPending: 2560 });
    expect(ringParamMax(NVSP_PROTOCOL_VERSION.V2, 1728, 6144).rxMaxPending).toBe(9102);
  });

  it("requests are clamped to [10, max]", () => {
    expect(clampRingParam(0, 18811)).toBe(10);
    expect(clampRingParam(10, 18811)).toBe(10);
    expect(clampRingParam(100_000, 18811)).toBe(18811);
    expect(clampRingParam(5, 3)).toBe(3); // clamp = min(max(v, lo), hi)
  });
});

describe("SEND_RECV_BUF_COMPLETE validation", () => {
  const buf = 16_777_216;
  const msg = (subAllocSize: number, numSubAllocs: number, over: object = {}) => ({
    status: 1,
    numSections: 1,
    section: { offset: 0, subAllocSize, numSubAllocs, endOffset: 0 },
    ...over,
  });
  const reason = (r: ReturnType<typeof validateRecvBufComplete>): string | null =>
    r.ok ? null : r.error.reason;

  it("accepts the default layout", () => {
    expect(validateRecvBufComplete(msg(1728, 9709), buf)).toEqual({
      ok: true,
      value: { sectionSize: 1728, sectionCount: 9709 },
    });
  });

  it("section size 67 rejected, 68 accepted", () => {
    expect(reason(validateRecvBufComplete(msg(67, 1), buf))).toBe("recv-section-size-too-small");
    expect(reason(validateRecvBufComplete(msg(68, 1), buf))).toBeNull();
  });

  it("size x count == buffer accepted, one section more rejected", () => {
    expect(reason(validateRecvBufComplete(msg(4096, 4096), buf))).toBeNull();
    expect(reason(validateRecvBufComplete(msg(4096, 4097), buf))).toBe("recv-sections-exceed-buffer");
  });

  it("a product that wraps in 32 bits is still rejected (the kernel multiplies in u64)", () => {
    // (2^32 - 1)^2 mod 2^32 == 1: a u32 multiply would have let this through.
    expect(Math.imul(0xffffffff, 0xffffffff) >>> 0).toBe(1);
    expect(reason(validateRecvBufComplete(msg(0xffffffff, 0xffffffff), buf))).toBe(
      "recv-sections-exceed-buffer",
    );
    expect(reason(validateRecvBufComplete(msg(0x10000, 0x10000), buf))).toBe("recv-sections-exceed-buffer");
  });

  it("status, section count and offset are checked first; all errors are EINVAL", () => {
    const fail = validateRecvBufComplete(msg(1728, 1, { status: 2 }), buf);
    expect(reason(fail)).toBe("recv-buf-status-not-success");
    expect(!fail.ok && fail.error.errno).toBe(-22);
    expect(reason(validateRecvBufComplete(msg(1728, 1, { numSections: 2 }), buf))).toBe(
      "recv-buf-section-count-invalid",
    );
    expect(reason(validateRecvBufComplete(msg(1728, 1, { numSections: 0 }), buf))).toBe(
      "recv-buf-section-count-invalid",
    );
    const off = { section: { offset: 8, subAllocSize: 1728, numSubAllocs: 1, endOffset: 0 } };
    expect(reason(validateRecvBufComplete(msg(1728, 1, off), buf))).toBe("recv-buf-section-offset-invalid");
  });
});

describe("SEND_SEND_BUF_COMPLETE validation", () => {
  it("section size 67 rejected, 68 accepted; count = buf_size / section_size", () => {
    expect(validateSendBufComplete({ status: 1, sectionSize: 67 }, 1_044_480)).toMatchObject({
      ok: false,
      error: { reason: "send-section-size-too-small", code: "EINVAL" },
    });
    expect(validateSendBufComplete({ status: 1, sectionSize: 68 }, 1_044_480)).toEqual({
      ok: true,
      value: { sectionSize: 68, sectionCount: 15360 },
    });
    expect(validateSendBufComplete({ status: 1, sectionSize: 6144 }, 1_044_480)).toMatchObject({
      value: { sectionCount: 170 },
    });
    expect(validateSendBufComplete({ status: 1, sectionSize: 4096 }, 1_044_480)).toMatchObject({
      value: { sectionCount: 255 },
    });
  });

  it("a non-success status is rejected", () => {
    expect(validateSendBufComplete({ status: 2, sectionSize: 6144 }, 1_044_480)).toMatchObject({
      ok: false,
      error: { reason: "send-buf-status-not-success" },
    });
  });
});

describe("receive completion ring and queue hysteresis", () => {
  it("recv_section_cnt + 1 entries of 16 bytes: 9710 x 16 = 155,360", () => {
    expect(recvCompletionRing(9709)).toEqual({ entries: 9710, bytes: 155_360 });
  });

  it("one slot always stays empty", () => {
    expect(recvCompSlotAvail(9710, 0, 0)).toEqual({ filled: 0, avail: 9709 });
    expect(recvCompSlotAvail(9710, 5, 4)).toEqual({ filled: 9709, avail: 0 });
    expect(recvCompSlotAvail(10, 8, 2)).toEqual({ filled: 4, avail: 5 });
  });

  it("stop below 10 % free; wake above 20 % or when nothing is outstanding", () => {
    expect([shouldStopQueue(9), shouldStopQueue(10)]).toEqual([true, false]);
    expect([shouldWakeQueue(20, 3), shouldWakeQueue(21, 3), shouldWakeQueue(0, 0)]).toEqual([
      false,
      true,
      true,
    ]);
  });
});
