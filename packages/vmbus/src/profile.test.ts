import { FindingLog, getProfile, PROFILE_NAMES, withHardened } from "@ivm/kernel";
import { PAGE_SIZE } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { MSGINFO_TAG } from "./gpadl.js";
import { DEFAULT_KERNEL_PROFILE, KernelContext, VMBUS_FINDING } from "./profile.js";
import { IncomingRing } from "./ring/incoming.js";
import { OutgoingRing } from "./ring/outgoing.js";
import { FlatRingMem, initRingHeader } from "./ring/ring-mem.js";
import { connectNic, makeWorld, RecordingDevice, type World } from "./testing/world.js";
import { CHANNELMSG } from "./wire/channel-message.js";
import { encodeInbandPacket, VM_PKT } from "./wire/packet.js";
import { RING_HEADER } from "./wire/ring-header.js";

// Which kernels shipped the 2024 fixes (211f514ebf1e, 30d18df6567b), stated here independently of the table.
const WITHOUT_2024_FIXES = ["5.17", "6.1", "6.4", "6.6"] as const;
const WITH_2024_FIXES = ["6.1.91", "6.6.31", "6.9", "6.12", "6.18"] as const;
// 510164539f16 (Confidential VMBus, 6.18) frees msginfo on the early return.
const MSGINFO_FREED: readonly string[] = ["6.18"];

// 4096 pages: a 236-byte header (26 PFNs), 145 full 240-byte bodies (28 PFNs) and a 96-byte one (10 PFNs),
// each behind a 96-byte struct vmbus_channel_msginfo.
const MSGINFO_BYTES_4096 = 96 * 147 + 236 + 145 * 240 + 96;

function world(name: string): World {
  return makeWorld("address-bit", { kernel: getProfile(name) });
}

function buffer(w: World, pages: number): number {
  const va = w.memory.vmalloc.vzalloc(pages * PAGE_SIZE, { tag: "test-buf" });
  if (va === null) throw new Error("vzalloc failed");
  return va;
}

function ids(w: World): string[] {
  return w.conn.kernel.findings.list().map((f) => f.id);
}

describe("the default profile", () => {
  it("is 6.12 with the hardened ring checks, and a connection without one uses it", () => {
    expect(DEFAULT_KERNEL_PROFILE.name).toBe("6.12");
    expect(DEFAULT_KERNEL_PROFILE.hardened).toBe(true);
    const w = makeWorld("address-bit");
    expect(w.conn.kernel.profile).toBe(DEFAULT_KERNEL_PROFILE);
    expect(w.conn.kernel.findings.count()).toBe(0);
  });

  it("takes the findings log it is given", () => {
    const findings = new FindingLog();
    const k = new KernelContext(getProfile("5.17"), findings);
    k.report({ id: "x", invariant: "I4", what: "w", where: "here" });
    expect(findings.list()).toEqual([
      { id: "x", invariant: "I4", what: "w", where: "here", profile: "5.17" },
    ]);
  });
});

describe("create_gpadl_header's msginfo allocations (every profile)", () => {
  it.each(PROFILE_NAMES)("%s: one kzalloc per message, all freed once the host answered", (name) => {
    const w = world(name);
    const { channel } = connectNic(w);
    const va = buffer(w, 4096);
    const before = w.memory.kmalloc.statsFor(MSGINFO_TAG).allocations;
    const g = channel.establishGpadl(va, 4096 * PAGE_SIZE);
    expect(g.ok).toBe(true);
    const s = w.memory.kmalloc.statsFor(MSGINFO_TAG);
    expect(s.allocations - before).toBe(147);
    expect(s.live).toBe(0);
    expect(s.peak).toBe(MSGINFO_BYTES_4096); // all live at once, until GPADL_CREATED
  });

  it.each(PROFILE_NAMES)("%s: a failed kzalloc is -ENOMEM before anything is decrypted or sent", (name) => {
    const w = world(name);
    const { channel } = connectNic(w);
    const va = buffer(w, 300);
    const calls = w.hyperv.hypervisor.counters.hypercalls;
    w.memory.faults.failCall("kmalloc", 5); // the fifth message of twelve
    const r = channel.establishGpadl(va, 300 * PAGE_SIZE);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe("ENOMEM");
    expect(r.mustLeak).toBe(false);
    expect(w.hyperv.hypervisor.counters.hypercalls).toBe(calls);
    expect(w.conn.posted(CHANNELMSG.GPADL_HEADER)).toBe(0);
    expect(w.memory.kmalloc.statsFor(MSGINFO_TAG).live).toBe(0);
    w.memory.vmalloc.vfree(va);
    expect(w.memory.checkInvariants()).toEqual([]);
    expect(w.conn.kernel.findings.count()).toBe(0);
  });
});

describe("a decrypt failure while establishing a GPADL", () => {
  const run = (name: string) => {
    const w = world(name);
    const { channel } = connectNic(w);
    const va = buffer(w, 4096);
    w.hyperv.hypervisor.faults.failCall(3); // two batches of 510 changed, then the hypervisor refuses
    const r = channel.establishGpadl(va, 4096 * PAGE_SIZE);
    if (r.ok) throw new Error("expected a failure");
    return { w, r };
  };

  it.each(WITHOUT_2024_FIXES)(
    "%s: no decrypted flag — CVE-2024-36912 — and the msginfo list leaks",
    (name) => {
      const { w, r } = run(name);
      expect(r.error.code).toBe("EFAULT");
      expect(r.gpadl.decrypted).toBe(true); // the model still knows
      expect(ids(w)).toEqual([VMBUS_FINDING.msginfoLeaked, VMBUS_FINDING.gpadlStateLost]);
      const lost = w.conn.kernel.findings.list()[1]!;
      expect(lost).toMatchObject({ id: "CVE-2024-36912", profile: name, invariant: "I4" });
      expect(lost.what).toContain("4096 pages");
    },
  );

  it.each(WITH_2024_FIXES)(
    "%s: decrypted stays true, the caller is told to leak; no CVE-2024-36912",
    (name) => {
      const { w, r } = run(name);
      expect(r.mustLeak).toBe(true);
      expect(r.gpadl.decrypted).toBe(true);
      expect(ids(w)).not.toContain(VMBUS_FINDING.gpadlStateLost);
    },
  );

  it.each(PROFILE_NAMES.filter((n) => !MSGINFO_FREED.includes(n)))(
    "%s: the early return leaks the msginfo list (fixed by 510164539f16)",
    (name) => {
      const { w } = run(name);
      expect(ids(w)).toContain(VMBUS_FINDING.msginfoLeaked);
      expect(w.memory.kmalloc.statsFor(MSGINFO_TAG).live).toBe(MSGINFO_BYTES_4096);
    },
  );

  it.each(MSGINFO_FREED)("%s: msginfo is freed on the early return, nothing reported", (name) => {
    const { w } = run(name);
    expect(w.memory.kmalloc.statsFor(MSGINFO_TAG).live).toBe(0);
    expect(ids(w)).toEqual([]);
  });
});

describe("a re-encryption failure at GPADL teardown", () => {
  const run = (name: string) => {
    const w = world(name);
    const { channel } = connectNic(w);
    const va = buffer(w, 255);
    const g = channel.establishGpadl(va, 255 * PAGE_SIZE);
    if (!g.ok) throw g.error;
    const before = w.hyperv.hypervisor.counters.hypercalls;
    w.hyperv.hypervisor.faults.failCall(1);
    const t = channel.teardownGpadl(g.value);
    return { w, t, g: g.value, calls: w.hyperv.hypervisor.counters.hypercalls - before };
  };

  it.each(WITHOUT_2024_FIXES)(
    "%s: set_memory_encrypted is called, fails, and the lost state is CVE-2024-36912",
    (name) => {
      const { w, t, g, calls } = run(name);
      expect(calls).toBe(1);
      expect(t.ok).toBe(false);
      expect(g.decrypted).toBe(true);
      expect(ids(w)).toEqual(["CVE-2024-36912"]);
      expect(w.conn.kernel.findings.list()[0]!.where).toContain("vmbus_teardown_gpadl");
    },
  );

  it.each(WITH_2024_FIXES)("%s: decrypted = true tells the caller to leak; no finding", (name) => {
    const { w, t, g, calls } = run(name);
    expect(calls).toBe(1);
    expect(t).toMatchObject({ ok: false, mustLeak: true });
    expect(g.decrypted).toBe(true);
    expect(ids(w)).toEqual([]);
  });
});

describe("vmbus_free_ring after a failed open whose ring GPADL could not be decrypted", () => {
  const run = (name: string, hardened = false) => {
    const w = makeWorld("address-bit", {
      kernel: hardened ? withHardened(getProfile(name)) : getProfile(name),
    });
    const { channel } = connectNic(w);
    const leakedBefore = w.memory.leakedPages;
    w.hyperv.hypervisor.faults.failCall(1); // the ring GPADL's only visibility batch
    const r = channel.open({ sendRingSize: 4 * PAGE_SIZE, recvRingSize: 4 * PAGE_SIZE });
    expect(r.ok).toBe(false);
    return { w, leaked: w.memory.leakedPages - leakedBefore };
  };

  it.each(WITHOUT_2024_FIXES)(
    "%s: __free_pages of possibly host-visible ring pages is CVE-2024-36909",
    (name) => {
      const { w, leaked } = run(name);
      expect(ids(w)).toContain("CVE-2024-36909");
      expect(ids(w)).toContain("CVE-2024-36912");
      const f = w.conn.kernel.findings.list().find((x) => x.id === "CVE-2024-36909")!;
      expect(f).toMatchObject({ invariant: "I1", where: "vmbus_free_ring" });
      expect(f.what).toContain("8 ring pages");
      // kernel-exact: __free_pages ran. The refused batch changed no page, so none was host-visible:
      // the block is back in the allocator and nothing was freed while visible.
      expect(leaked).toBe(0);
      expect(w.memory.buddy.pagesOwnedBy("vmbus-ring")).toBe(0);
      expect(w.memory.buddy.freedWhileVisiblePages).toBe(0);
      expect(w.memory.checkInvariants()).toEqual([]);
    },
  );

  it.each(WITHOUT_2024_FIXES)(
    "%s hardened: the finding is reported and the model leaks the block",
    (name) => {
      const { w, leaked } = run(name, true);
      expect(ids(w)).toContain("CVE-2024-36909");
      expect(leaked).toBe(8);
      expect(w.memory.checkInvariants()).toEqual([]);
    },
  );

  it.each(WITH_2024_FIXES)(
    "%s: the pages are leaked, counted, never reused; no finding about the ring",
    (name) => {
      const { w, leaked } = run(name);
      expect(ids(w)).not.toContain("CVE-2024-36909");
      expect(ids(w)).not.toContain("CVE-2024-36912");
      expect(leaked).toBe(8);
      expect(w.memory.checkInvariants()).toEqual([]);
    },
  );
});

describe("vmbus_free_ring after a refused open whose ring GPADL could not be re-encrypted", () => {
  const run = (name: string) => {
    const w = world(name);
    const device = new RecordingDevice();
    device.openStatus = 1; // the host refuses the open: the ring GPADL is torn down again
    const { channel } = connectNic(w, device);
    const leakedBefore = w.memory.leakedPages;
    w.hyperv.hypervisor.faults.failCall(2); // the ring GPADL's decryption works, its re-encryption not
    const r = channel.open({ sendRingSize: 4 * PAGE_SIZE, recvRingSize: 4 * PAGE_SIZE });
    expect(r.ok).toBe(false);
    return { w, leaked: w.memory.leakedPages - leakedBefore };
  };

  it.each(WITHOUT_2024_FIXES)(
    "%s: the 8 ring pages go back to the allocator host-visible (CVE-2024-36909)",
    (name) => {
      const { w, leaked } = run(name);
      expect(ids(w)).toContain("CVE-2024-36909");
      expect(leaked).toBe(0);
      expect(w.memory.buddy.pagesOwnedBy("vmbus-ring")).toBe(0);
      expect(w.memory.buddy.freedWhileVisiblePages).toBe(8);
      expect(w.memory.buddy.freedWhileVisibleLog).toEqual([
        expect.objectContaining({ order: 3, reason: "vmbus_free_ring" }),
      ]);
      // the memory model attributes them to the finding, not to its own I1
      expect(w.memory.checkInvariants()).toEqual([]);
    },
  );

  it.each(WITH_2024_FIXES)("%s: the 8 ring pages are leaked and never handed out; no finding", (name) => {
    const { w, leaked } = run(name);
    expect(ids(w)).toEqual([]);
    expect(leaked).toBe(8);
    expect(w.memory.buddy.freedWhileVisiblePages).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});

describe("host-written ring indices", () => {
  const DSIZE = 4096;
  const profileOf = (name: string, hardened: boolean) => {
    const p = getProfile(name);
    return new KernelContext(hardened ? withHardened(p) : p);
  };
  const payload = new Uint8Array(40).fill(0xab);

  describe.each(PROFILE_NAMES)("%s", (name) => {
    it("kernel-exact: a write_index past the double mapping is used; the out-of-bounds write is reported, not done", () => {
      const kernel = profileOf(name, false);
      const mem = new FlatRingMem(DSIZE);
      initRingHeader(mem);
      const ring = new OutgoingRing(mem, { kernel, name: "test ring" });
      // The 16-byte descriptor starts 8 bytes before the mapping's end: 8 bytes land, 8 run past it.
      const bad = 2 * DSIZE - 8;
      mem.writeHeaderU32(RING_HEADER.WRITE_INDEX, bad);
      mem.writeHeaderU32(RING_HEADER.READ_INDEX, bad + 512); // u32 space check: 512 bytes "free"
      const snapshot = mem.doubled.slice();
      const r = ring.sendPacket(payload, { type: VM_PKT.DATA_INBAND, flags: 0 });
      expect(r.ok).toBe(true);
      expect(ring.counters.corrupt["out-of-range"]).toBe(1);
      // hv_copyto_ringbuffer subtracts dataSize once per piece: 8184+16 → 4104, +40 → 48, trailer → 56
      expect(mem.readHeaderU32(RING_HEADER.WRITE_INDEX)).toBe(56);
      // what landed is at its aliases: the descriptor's first 8 bytes at the data area's end, the payload
      // at 8..48, the trailer at 48..56; the trans_id at 8192 lies outside the mapping and is not written
      const changed = [...mem.doubled].flatMap((b, i) => (b !== snapshot[i] ? [i % DSIZE] : []));
      expect(changed.length).toBeGreaterThan(0);
      expect(changed.every((o) => o >= DSIZE - 8 || (o >= 8 && o < 56))).toBe(true);
      const f = kernel.findings.list();
      expect(f.map((x) => x.id)).toEqual([VMBUS_FINDING.ringWriteOutOfBounds]);
      expect(f[0]!.what).toContain("16 bytes at data offset 8192");
      expect(f[0]!.where).toBe("hv_ringbuffer_write, test ring");
      expect(ring.counters.outOfBoundsBytes).toBe(16);
    });

    it("hardened: the same ring is refused as corrupt and nothing is reported", () => {
      const kernel = profileOf(name, true);
      const mem = new FlatRingMem(DSIZE);
      initRingHeader(mem);
      const ring = new OutgoingRing(mem, { kernel });
      mem.writeHeaderU32(RING_HEADER.WRITE_INDEX, 2 * DSIZE - 24);
      const r = ring.sendPacket(payload, { type: VM_PKT.DATA_INBAND, flags: 0 });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.reason).toBe("corrupt-ring");
      expect(kernel.findings.count()).toBe(0);
    });

    it("kernel-exact: write_index fetched again for the copy — a host that moves it in between is a double fetch", () => {
      const kernel = profileOf(name, false);
      const mem = new (class extends FlatRingMem {
        fetches = 0;
        override readHeaderU32(field: number): number {
          if (field === RING_HEADER.WRITE_INDEX && this.fetches++ === 1) return 512; // the host moved it
          return super.readHeaderU32(field as never);
        }
      })(DSIZE);
      initRingHeader(mem);
      const ring = new OutgoingRing(mem, { kernel });
      const r = ring.sendPacket(payload, { type: VM_PKT.DATA_INBAND, flags: 0 });
      expect(r.ok).toBe(true);
      expect(ring.counters.doubleFetches).toBe(1);
      expect(kernel.findings.list()[0]).toMatchObject({
        id: VMBUS_FINDING.ringWriteDoubleFetch,
        invariant: "I3",
      });
      // the packet went where the second fetch pointed
      expect(mem.doubled[512 + 16]).toBe(0xab);
    });

    it("kernel-exact reader: a write_index past the data area reads what was never published, reported", () => {
      const kernel = profileOf(name, false);
      const mem = new FlatRingMem(DSIZE);
      initRingHeader(mem);
      const pkt = encodeInbandPacket(VM_PKT.DATA_INBAND, 0, 7n, new Uint8Array(16));
      mem.write(0, pkt);
      mem.writeHeaderU32(RING_HEADER.WRITE_INDEX, DSIZE + 64);
      const ring = new IncomingRing(mem, { kernel, name: "rx" });
      expect(ring.indexPolicy).toBe("linux");
      const got = ring.first();
      expect(got.kind).toBe("packet");
      const f = kernel.findings.list()[0]!;
      expect(f.id).toBe(VMBUS_FINDING.ringReadPastPublished);
      expect(f.what).toContain(`write_index ${DSIZE + 64}`);
      expect(f.where).toBe("hv_pkt_iter_first, rx");
    });

    it("hardened reader: the ring is reported corrupt, nothing read", () => {
      const kernel = profileOf(name, true);
      const mem = new FlatRingMem(DSIZE);
      initRingHeader(mem);
      mem.writeHeaderU32(RING_HEADER.WRITE_INDEX, DSIZE + 64);
      const ring = new IncomingRing(mem, { kernel });
      expect(ring.first().kind).toBe("corrupt");
      expect(kernel.findings.count()).toBe(0);
    });
  });
});
