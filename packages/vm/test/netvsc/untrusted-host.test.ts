import { encodeXferPagePacket, verifyLabFrame } from "@ivm/netvsc-protocol";
import { describe, expect, it } from "vitest";
import { makeWorld, mustAdd, sendAll, txFrame } from "./world.js";

describe("netvsc against a misbehaving host", () => {
  it("fails a transfer-page range outside the buffer, counts it, delivers the other ranges", () => {
    const w = makeWorld("isolated", { rxFramesPerPacket: 3 });
    const dev = mustAdd(w);
    w.netvsp.adversary = { xferRange: "offset-past-buffer" };
    w.netvsp.queueRx([100, 200, 300]);
    w.scheduler.runIdle();
    expect(dev.stats.rxDrops.get("xfer-range-outside-buffer")).toBe(1);
    // The first range was refused; the second and third went up intact.
    expect(w.received.map((f) => f.length)).toEqual([200, 300]);
    expect(w.received.every((f) => verifyLabFrame(f).ok)).toBe(true);
    // The packet was completed once, with NVSP_STAT_FAIL, so the host got all three sections back.
    expect(w.netvsp.counters.rxCompletionsFailed).toBe(1);
    expect(w.netvsp.outstandingRx).toBe(0);

    w.netvsp.adversary = { xferRange: "length-past-section" };
    w.netvsp.queueRx([400, 500, 600]);
    w.scheduler.runIdle();
    expect(dev.stats.rxDrops.get("xfer-range-exceeds-section")).toBe(1);
    expect(w.received.map((f) => f.length)).toEqual([200, 300, 500, 600]);

    w.netvsp.adversary = undefined;
    w.netvsp.queueRx([700, 800, 900]);
    w.scheduler.runIdle();
    expect(w.received).toHaveLength(7);
    dev.remove();
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("rejects forged and duplicate completions without acting on them (I6)", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    w.netvsp.forgeTxCompletion(0n);
    w.netvsp.forgeTxCompletion(5n); // inside the table, but no request is outstanding there
    w.netvsp.forgeTxCompletion(1n << 40n);
    w.scheduler.runIdle();
    const rejected = dev.stats.rejectedCompletions;
    expect(rejected.get("zero-id")).toBe(1);
    expect(rejected.get("not-outstanding")).toBe(1);
    expect(rejected.get("out-of-range")).toBe(1);
    expect(dev.stats.txPackets).toBe(0);
    expect(dev.stats.errors.total).toBe(0);

    // The host completes every send twice: the second completion of each id is refused, and no
    // section is released twice.
    w.netvsp.adversary = { duplicateTxCompletions: true };
    const frames: [Uint8Array, boolean][] = [];
    for (let i = 0; i < 200; i++) frames.push([txFrame(i, i % 2 === 0 ? 300 : 9000), false]);
    sendAll(w, dev, frames);
    w.scheduler.runIdle();
    expect(dev.stats.txPackets).toBe(200);
    expect(rejected.get("not-outstanding")).toBe(201);
    expect(dev.stats.errors.get("send-section-not-in-use")).toBe(0);
    expect(w.netvsp.counters.txFramesVerified).toBe(200);
    expect(w.dma.counters.liveMappings).toBe(0);
    dev.remove();
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("drops a malformed data message with rndis_filter_receive's reason, PPI areas walked or refused", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    const recv = w.netvsp.recvBuffer!;
    /** One 200-byte frame whose RNDIS message has the u32 at `at` set to `value` before the guest reads it. */
    const receiveWith = (at: number, value: number): void => {
      w.hostPaused = true;
      w.netvsp.queueRx([200]);
      w.netvsp.poll();
      // Every section gets the field: the host's frame is in one of them, at its start.
      const word = new Uint8Array(4);
      new DataView(word.buffer).setUint32(0, value, true);
      for (let s = 0; s < recv.sectionCount; s++) w.netvsp.rewriteRecvBuffer(s * recv.sectionSize + at, word);
      dev.poll();
      w.hostPaused = false;
      w.scheduler.runIdle();
    };
    const drops = dev.stats.rxDrops;
    receiveWith(4, 7); // msg_len below the header
    expect(drops.get("rndis-msg-len-invalid")).toBe(1);
    receiveWith(8, 200 + 36); // data_offset at the end of the range
    expect(drops.get("rndis-data-offset-invalid")).toBe(1);
    receiveWith(12, 201); // data_len one past the range
    expect(drops.get("rndis-data-overflow")).toBe(1);
    receiveWith(0, 0x99); // no such message type
    expect(drops.get("rndis-unhandled-type")).toBe(1);
    expect(w.received).toHaveLength(0);
    receiveWith(28, 1); // a per-packet-info offset inside rndis_packet: the frame still goes up
    expect(drops.get("ppi-offset-invalid")).toBe(1);
    expect(w.received).toHaveLength(1);
    expect(verifyLabFrame(w.received[0]!).ok).toBe(true);
    expect(drops.total).toBe(5);
    // Each range was failed (or, for the PPIs, completed) and every section went back to the host.
    expect(w.netvsp.counters.rxCompletionsFailed).toBe(4);
    expect(w.netvsp.outstandingRx).toBe(0);
    dev.remove();
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("a receive buffer rewritten after the guest's turn changes nothing already delivered (copy before parse)", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    w.netvsp.adversary = { rxRewrite: { offset: 0, bytes: new Uint8Array(64).fill(0xee) } };
    w.netvsp.queueRx([500, 600, 700]);
    w.scheduler.runIdle();
    expect(w.received).toHaveLength(3);
    expect(w.received.every((f) => verifyLabFrame(f).ok)).toBe(true);
    dev.remove();
  });

  it("a host that never answers SEND_RECV_BUF ends the add with ETIMEDOUT and nothing allocated", () => {
    const w = makeWorld("isolated", {
      adversary: { interceptor: (m) => (m.kind === "send-recv-buf-complete" ? null : undefined) },
    });
    const r = (() => {
      try {
        return mustAdd(w);
      } catch (e) {
        return e as Error & { code?: string };
      }
    })();
    expect(r instanceof Error && r.code).toBe("ETIMEDOUT");
    expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("loses receive completions when the completion ring is full (Recv_comp full buf), retries the rest", () => {
    // 10 receive sections: 11 host sections, so a completion ring of 12 slots; a 4 KiB outbound ring.
    const w = makeWorld("isolated", { controlSections: 2 });
    const dev = mustAdd(w, { rxSections: 10, ringBytes: 2 * 4096 });
    expect(dev.sections?.recvCount).toBe(11);
    // The host stops reading the guest's ring but keeps sending transfer pages (without ranges), far
    // more than it has sections: each poll queues 11 completions and loses the rest (the flush inside
    // enq_receive_complete needs more than 64 queued), and the 4 KiB outbound ring fills.
    const s = dev.stats;
    const sent0 = s.rxCompletionsSent; // the RNDIS control responses of the add
    w.hostPaused = true;
    let injected = 0;
    while (injected < 1500) {
      const pkt = encodeXferPagePacket({ transactionId: 1_000_000n + BigInt(injected), ranges: [] });
      if (w.host.send(pkt).ok) injected++;
      else dev.poll();
    }
    dev.poll();
    expect(s.rxCompBusy).toBeGreaterThan(0);
    expect(s.rxCompletionsSent - sent0).toBe(127);
    expect(s.rxCompletionsLost).toBeGreaterThan(1000);
    // Every packet's completion was sent, is still queued (at most 11), or was lost.
    expect(s.rxCompletionsSent - sent0 + s.rxCompletionsLost + 11).toBe(injected);
    const sentBefore = s.rxCompletionsSent;
    w.hostPaused = false;
    w.scheduler.runIdle();
    expect(s.rxCompletionsSent - sent0 + s.rxCompletionsLost).toBe(injected);
    expect(s.rxCompletionsSent).toBeGreaterThan(sentBefore);
    dev.remove();
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("a rescinded channel: remove still revokes nothing it cannot, tears down, and frees everything", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    w.server.rescind(w.host.relid);
    w.scheduler.runIdle();
    expect(w.channel.rescinded).toBe(true);
    expect(dev.send(txFrame(0, 100))).toBe("dropped");
    const r = dev.remove();
    expect(r.leakedBuffers).toBe(0);
    expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
    expect(w.memory.leakedPages).toBe(0);
    expect(w.dma.counters.liveMappings).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});

describe("invariant guards", () => {
  it("I3 and I6: rewrites between reads and duplicate completions leave both guard counters at 0", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    const sharedBefore = w.memory.mmu.sharedReads;
    w.netvsp.adversary = {
      duplicateTxCompletions: true,
      rxRewrite: { offset: 8, bytes: new Uint8Array(32).fill(0x5a) },
    };
    w.netvsp.queueRx([300, 400]);
    sendAll(w, dev, [[txFrame(0, 300), false]]);
    w.scheduler.runIdle();
    expect(w.received.every((f) => verifyLabFrame(f).ok)).toBe(true);
    // The guest fetched shared bytes (ring, receive buffer), but parsed none of them in place.
    expect(w.memory.mmu.sharedReads).toBeGreaterThan(sharedBefore);
    expect(dev.stats.rxRangeCopies).toBeGreaterThanOrEqual(2);
    expect(dev.stats.parsedFromShared).toBe(0);
    expect(dev.stats.staleCompletions).toBe(0);
    expect(dev.stats.rejectedCompletions.get("not-outstanding")).toBe(1);
    dev.remove();
  });
});

describe("a ring the guest cannot finish reading", () => {
  it("a zero len8 descriptor ends the poll at the budget instead of spinning in NAPI for ever", () => {
    // A low round limit: the host keeps the guest busy for ever, and every wait runs into it.
    const w = makeWorld("isolated", {}, 192 * 2 ** 20, 300);
    const dev = mustAdd(w, { ringBytes: 4 * 4096 });
    // len8 = 0 is clamped to "everything available", and the trailer step then runs past the write
    // index: from there the reader sees a ring full of zero-work packets.
    expect(w.host.send(new Uint8Array(16)).ok).toBe(true);
    expect(dev.poll()).toBe(0);
    expect(w.channel.inbound!.counters.clamps["len-too-short"]).toBeGreaterThan(0);
    // The scheduler's round limit bounds the rest; the guest's invariants hold and remove still works.
    w.scheduler.runIdle();
    expect(dev.remove().leakedBuffers).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
    expect(w.memory.mmu.totalFaults).toBe(0);
  });
});

describe("drop accounting", () => {
  it("a batch that cannot be sent counts one drop per frame in it, not one per batch", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    // Three small frames wait in one send section (xmit_more), then the channel goes away under them.
    for (let i = 0; i < 3; i++) expect(dev.send(txFrame(i, 200), { xmitMore: true })).toBe("sent");
    w.server.rescind(w.host.relid);
    w.scheduler.runIdle();
    // The fourth frame joins the batch; sending the batch fails: all four are lost and counted.
    expect(dev.send(txFrame(3, 200))).toBe("dropped");
    expect(dev.stats.txDrops.get("batch-send-failed")).toBe(3);
    expect(dev.stats.txDrops.total).toBe(4);
    expect(dev.stats.txPackets).toBe(0);
    dev.remove();
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("a batch still waiting for its last frame at remove counts every frame in it", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    for (let i = 0; i < 3; i++) expect(dev.send(txFrame(i, 200), { xmitMore: true })).toBe("sent");
    dev.remove();
    expect(dev.stats.txDrops.get("tx-batch-dropped-at-remove")).toBe(3);
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});
