import { NETVSC_RING_BYTES_DEFAULT, RECV_COMP_RING_TAG, RX_PRIVATE_TAG, SECTION_MAP_TAG } from "@ivm/netvsc";
import { NETVSP_HOST_MAC, NVSP_PROTOCOL_VERSION } from "@ivm/netvsc-protocol";
import { CHANNELMSG, gpadlMessageCount } from "@ivm/vmbus";
import { describe, expect, it } from "vitest";
import { addDevice, hostVisibleOutsidePool, makeWorld, mustAdd, type World } from "./world.js";

const RING_PAGES = (2 * NETVSC_RING_BYTES_DEFAULT) / 4096;

function gpadlMessages(w: World): number {
  return w.conn.posted(CHANNELMSG.GPADL_HEADER) + w.conn.posted(CHANNELMSG.GPADL_BODY);
}

describe("netvsc device add (netvsc_probe)", () => {
  it("isolated, strategy (1), default sizes: 4096 + 255 pages, 9 + 1 hypercalls, 147 + 10 GPADL messages, two mappings each", () => {
    const w = makeWorld("isolated");
    const byOwner = new Map<string, number>();
    w.hyperv.hypervisor.onHypercall((e) => byOwner.set(e.owner, (byOwner.get(e.owner) ?? 0) + 1));
    const msgsBefore = gpadlMessages(w);
    const dev = mustAdd(w);

    expect(dev.nvspVersion).toBe(NVSP_PROTOCOL_VERSION.V61);
    expect(dev.sections).toEqual({ recvSize: 1728, recvCount: 9709, sendSize: 6144, sendCount: 170 });
    expect(dev.rxBuffer?.bytes).toBe(16_777_216);
    expect(dev.txBuffer?.bytes).toBe(1_044_480);
    expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(4096);
    expect(w.memory.buddy.pagesOwnedBy("netvsc-tx")).toBe(255);

    // Visibility hypercalls, attributed by the hypervisor to the owner of the pages (510 PFNs each).
    expect(byOwner.get("netvsc-rx")).toBe(9);
    expect(byOwner.get("netvsc-tx")).toBe(1);
    // The two rings (129 pages each) are one more; nothing else was converted.
    expect([...byOwner.values()].reduce((a, b) => a + b, 0)).toBe(11);

    // GPADL messages, counted as the connection posted them: RX 147, TX 10, the ring GPADL the rest.
    expect(gpadlMessageCount(4096)).toBe(147);
    expect(gpadlMessageCount(255)).toBe(10);
    expect(gpadlMessages(w) - msgsBefore).toBe(147 + 10 + gpadlMessageCount(RING_PAGES));

    // Strategy (1): the vmalloc area plus its vmap_pfn alias above vTOM, for each buffer.
    const areas = (prefix: string) => w.memory.vmalloc.areas().filter((a) => a.tag.startsWith(prefix));
    expect(areas("netvsc-rx")).toHaveLength(2);
    expect(areas("netvsc-tx")).toHaveLength(2);

    // Private memory the driver measured: 64 receive copies of the host's section size, the completion
    // ring of 9710 x 16 bytes, the 3-long section bitmap.
    expect(w.memory.kmalloc.statsFor(RX_PRIVATE_TAG)).toMatchObject({
      live: 64 * 1728,
      liveFootprint: 64 * 2048,
    });
    const ring = w.memory.vmalloc.areas().filter((a) => a.tag === RECV_COMP_RING_TAG);
    expect(ring).toHaveLength(1);
    expect(ring[0]!.size).toBeGreaterThanOrEqual(9710 * 16);
    expect(w.memory.kmalloc.statsFor(SECTION_MAP_TAG).live).toBe(24);

    // RNDIS: INIT, MTU, MAC, offloads (query + set), link, speed, RSS, then the packet filter.
    expect(dev.mac).toEqual(NETVSP_HOST_MAC);
    expect(w.netvsp.rndisState).toBe("operational");
    expect(w.netvsp.packetFilter).toBe(0xd);
    expect(w.netvsp.counters.control["rndis-query"]).toBe(6);
    expect(w.netvsp.counters.control["rndis-set"]).toBe(2);
    // Control requests went by page buffers through swiotlb, and came back unmapped.
    expect(dev.stats.pageBufferMaps).toBeGreaterThanOrEqual(9);
    expect(w.dma.counters.liveMappings).toBe(0);
    expect(dev.stats.linkUp).toBe(true);
    expect(w.netvsp.counters.rejections.total).toBe(0);
    expect(dev.stats.rejectedCompletions.total).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
    dev.remove();
  });

  it("not isolated: no hypercalls, one mapping per buffer, control messages not bounced", () => {
    const w = makeWorld("plain");
    const msgsBefore = gpadlMessages(w);
    const dev = mustAdd(w);
    expect(w.hyperv.hypervisor.counters.hypercalls).toBe(0);
    expect(gpadlMessages(w) - msgsBefore).toBe(147 + 10 + gpadlMessageCount(RING_PAGES));
    expect(w.memory.vmalloc.areas().filter((a) => a.tag.startsWith("netvsc-rx"))).toHaveLength(1);
    expect(dev.stats.pageBufferMaps).toBe(0);
    expect(w.dma.counters.maps).toBe(0);
    expect(dev.stats.pageBufferSends).toBeGreaterThanOrEqual(9);
    expect(dev.remove().leakedBuffers).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("refuses an NVSP version below 6.1 in an isolated guest (EPROTO) and undoes everything", () => {
    // A host that does not know about isolation and stops at v6.
    const w = makeWorld("isolated", { isolated: false, maxVersion: NVSP_PROTOCOL_VERSION.V6 });
    const r = addDevice(w);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe("EPROTO");
    expect(r.error.reason).toBe("nvsp-version-isolated");
    expect(w.channel.state).toBe("open-state");
    expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
    expect(hostVisibleOutsidePool(w)).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("the same host is fine for a guest that is not isolated (v6 negotiated)", () => {
    const w = makeWorld("plain", { maxVersion: NVSP_PROTOCOL_VERSION.V6 });
    const dev = mustAdd(w);
    expect(dev.nvspVersion).toBe(NVSP_PROTOCOL_VERSION.V6);
    dev.remove();
  });

  it.each(["section-size-67", "count-overflow", "offset-nonzero", "two-sections"] as const)(
    "refuses a SEND_RECV_BUF_COMPLETE with %s (EINVAL), revokes and tears down",
    (tamper) => {
      const w = makeWorld("isolated", { adversary: { recvBufComplete: tamper } });
      const r = addDevice(w);
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.error.code).toBe("EINVAL");
      // The kernel owes a revoke only once it stored the host's section count.
      const revoked = w.netvsp.counters.control["revoke-recv-buf"] ?? 0;
      expect(revoked).toBe(tamper === "section-size-67" || tamper === "count-overflow" ? 1 : 0);
      expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
      expect(w.memory.kmalloc.statsFor(RX_PRIVATE_TAG).live).toBe(0);
      expect(hostVisibleOutsidePool(w)).toBe(0);
      expect(w.memory.leakedPages).toBe(0);
      expect(w.memory.checkInvariants()).toEqual([]);
    },
  );

  it("an allocation failure at any step of the add unwinds: only pages of unknown visibility stay (leaked)", () => {
    for (const site of ["vmalloc", "kmalloc"] as const) {
      for (let k = 1; k <= 8; k++) {
        const w = makeWorld("isolated");
        w.memory.faults.failCall(site, k);
        const r = addDevice(w);
        if (r.ok) {
          r.value.remove();
        } else {
          expect(r.error.code).toBe("ENOMEM");
        }
        // A failed set_memory_decrypted (its PFN array not allocated) leaves the state unknown: leaked.
        const held = w.memory.buddy.pagesOwnedBy("netvsc-rx") + w.memory.buddy.pagesOwnedBy("netvsc-tx");
        expect(held).toBeLessThanOrEqual(w.memory.leakedPages);
        expect(hostVisibleOutsidePool(w)).toBeLessThanOrEqual(w.memory.leakedPages);
        expect(w.memory.kmalloc.statsFor(RX_PRIVATE_TAG).live).toBe(0);
        expect(w.dma.counters.liveMappings).toBe(0);
        expect(w.memory.checkInvariants()).toEqual([]);
      }
    }
  });

  it("a GPADL whose decryption failed is leaked, never freed (CVE-2024-36912), and the add fails", () => {
    const w = makeWorld("isolated");
    // Call 1 is the ring GPADL's conversion; call 2 the first of the receive buffer's nine.
    w.hyperv.hypervisor.faults.failCall(2);
    const r = addDevice(w);
    expect(r.ok).toBe(false);
    expect(w.memory.leakedPages).toBe(4096);
    expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(4096);
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});
