import { DMA_RANGE_TAG, maxCopyablePacket, RNDIS_DATA_HEADER_SIZE, SKB_TAG } from "@ivm/netvsc";
import { verifyLabFrame } from "@ivm/netvsc-protocol";
import { RX_RNDIS_OVERHEAD } from "@ivm/netvsp";
import { describe, expect, it } from "vitest";
import { type GuestKind, makeWorld, mustAdd, sendAll, txFrame } from "./world.js";

/** xorshift32: deterministic sizes without a dependency. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

const KINDS: readonly GuestKind[] = ["isolated", "plain"];
/** The largest frame that still goes into a 6144-byte section: pktlen + 8 < 6144, pktlen = 44 + frame. */
const SECTION_FRAME_MAX = maxCopyablePacket(6144) - RNDIS_DATA_HEADER_SIZE;

describe("netvsc send path (netvsc_send)", () => {
  it("a 6135-byte RNDIS packet is the largest that takes a section", () => {
    expect(maxCopyablePacket(6144)).toBe(6135);
    expect(SECTION_FRAME_MAX).toBe(6091);
  });

  it.each(KINDS)(
    "%s: 10,000 frames of 64 B to 64 KiB arrive intact, small by sections, large by page buffers",
    (kind) => {
      const w = makeWorld(kind);
      const dev = mustAdd(w);
      const rand = rng(0x5eed);
      const frames: [Uint8Array, boolean][] = [];
      let small = 0;
      let bytes = 0;
      for (let seq = 0; seq < 10_000; seq++) {
        // Three in four fit a section; bursts of up to 8 announce more with xmit_more.
        const len =
          rand() < 0.75
            ? 64 + Math.floor(rand() * (SECTION_FRAME_MAX - 63))
            : SECTION_FRAME_MAX + 1 + Math.floor(rand() * (65536 - SECTION_FRAME_MAX));
        if (len <= SECTION_FRAME_MAX) small++;
        bytes += len;
        frames.push([txFrame(seq, len), seq % 8 !== 7 && seq !== 9_999]);
      }
      const toDevice0 = w.dmaLayer.pool?.stats().bytesToDevice ?? 0;
      const bounced0 = dev.stats.bytesBounced;
      sendAll(w, dev, frames, 32);
      w.scheduler.runIdle();

      const host = w.netvsp.counters;
      expect(host.txFramesVerified).toBe(10_000);
      expect(host.txBadFrames).toBe(0);
      expect(host.rejections.total).toBe(0);
      expect(dev.stats.txPackets).toBe(10_000);
      expect(dev.stats.txBytes).toBe(bytes);
      expect(dev.stats.txDrops.total).toBe(0);
      expect(dev.outstandingSends).toBe(0);
      // Every small frame was copied into a section unless none was free (tx_send_full); large ones went
      // by page buffers unless their RNDIS header joined a pending batch (cp_partial).
      expect(dev.stats.sendSectionCopies + dev.stats.txSendFull).toBeGreaterThanOrEqual(small);
      expect(dev.stats.sendSectionCopies).toBeGreaterThan(small / 2);
      expect(dev.stats.pageBufferSends).toBeGreaterThanOrEqual(10_000 - small);
      if (kind === "isolated") {
        // Every page-buffer byte was bounced through swiotlb, and every mapping is gone again.
        expect(dev.stats.bytesBounced).toBeGreaterThan(bytes / 2);
        // The driver's count of bounced bytes is the pool's own measurement.
        expect(dev.stats.bytesBounced - bounced0).toBe(w.dmaLayer.pool!.stats().bytesToDevice - toDevice0);
        expect(w.dmaLayer.pool!.stats().slotsUsed).toBe(0);
      } else {
        expect(dev.stats.bytesBounced).toBe(0);
      }
      expect(w.dma.counters.liveMappings).toBe(0);
      expect(w.memory.kmalloc.statsFor(SKB_TAG).live).toBe(0);
      expect(w.memory.kmalloc.statsFor(DMA_RANGE_TAG).live).toBe(0);
      expect(w.memory.checkInvariants()).toEqual([]);
      dev.remove();
    },
  );

  it("stops the queue when the ring runs out and wakes it when completions come back", () => {
    const w = makeWorld("isolated");
    // A small ring (7 data pages) fills long before the sections or the swiotlb pool do.
    const dev = mustAdd(w, { ringBytes: 8 * 4096 });
    w.hostPaused = true;
    let sent = 0;
    let verdict: string = "sent";
    while (sent < 10_000) {
      verdict = dev.send(txFrame(sent, 200));
      if (verdict !== "sent") break;
      sent++;
    }
    expect(verdict).toBe("busy");
    expect(dev.queueStopped).toBe(true);
    expect(dev.stats.stopQueue).toBe(1);
    // A stopped queue is not asked to transmit: busy again, nothing touched.
    expect(dev.send(txFrame(sent, 200))).toBe("busy");
    w.hostPaused = false;
    w.scheduler.runIdle();
    expect(dev.queueStopped).toBe(false);
    expect(dev.stats.wakeQueue).toBe(1);
    expect(w.netvsp.counters.txFramesVerified).toBe(sent);
    sendAll(w, dev, [[txFrame(sent, 200), false]]);
    w.scheduler.runIdle();
    expect(w.netvsp.counters.txFramesVerified).toBe(sent + 1);
    dev.remove();
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("a failed DMA mapping with nothing outstanding wakes the queue and drops the frame (ENOSPC)", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    w.memory.faults.failCall("swiotlb", 1);
    expect(dev.send(txFrame(0, 20_000))).toBe("dropped");
    expect(dev.stats.txDrops.get("tx-no-space")).toBe(1);
    expect(dev.stats.dmaMapErrors).toBe(1);
    expect(dev.stats.stopQueue).toBe(1);
    expect(dev.stats.wakeQueue).toBe(1);
    expect(dev.queueStopped).toBe(false);
    expect(w.dma.counters.liveMappings).toBe(0);
    sendAll(w, dev, [[txFrame(1, 20_000), false]]);
    w.scheduler.runIdle();
    expect(w.netvsp.counters.txFramesVerified).toBe(1);
    dev.remove();
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});

describe("netvsc receive path (netvsc_receive)", () => {
  it.each(KINDS)("%s: 10,000 frames up to a full section are delivered intact and completed", (kind) => {
    const w = makeWorld(kind);
    const dev = mustAdd(w);
    const maxFrame = 1728 - RX_RNDIS_OVERHEAD;
    const rand = rng(0xfeed);
    const sizes: number[] = [];
    for (let i = 0; i < 10_000; i++)
      sizes.push(i % 10 === 0 ? maxFrame : 26 + Math.floor(rand() * (maxFrame - 25)));
    const rxBefore = w.netvsp.counters.rxFramesCompleted;
    for (let i = 0; i < sizes.length; i += 2000) {
      w.netvsp.queueRx(sizes.slice(i, i + 2000));
      w.scheduler.runIdle();
    }
    expect(w.received).toHaveLength(10_000);
    w.received.forEach((f, i) => {
      expect(f.length).toBe(sizes[i]);
      const v = verifyLabFrame(f);
      expect(v.ok && v.seq).toBe(i);
    });
    expect(dev.stats.rxPackets).toBe(10_000);
    expect(dev.stats.rxDrops.total).toBe(0);
    expect(w.netvsp.counters.rxFramesCompleted - rxBefore).toBe(10_000);
    expect(w.netvsp.outstandingRx).toBe(0);
    expect(dev.stats.rxCompletionsLost).toBe(0);
    // Each range was copied once into the private buffer before it was parsed.
    expect(dev.stats.rxRangeCopies).toBeGreaterThanOrEqual(10_000);
    dev.remove();
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});
