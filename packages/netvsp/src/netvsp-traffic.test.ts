import {
  decodeNvspMessage,
  encodeLabFrame,
  encodeRndisPacket,
  NETVSC_INVALID_INDEX,
  NETVSP_GUEST_MAC,
  NETVSP_HOST_MAC,
  NVSP_STATUS,
  PAGE_SIZE,
  validateXferPagePacket,
  verifyLabFrame,
  XFER_PAGESET_ID,
} from "@ivm/netvsc-protocol";
import { VM_PKT } from "@ivm/vmbus";
import { describe, expect, it } from "vitest";
import { type GuestPacket, ScriptedGuest, ScriptedSections, scriptedPadding } from "../test/test-guest.js";

const SEED = 0x5eed;

function txFrame(seq: number): Uint8Array {
  return encodeLabFrame({
    seq,
    seed: SEED,
    length: 60 + ((seq * 37) % 1455),
    dstMac: NETVSP_HOST_MAC,
    srcMac: NETVSP_GUEST_MAC,
  });
}

function completionStatus(p: GuestPacket): number | null {
  const d = decodeNvspMessage(p.data, "host-to-guest");
  if (!d.ok || d.value.kind !== "send-rndis-pkt-complete") throw new Error("not an RNDIS completion");
  return d.value.status;
}

describe("netvsp: guest-to-host frames", () => {
  it("verifies 10,000 frames sent through send sections, batched as netvsc_send batches them", () => {
    const g = new ScriptedGuest();
    g.attach();
    const sections = new ScriptedSections(32);
    const inFlight = new Map<bigint, number>();
    let statusFail = 0;
    const reap = (): void => {
      for (const p of g.exchange()) {
        const s = inFlight.get(p.transId);
        expect(p.type).toBe(VM_PKT.COMP);
        if (s === undefined) throw new Error(`completion for unknown tid ${p.transId}`);
        if (completionStatus(p) !== NVSP_STATUS.SUCCESS) statusFail++;
        inFlight.delete(p.transId);
        expect(sections.free(s).ok).toBe(true);
      }
    };
    let seq = 0;
    let bytes = 0;
    while (seq < 10_000) {
      const idx = sections.allocate();
      if (idx === NETVSC_INVALID_INDEX) {
        reap();
        continue;
      }
      // Batch up to 3 packets in the section, each padded to pkt_align = 1 << 3 (scriptedPadding).
      const parts: Uint8Array[] = [];
      let used = 0;
      for (let k = 0; k < 3 && seq < 10_000; k++) {
        const f = txFrame(seq);
        const msg = encodeRndisPacket({ data: f });
        const pad = scriptedPadding(msg.length, 8, k < 2);
        if (used + msg.length + pad > 6144) break;
        const padded = new Uint8Array(msg.length + pad);
        padded.set(msg);
        new DataView(padded.buffer).setUint32(4, padded.length, true); // msg_len includes the padding
        parts.push(padded);
        used += padded.length;
        bytes += f.length;
        seq++;
      }
      const section = new Uint8Array(used);
      let at = 0;
      for (const p of parts) {
        section.set(p, at);
        at += p.length;
      }
      let tid = g.sendInSection(idx, section);
      while (tid === null) {
        reap();
        tid = g.sendInSection(idx, section);
      }
      inFlight.set(tid, idx);
    }
    while (inFlight.size > 0) reap();
    const c = g.netvsp.counters;
    expect(statusFail).toBe(0);
    expect(c.txFrames).toBe(10_000);
    expect(c.txFramesVerified).toBe(10_000);
    expect(c.txBadFrames).toBe(0);
    expect(c.txBytes).toBe(bytes);
    expect(c.txPacketsFailed).toBe(0);
    expect(c.rejections.total).toBe(0);
  });

  it("verifies 10,000 frames sent as GPA-direct page buffers (header and frame split, pages crossed)", () => {
    const g = new ScriptedGuest({}, { pages: 64 });
    g.attach();
    // A bounce-pool-like area: 16 slots of two pages, freed on completion.
    const slots = new ScriptedSections(16);
    const inFlight = new Map<bigint, number>();
    const reap = (): void => {
      for (const p of g.exchange()) {
        const s = inFlight.get(p.transId);
        if (s === undefined) throw new Error("unknown completion");
        expect(completionStatus(p)).toBe(NVSP_STATUS.SUCCESS);
        inFlight.delete(p.transId);
        slots.free(s);
      }
    };
    for (let seq = 0; seq < 10_000; ) {
      const slot = slots.allocate();
      if (slot === NETVSC_INVALID_INDEX) {
        reap();
        continue;
      }
      const msg = encodeRndisPacket({ data: txFrame(seq) });
      // Header in one place, frame in another, and the frame starting 100 bytes before a page end:
      // the RNDIS message is the concatenation of the page-buffer ranges.
      const base = (8 + slot * 3) * PAGE_SIZE;
      const head = g.memory.place(base, msg.subarray(0, 44));
      const body = g.memory.place(base + 2 * PAGE_SIZE - 100, msg.subarray(44));
      let tid = g.sendPageBuffers([...head, ...body], 0);
      while (tid === null) {
        reap();
        tid = g.sendPageBuffers([...head, ...body], 0);
      }
      inFlight.set(tid, slot);
      seq++;
    }
    while (inFlight.size > 0) reap();
    const c = g.netvsp.counters;
    expect(c.txFramesVerified).toBe(10_000);
    expect(c.txBadFrames).toBe(0);
    expect(c.rejections.total).toBe(0);
  });

  it("counts a corrupted frame as bad without failing the packet", () => {
    const g = new ScriptedGuest();
    g.attach();
    const msg = encodeRndisPacket({ data: txFrame(1) });
    msg[msg.length - 1]! ^= 0xff;
    const tid = g.sendInSection(0, msg);
    const got = g.exchange();
    expect(got.map((p) => p.transId)).toEqual([tid]);
    expect(completionStatus(got[0]!)).toBe(NVSP_STATUS.SUCCESS);
    expect(g.netvsp.counters.txBadFrames).toBe(1);
    expect(g.netvsp.counters.rejections.get("tx-frame-bad")).toBe(1);
  });

  it("fails a send section outside the send buffer (try_subrange) and a page the host may not see", () => {
    const g = new ScriptedGuest();
    g.attach();
    const host = g.netvsp;
    const msg = encodeRndisPacket({ data: txFrame(2) });
    const t1 = g.sendNvsp({
      kind: "send-rndis-pkt",
      channelType: 0,
      sendBufSectionIndex: 32,
      sendBufSectionSize: msg.length,
    });
    const t2 = g.sendNvsp({
      kind: "send-rndis-pkt",
      channelType: 0,
      sendBufSectionIndex: 0xffff_fffe,
      sendBufSectionSize: 0xffff_ffff,
    });
    g.memory.visible[20] = 0;
    const t3 = g.sendByPages(20 * PAGE_SIZE + 8, msg);
    // A PFN far outside guest RAM, and one past 2^53 / 4096.
    const t4 = g.sendPageBuffers([{ pfn: 0x10_0000_0000, offset: 0, len: 64 }], 0);
    const t5 = g.sendPageBuffers([{ pfn: 2 ** 52, offset: 0, len: 64 }], 0);
    const got = g.exchange();
    expect(got.map((p) => p.transId)).toEqual([t1, t2, t3, t4, t5]);
    expect(got.map(completionStatus)).toEqual(Array(5).fill(NVSP_STATUS.FAIL));
    expect(host.counters.rejections.snapshot()).toEqual({
      "send-section-out-of-range": 2,
      "gpa-direct-access-refused": 2,
      "gpa-direct-pfn-out-of-range": 1,
    });
    expect(host.counters.txPacketsFailed).toBe(5);
  });
});

describe("netvsp: host-to-guest frames", () => {
  function rxRound(g: ScriptedGuest, complete = true): { frames: Uint8Array[]; tids: bigint[] } {
    const frames: Uint8Array[] = [];
    const tids: bigint[] = [];
    for (const p of g.exchange()) {
      expect(p.type).toBe(VM_PKT.DATA_USING_XFER_PAGES);
      const { messages, bad } = g.readXfer(p);
      expect(bad).toBe(0);
      for (const m of messages) {
        if (m.kind !== "packet") throw new Error("not a data packet");
        frames.push(m.data.slice());
      }
      tids.push(p.transId);
      if (complete) expect(g.completeRx(p.transId)).toBe(true);
    }
    return { frames, tids };
  }

  it("writes frames into free sections, sends transfer pages, and releases sections on completion", () => {
    const g = new ScriptedGuest({ rxSeed: 42 });
    g.attach();
    const host = g.netvsp;
    const sizes = Array.from({ length: 3000 }, (_, i) => 60 + ((i * 131) % 1600));
    host.queueRx(sizes);
    const seen: number[] = [];
    while (seen.length < sizes.length) {
      const { frames } = rxRound(g);
      for (const f of frames) {
        const v = verifyLabFrame(f);
        expect(v.ok).toBe(true);
        if (v.ok) seen.push(v.seq);
        expect(f.subarray(0, 6)).toEqual(NETVSP_GUEST_MAC);
      }
    }
    g.pump();
    expect(seen).toEqual(sizes.map((_, i) => i));
    const c = host.counters;
    const total = sizes.reduce((a, b) => a + b, 0);
    expect([c.rxFramesSent, c.rxFramesCompleted, c.rxBytesSent, c.rxBytesCompleted]).toEqual([
      3000,
      3000,
      total,
      total,
    ]);
    expect(host.recvBuffer?.sectionsInUse).toBe(0);
    expect(host.outstandingRx).toBe(0);
    expect(c.rejections.total).toBe(0);
  });

  it("is deterministic for a seed", () => {
    const run = (seed: number): Uint8Array[] => {
      const g = new ScriptedGuest({ rxSeed: seed });
      g.attach();
      g.netvsp.queueRx([100, 200, 300]);
      return rxRound(g).frames;
    };
    expect(run(9)).toEqual(run(9));
    expect(run(9)).not.toEqual(run(10));
  });

  it("describes each frame with a range inside one section, pageset 0xcafe, a fresh transaction id", () => {
    const g = new ScriptedGuest({ rxFramesPerPacket: 4 });
    g.attach();
    g.netvsp.queueRx([64, 1684, 500, 70, 90]);
    const got = g.exchange();
    expect(got).toHaveLength(2);
    const tids = new Set<bigint>();
    for (const p of got) {
      const v = validateXferPagePacket(p.bytes, { recvBufSize: g.recvBuf.size, recvSectionSize: 1728 });
      if (!v.ok) throw v.error;
      expect(v.value.pagesetId).toBe(XFER_PAGESET_ID);
      expect(v.value.status).toBe(NVSP_STATUS.SUCCESS);
      for (const r of v.value.ranges) expect(r.offset % 1728).toBe(0);
      tids.add(v.value.transactionId);
    }
    expect(got.map((p) => g.readXfer(p).messages.length)).toEqual([4, 1]);
    expect(tids.size).toBe(2);
    expect(g.netvsp.recvBuffer?.sectionsInUse).toBe(5);
  });

  it("waits for completions when every data section is with the guest", () => {
    const g = new ScriptedGuest({}, { recv: 1728 * 24 });
    g.attach();
    const host = g.netvsp;
    host.queueRx(Array(20).fill(100));
    const first = rxRound(g, false);
    expect(first.frames).toHaveLength(8); // 24 sections, 16 kept for control
    expect(host.rxPending).toBe(12);
    expect(rxRound(g).frames).toHaveLength(0);
    for (const t of first.tids) g.completeRx(t);
    const second = rxRound(g);
    expect(second.frames).toHaveLength(8);
  });

  it("rejects and counts completions for unknown or already completed transaction ids", () => {
    const g = new ScriptedGuest();
    g.attach();
    const host = g.netvsp;
    host.queueRx([100, 100]);
    const { tids } = rxRound(g);
    g.pump();
    expect(host.recvBuffer?.sectionsInUse).toBe(0);
    g.completeRx(tids[0]!); // duplicate
    g.completeRx(0xdead_beefn); // never issued
    g.completeRx(0n);
    g.pump();
    expect(host.counters.rejections.snapshot()).toEqual({
      "rx-completion-duplicate": 1,
      "rx-completion-unknown": 2,
    });
    expect(host.counters.rxFramesCompleted).toBe(2);
  });

  it("holds frames until RNDIS is up and a packet filter is set", () => {
    const g = new ScriptedGuest();
    g.netvsp.queueRx([100]);
    expect(g.exchange()).toEqual([]);
    g.attach();
    expect(rxRound(g).frames).toHaveLength(1);
  });

  it("retries when the guest's inbound ring is full", () => {
    const g = new ScriptedGuest({}, { ring: 64 * 1024, inRing: 1024 });
    g.attach();
    const host = g.netvsp;
    host.queueRx(Array(200).fill(200));
    let got = 0;
    for (let i = 0; i < 200 && got < 200; i++) got += rxRound(g).frames.length;
    expect(got).toBe(200);
    expect(host.counters.ringFullRetries).toBeGreaterThan(0);
    expect(host.counters.rejections.total).toBe(0);
  });

  it("keeps completions in order behind a full ring and stops reading meanwhile", () => {
    const g = new ScriptedGuest({}, { ring: 64 * 1024, inRing: 1024 });
    g.attach();
    const tids: bigint[] = [];
    const msg = encodeRndisPacket({ data: txFrame(0) });
    for (let i = 0; i < 60; i++) tids.push(g.sendInSection(0, msg)!);
    const seen: bigint[] = [];
    for (let i = 0; i < 100 && seen.length < 60; i++) for (const p of g.exchange()) seen.push(p.transId);
    expect(seen).toEqual(tids);
    expect(g.netvsp.counters.ringFullRetries).toBeGreaterThan(0);
  });
});
