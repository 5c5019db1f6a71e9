import { getProfile, PROFILE_NAMES, withHardened } from "@ivm/kernel";
import {
  NETVSC_FINDING,
  NETVSC_MAX_PKT_SIZE,
  NETVSC_RING_BYTES_DEFAULT,
  netvscRqstorSize,
} from "@ivm/netvsc";
import { NVSP_MSG_TYPE, verifyLabFrame, XFER_PAGESET_ID } from "@ivm/netvsc-protocol";
import { REQUESTOR_TAG, VM_PKT } from "@ivm/vmbus";
import { describe, expect, it, vi } from "vitest";
import { makeWorld, mustAdd, sendAll, txFrame, type World } from "./world.js";

// Stated here, independently of the profile table.
const WITHOUT_DONT_FREE = ["5.17", "6.1", "6.4", "6.6"];
const WITH_DONT_FREE = ["6.1.91", "6.6.31", "6.9", "6.12", "6.18"];
const MPB_SENDS = ["6.18"]; // 4f98616b855c, 6.15
const XFER_HEADER_32 = ["5.17", "6.1", "6.1.91", "6.4"]; // ranges[1] until bb9b0e46b84c (6.6)

function world(name: string): World {
  return makeWorld("isolated", {}, 192 * 2 ** 20, 20_000, getProfile(name));
}

function ids(w: World): string[] {
  return w.conn.kernel.findings.list().map((f) => f.id);
}

describe("netvsc's request table and packet buffer (every profile)", () => {
  it("netvsc_rqstor_size: ring/56 + ring/16 = 42,459 for the default ring; NETVSC_MAX_PKT_SIZE 4,624", () => {
    expect(NETVSC_RING_BYTES_DEFAULT).toBe(528_384);
    expect(netvscRqstorSize(NETVSC_RING_BYTES_DEFAULT)).toBe(9_435 + 33_024);
    expect(NETVSC_MAX_PKT_SIZE).toBe(4_624);
  });

  it.each(PROFILE_NAMES)(
    "%s: the channel opens with that table, counted as kernel memory, and that packet buffer",
    (name) => {
      const w = world(name);
      const dev = mustAdd(w);
      expect(w.channel.requestTable?.size).toBe(42_459);
      expect(w.memory.kmalloc.statsFor(REQUESTOR_TAG).live).toBe(42_459 * 8 + 664 * 8);
      expect(w.channel.inbound?.pktBufferSize).toBe(4_624);
      dev.remove();
      expect(w.memory.kmalloc.statsFor(REQUESTOR_TAG).live).toBe(0);
    },
  );
});

describe("a re-encryption failure of the receive buffer at remove", () => {
  const run = (name: string) => {
    const w = world(name);
    const dev = mustAdd(w);
    w.hyperv.hypervisor.faults.failCall(2); // after the ring GPADL's one batch: the receive buffer's first
    const r = dev.remove();
    return { w, dev, r };
  };

  it.each(WITHOUT_DONT_FREE)(
    "%s: free_netvsc_device vfrees it while host-visible — CVE-2024-36911",
    (name) => {
      const { w, dev, r } = run(name);
      expect(ids(w)).toEqual(["CVE-2024-36912", NETVSC_FINDING.bufferFreedVisible]);
      const f = w.conn.kernel.findings.list()[1]!;
      expect(f).toMatchObject({ profile: name, invariant: "I1", where: "free_netvsc_device" });
      expect(f.what).toContain("receive buffer (4096 pages)");
      expect(dev.stats.buffersFreedWhileVisible).toBe(1);
      // kernel-exact: vfree'd as the kernel does, every page still host-visible (the first of the 9
      // re-encryption batches failed), back in the allocator and attributed to the finding
      expect(r.leakedBuffers).toBe(0);
      expect(w.memory.leakedPages).toBe(0);
      expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(0);
      expect(w.memory.buddy.freedWhileVisiblePages).toBe(4096);
      expect(w.memory.buddy.freedWhileVisibleLog.every((e) => e.reason === "free_netvsc_device")).toBe(true);
      expect(w.memory.checkInvariants()).toEqual([]);
    },
  );

  it.each(WITHOUT_DONT_FREE)("%s hardened: reported the same; the model leaks the buffer instead", (name) => {
    const w = makeWorld("isolated", {}, 192 * 2 ** 20, 20_000, withHardened(getProfile(name)));
    const dev = mustAdd(w);
    w.hyperv.hypervisor.faults.failCall(2);
    const r = dev.remove();
    expect(ids(w)).toContain(NETVSC_FINDING.bufferFreedVisible);
    expect(r.leakedBuffers).toBe(1);
    expect(w.memory.leakedPages).toBe(4096);
    expect(w.memory.buddy.freedWhileVisiblePages).toBe(0);
  });

  it.each(WITH_DONT_FREE)("%s: the buffer is leaked, counted, never reused; nothing reported", (name) => {
    const { w, dev, r } = run(name);
    expect(ids(w)).toEqual([]);
    expect(dev.stats.buffersFreedWhileVisible).toBe(0);
    expect(r.leakedBuffers).toBe(1);
    expect(w.memory.leakedPages).toBe(4096);
    expect(w.memory.buddy.pagesOwnedBy("netvsc-rx")).toBe(4096);
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});

describe("a decrypt failure of the receive buffer at add (its second visibility batch refused)", () => {
  it.each(PROFILE_NAMES)(
    "%s: the add fails; the buffer is leaked; findings as the kernel has them",
    (name) => {
      const w = world(name);
      w.hyperv.hypervisor.faults.failCall(3); // the ring GPADL's batch, the receive buffer's first, then refused
      const r = makeAddFail(w);
      expect(r).toBe(false);
      const got = ids(w);
      expect(got.includes("CVE-2024-36911")).toBe(WITHOUT_DONT_FREE.includes(name));
      expect(got.includes("CVE-2024-36912")).toBe(WITHOUT_DONT_FREE.includes(name));
      expect(got.includes("510164539f16")).toBe(name !== "6.18");
      if (WITHOUT_DONT_FREE.includes(name)) {
        // vfree'd by the kernel: the 510 pages of the batch that did change go back still visible
        expect(w.memory.leakedPages).toBe(0);
        expect(w.memory.buddy.freedWhileVisiblePages).toBe(510);
      } else {
        expect(w.memory.leakedPages).toBe(4096);
        expect(w.memory.buddy.freedWhileVisiblePages).toBe(0);
      }
      expect(w.memory.checkInvariants()).toEqual([]);
    },
  );
});

function makeAddFail(w: World): boolean {
  try {
    mustAdd(w);
    return true;
  } catch {
    return false;
  }
}

describe("page-buffer sends", () => {
  it.each(PROFILE_NAMES)(
    "%s: a frame too large for a section goes by the profile's send helper and arrives intact",
    (name) => {
      const w = world(name);
      const dev = mustAdd(w);
      const pb = vi.spyOn(w.channel, "sendPageBuffer");
      const mpb = vi.spyOn(w.channel, "sendMpbDesc");
      const sends = dev.stats.pageBufferSends; // the RNDIS requests of the add went by page buffers too
      sendAll(w, dev, [[txFrame(0, 20_000), false]]);
      w.scheduler.runIdle();
      expect(w.netvsp.counters.txFramesVerified).toBe(1);
      expect(dev.stats.pageBufferSends - sends).toBe(1);
      const usesMpb = MPB_SENDS.includes(name);
      expect(mpb).toHaveBeenCalledTimes(usesMpb ? 1 : 0);
      expect(pb).toHaveBeenCalledTimes(usesMpb ? 0 : 1);
      if (!usesMpb) {
        // one 16-byte hv_page_buffer per page entry: the RNDIS header and the 20,000-byte frame's pages
        const entries = pb.mock.calls[0]![0];
        expect(entries.every((e) => e.offset + e.len <= 4096)).toBe(true);
        expect(entries.reduce((n, e) => n + e.len, 0)).toBeGreaterThanOrEqual(20_000);
      }
      dev.remove();
    },
  );
});

describe("netvsc_receive's transfer-page header bound", () => {
  // A transfer-page packet whose NVSP message starts at 24 (no ranges): inside a 24-byte header, not a 32.
  function shortHeaderPacket(): Uint8Array {
    const p = new Uint8Array(24 + 16);
    const v = new DataView(p.buffer);
    v.setUint16(0, VM_PKT.DATA_USING_XFER_PAGES, true);
    v.setUint16(2, 3, true); // offset8: 24 bytes
    v.setUint16(4, p.length / 8, true);
    v.setUint16(6, 1, true);
    v.setBigUint64(8, 77n, true);
    v.setUint16(16, XFER_PAGESET_ID, true);
    v.setUint32(20, 0, true); // range_cnt
    v.setUint32(24, NVSP_MSG_TYPE.SEND_RNDIS_PKT, true);
    return p;
  }

  it.each(PROFILE_NAMES)("%s: offset8 << 3 = 24 is rejected only while the header is 32 bytes", (name) => {
    const w = world(name);
    const dev = mustAdd(w);
    expect(w.host.send(shortHeaderPacket()).ok).toBe(true);
    dev.poll();
    const rejected = dev.stats.rxDrops.get("xfer-header-too-short");
    expect(rejected).toBe(XFER_HEADER_32.includes(name) ? 1 : 0);
    dev.remove();
  });
});

describe("the receive path's copies (every profile)", () => {
  it.each(PROFILE_NAMES)("%s: headers into the private buffer, the payload once into the skb", (name) => {
    const w = world(name);
    const dev = mustAdd(w);
    const before = {
      priv: dev.stats.rxRangeBytes,
      skb: dev.stats.rxSkbBytes,
      ranges: dev.stats.rxRangeCopies,
    };
    const sizes = [300, 1200, 1500];
    w.netvsp.queueRx(sizes);
    w.scheduler.runIdle();
    expect(w.received).toHaveLength(3);
    expect(w.received.every((f) => verifyLabFrame(f).ok)).toBe(true);
    expect(dev.stats.rxRangeCopies - before.ranges).toBe(3);
    // RNDIS header (8) + rndis_packet (36), no PPIs from this host: 44 bytes per frame, not the frame
    expect(dev.stats.rxRangeBytes - before.priv).toBe(3 * 44);
    expect(dev.stats.rxSkbBytes - before.skb).toBe(300 + 1200 + 1500);
    expect(dev.stats.parsedFromShared).toBe(0);
    dev.remove();
  });
});
