import { fc, test } from "@fast-check/vitest";
import {
  encodeLabFrame,
  LAB_FRAME_HEADER_SIZE,
  LAB_FRAME_STREAM_BYTES,
  NETVSC_INVALID_INDEX,
  verifyLabFrame,
  writeLabFrame,
} from "@ivm/netvsc-protocol";
import { describe, expect, it } from "vitest";
import { FlatGpadl, FlatGuestMemory } from "../test/test-guest.js";
import { fitsInView, RecvSections } from "./host-buffer.js";
import { gatherTxBytes, walkRndisMessages } from "./tx-verifier.js";

describe("RecvSections (RxBuffers)", () => {
  it("hands out control and data sections separately and rejects double use", () => {
    const s = new RecvSections(20, 4);
    expect([s.allocateControl(), s.allocateControl()]).toEqual([0, 1]);
    expect([s.allocateData(), s.allocateData()]).toEqual([4, 5]);
    expect(s.claim(5)).toMatchObject({ ok: false, error: { reason: "sub-allocation-in-use" } });
    expect(s.claim(6)).toEqual({ ok: true, value: 6 });
    expect(s.release(6).ok).toBe(true);
    expect(s.release(6)).toMatchObject({ ok: false, error: { reason: "sub-allocation-not-in-use" } });
    expect(s.release(20)).toMatchObject({ ok: false, error: { reason: "sub-allocation-out-of-range" } });
    expect(s.inUse).toBe(4);
  });

  it("free is release without a result: null, or the reason release would give, and nothing changes then", () => {
    const s = new RecvSections(8, 2);
    const d = s.allocateData();
    expect(s.free(d)).toBeNull();
    expect(s.isInUse(d)).toBe(false);
    expect(s.free(d)).toBe("sub-allocation-not-in-use");
    expect(s.free(8)).toBe("sub-allocation-out-of-range");
    expect(s.free(-1)).toBe("sub-allocation-out-of-range");
    expect(s.inUse).toBe(0);
    expect(s.freeData).toBe(6);
  });

  it("runs out and recovers", () => {
    const s = new RecvSections(6, 2);
    const got = [s.allocateData(), s.allocateData(), s.allocateData(), s.allocateData(), s.allocateData()];
    expect(got).toEqual([2, 3, 4, 5, -1]);
    s.release(3);
    expect(s.allocateData()).toBe(3);
    expect([s.allocateControl(), s.allocateControl(), s.allocateControl()]).toEqual([0, 1, -1]);
  });
});

describe("lab frames", () => {
  it("round-trips and catches any flipped byte", () => {
    const f = encodeLabFrame({ seq: 77, seed: 3, length: 333 });
    expect(verifyLabFrame(f)).toEqual({ ok: true, seq: 77 });
    for (const at of [12, 18, 22, 26, 200, 332]) {
      const bad = f.slice();
      bad[at]! ^= 1;
      expect(verifyLabFrame(bad).ok).toBe(false);
    }
    expect(verifyLabFrame(f.subarray(0, 300))).toEqual({ ok: false, reason: "frame-length-mismatch" });
  });

  it("rejects a payload of another seed or another frame, and checks frames longer than the stream", () => {
    const f = encodeLabFrame({ seq: 5, seed: 9, length: 1500 });
    const otherSeq = encodeLabFrame({ seq: 6, seed: 9, length: 1500 });
    const spliced = f.slice();
    spliced.set(otherSeq.subarray(LAB_FRAME_HEADER_SIZE), LAB_FRAME_HEADER_SIZE);
    expect(verifyLabFrame(spliced)).toEqual({ ok: false, reason: "frame-checksum-mismatch" });
    const reseeded = f.slice();
    reseeded[22]! ^= 0x80; // the seed field: the payload no longer matches that seed's stream
    expect(verifyLabFrame(reseeded).ok).toBe(false);
    const long = encodeLabFrame({ seq: 1, seed: 2, length: LAB_FRAME_STREAM_BYTES * 2 + 100 });
    expect(verifyLabFrame(long)).toEqual({ ok: true, seq: 1 });
    long[LAB_FRAME_STREAM_BYTES + 7]! ^= 1;
    expect(verifyLabFrame(long).ok).toBe(false);
  });

  test.prop([fc.nat(), fc.integer(), fc.integer({ min: LAB_FRAME_HEADER_SIZE, max: 2000 }), fc.nat(7)])(
    "is valid at any length and buffer offset",
    (seq, seed, length, shift) => {
      const buf = new Uint8Array(length + shift);
      writeLabFrame(buf.subarray(shift), { seq, seed });
      expect(verifyLabFrame(buf.subarray(shift))).toEqual({ ok: true, seq: seq >>> 0 });
    },
  );
});

describe("gatherTxBytes / walkRndisMessages", () => {
  it("bounds-checks the section against the whole send buffer", () => {
    const view = new FlatGpadl(6144 * 2);
    expect(fitsInView(view, 6144, 6144)).toBe(true);
    expect(fitsInView(view, 6144, 6145)).toBe(false);
    expect(fitsInView(view, 2 ** 60, 1)).toBe(false);
    const src = { sendBuffer: view, sendSectionSize: 6144, guestMemory: undefined, maxBytes: 1 << 18 };
    expect(gatherTxBytes(1, 6144, [], src).ok).toBe(true);
    expect(gatherTxBytes(2, 1, [], src)).toMatchObject({
      ok: false,
      error: { reason: "send-section-out-of-range" },
    });
    expect(gatherTxBytes(NETVSC_INVALID_INDEX, 0, [], src)).toMatchObject({
      ok: false,
      error: { reason: "tx-message-empty" },
    });
    const ranges = [{ len: 10, offset: 0, pfns: Float64Array.of(1) }];
    expect(gatherTxBytes(NETVSC_INVALID_INDEX, 0, ranges, src)).toMatchObject({
      ok: false,
      error: { reason: "gpa-direct-unavailable" },
    });
  });

  it("coalesces consecutive pages and refuses too much", () => {
    const mem = new FlatGuestMemory(8);
    mem.bytes.fill(7, 4096, 4096 * 4);
    const src = { sendBuffer: undefined, sendSectionSize: 6144, guestMemory: mem, maxBytes: 9000 };
    const r = gatherTxBytes(
      NETVSC_INVALID_INDEX,
      0,
      [{ len: 8192, offset: 100, pfns: Float64Array.of(1, 2, 3) }],
      src,
    );
    expect(r.ok && r.value.length === 8192 && r.value.every((b) => b === 7)).toBe(true);
    const big = gatherTxBytes(
      NETVSC_INVALID_INDEX,
      0,
      [{ len: 9001, offset: 0, pfns: Float64Array.of(1, 2, 3) }],
      src,
    );
    expect(big).toMatchObject({ ok: false, error: { reason: "tx-message-too-long" } });
  });

  it("walks batched messages and stops at a bad msg_len", () => {
    const bytes = new Uint8Array(40);
    const dv = new DataView(bytes.buffer);
    dv.setUint32(0, 1, true);
    dv.setUint32(4, 16, true);
    dv.setUint32(16, 2, true);
    dv.setUint32(20, 24, true);
    const seen: number[] = [];
    expect(walkRndisMessages(bytes, (t) => seen.push(t) > 0)).toEqual({ ok: true, value: 2 });
    expect(seen).toEqual([1, 2]);
    // With a views list, a second walk of the same bytes hands out the same message views.
    const views: Uint8Array[] = [];
    const got: Uint8Array[] = [];
    walkRndisMessages(bytes, (_t, m) => got.push(m) > 0, views);
    walkRndisMessages(bytes, (_t, m) => got.push(m) > 0, views);
    expect(got.map((m) => [m.byteOffset, m.length])).toEqual([
      [0, 16],
      [16, 24],
      [0, 16],
      [16, 24],
    ]);
    expect(got[2]).toBe(got[0]);
    expect(got[3]).toBe(got[1]);
    // Other bytes at the same places are other views.
    const copy = bytes.slice();
    walkRndisMessages(copy, (_t, m) => got.push(m) > 0, views);
    expect(got[4]!.buffer).toBe(copy.buffer);
    dv.setUint32(20, 25, true);
    expect(walkRndisMessages(bytes, () => true)).toMatchObject({
      ok: false,
      error: { reason: "rndis-msg-len-invalid" },
    });
  });
});
