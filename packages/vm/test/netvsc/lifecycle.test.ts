import { PageFlag } from "@ivm/memory";
import {
  DMA_RANGE_TAG,
  RECV_COMP_RING_TAG,
  RNDIS_REQUEST_TAG,
  RX_PRIVATE_TAG,
  SECTION_MAP_TAG,
  SKB_TAG,
} from "@ivm/netvsc";
import { describe, expect, it } from "vitest";
import {
  type GuestKind,
  hostVisibleOutsidePool,
  makeWorld,
  mustAdd,
  sendAll,
  txFrame,
  type World,
} from "./world.js";

function traffic(w: World, dev: ReturnType<typeof mustAdd>, n: number): void {
  const frames: [Uint8Array, boolean][] = [];
  for (let i = 0; i < n; i++) frames.push([txFrame(i, i % 3 === 0 ? 30_000 : 700), i % 4 !== 3]);
  frames.push([txFrame(n, 100), false]);
  sendAll(w, dev, frames, 16);
  w.netvsp.queueRx(Array.from({ length: n }, (_, i) => 60 + i));
  w.scheduler.runIdle();
}

function expectNothingLeft(w: World): void {
  expect(hostVisibleOutsidePool(w)).toBe(0);
  // what stays shared is the connection's: its two monitor pages (isolated guests only)
  const monitorVisible = w.conn.monitorPages.filter((m) =>
    w.memory.phys.hasFlag(m.pfn, PageFlag.HostVisible),
  );
  expect(monitorVisible.length).toBe(w.memory.isolated ? 2 : 0);
  expect(w.memory.leakedPages).toBe(0);
  for (const tag of ["netvsc-rx", "netvsc-tx"]) expect(w.memory.buddy.pagesOwnedBy(tag)).toBe(0);
  for (const tag of [RX_PRIVATE_TAG, SECTION_MAP_TAG, SKB_TAG, DMA_RANGE_TAG, RNDIS_REQUEST_TAG]) {
    expect(w.memory.kmalloc.statsFor(tag).live).toBe(0);
  }
  expect(
    w.memory.vmalloc.areas().filter((a) => a.tag.startsWith("netvsc") || a.tag === RECV_COMP_RING_TAG),
  ).toEqual([]);
  expect(w.dma.counters.liveMappings).toBe(0);
  expect(w.memory.checkInvariants()).toEqual([]);
}

describe("netvsc remove (netvsc_remove, 5.17 order)", () => {
  it.each<GuestKind>(["isolated", "plain"])(
    "%s: leaves no host-visible page but the swiotlb pool, nothing leaked",
    (kind) => {
      const w = makeWorld(kind);
      const dev = mustAdd(w);
      traffic(w, dev, 300);
      expect(w.netvsp.counters.txFramesVerified).toBe(301);
      expect(w.received).toHaveLength(300);
      const r = dev.remove();
      expect(r.leakedBuffers).toBe(0);
      expect(w.channel.state).toBe("open-state");
      // The host saw the packet filter cleared and HALT before the revokes and the close.
      expect(w.netvsp.counters.control["rndis-set"]).toBe(3);
      expect(w.netvsp.counters.control["rndis-halt"]).toBe(1);
      expect(w.netvsp.packetFilter).toBe(0);
      expectNothingLeft(w);
      if (kind === "isolated") expect(w.dmaLayer.pool!.stats().slotsUsed).toBe(0);
    },
  );

  it("a failed re-encryption of the receive buffer leaks exactly its 4096 pages (CVE-2024-36911)", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    traffic(w, dev, 50);
    const calls: string[] = [];
    w.hyperv.hypervisor.onHypercall((e) => calls.push(e.owner));
    // Teardown order after close (host >= Windows 10): the ring GPADL (1 call), then the receive
    // buffer (the first of its 9 fails, and set_memory_encrypted stops there), then the send buffer.
    w.hyperv.hypervisor.faults.failCall(2);
    const r = dev.remove();
    expect(calls).toHaveLength(3);
    expect(calls[0]).toBe("vmbus-ring");
    expect(calls[2]).toBe("netvsc-tx");
    expect(dev.stats.errors.get("recv-gpadl-teardown-failed")).toBe(1);
    expect(r.leakedBuffers).toBe(1);
    expect(w.memory.leakedPages).toBe(4096);
    expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(4096);
    // The send buffer was re-encrypted and freed; only the leaked pages may still be visible.
    expect(w.memory.buddy.pagesOwnedBy("netvsc-tx")).toBe(0);
    expect(hostVisibleOutsidePool(w)).toBe(4096);
    expect(w.memory.kmalloc.statsFor(RX_PRIVATE_TAG).live).toBe(0);
    expect(w.dma.counters.liveMappings).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});

describe("netvsc ethtool -G (netvsc_set_ringparam)", () => {
  it("re-attaches with the new counts, clamped to [10, max]", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    expect(dev.ringParam).toEqual({
      rxPending: 9709,
      txPending: 170,
      rxMaxPending: 18_811,
      txMaxPending: 2560,
    });
    const r = dev.setRingParam(2000, 500);
    expect(r.ok).toBe(true);
    expect(dev.sections).toEqual({ recvSize: 1728, recvCount: 2000, sendSize: 6144, sendCount: 500 });
    expect(dev.rxBuffer?.bytes).toBe(3_457_024);
    expect(dev.txBuffer?.bytes).toBe(3_072_000);
    expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(844);
    expect(w.memory.buddy.pagesOwnedBy("netvsc-tx")).toBe(750);
    traffic(w, dev, 100);
    expect(w.netvsp.counters.txFramesVerified).toBe(101);
    expect(w.received).toHaveLength(100);
    // No change: nothing happens.
    const opens = w.server.counters.received.get(3) ?? 0;
    expect(dev.setRingParam(2000, 500).ok).toBe(true);
    expect(w.server.counters.received.get(3) ?? 0).toBe(opens);
    // tx above the maximum is clamped to 2560 sections (15 MiB).
    expect(dev.setRingParam(2000, 100_000).ok).toBe(true);
    expect(dev.sections?.sendCount).toBe(2560);
    dev.remove();
    expectNothingLeft(w);
  });

  it("restores the old counts when the new attach fails (injected allocation failure)", () => {
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    // The next vmalloc() is the new receive buffer's vzalloc.
    w.memory.faults.failCall("vmalloc", 1);
    const r = dev.setRingParam(5000, 300);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe("ENOMEM");
    expect(r.error.reason).toBe("netvsc-rx-alloc-failed");
    expect(dev.ringParam).toMatchObject({ rxPending: 9709, txPending: 170 });
    expect(dev.stats.errors.get("restoring-ringparam-failed")).toBe(0);
    expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(4096);
    expect(dev.queueStopped).toBe(false);
    traffic(w, dev, 100);
    expect(w.netvsp.counters.txFramesVerified).toBe(101);
    expect(w.received).toHaveLength(100);
    dev.remove();
    expectNothingLeft(w);
  });

  it("a host that refuses the smaller buffer makes the attach fail and the old counts come back", () => {
    // rx 10 sections -> 20,480 bytes -> 11 host sections, fewer than the host's 16 control sections.
    const w = makeWorld("isolated");
    const dev = mustAdd(w);
    const r = dev.setRingParam(1, 170);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe("EINVAL");
    expect(dev.ringParam).toMatchObject({ rxPending: 9709, txPending: 170 });
    dev.remove();
    expectNothingLeft(w);
  });
});
