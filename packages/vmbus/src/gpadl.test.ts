import { PAGE_SIZE } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import type { VmbusChannel } from "./channel.js";
import { type Gpadl, gpadlPfns } from "./gpadl.js";
import { HV_POST_STATUS } from "./synic.js";
import { connectNic, ERAS, makeWorld, type World } from "./testing/world.js";
import { CHANNELMSG, encodeChannelMessage } from "./wire/channel-message.js";
import { GPADL_HANDLE_START } from "./wire/gpadl.js";

function buffer(w: World, pages: number): number {
  const va = w.memory.vmalloc.vzalloc(pages * PAGE_SIZE, { tag: "test-buf" });
  if (va === null) throw new Error("vzalloc failed");
  return va;
}

/** The caller's side of a failed GPADL: leak the pages (what netvsc does when decrypted stays true). */
function leakBuffer(w: World, va: number, pages: number): void {
  for (let i = 0; i < pages; i++) w.memory.buddy.leakPages(w.memory.virtToPfn(va + i * PAGE_SIZE), 1);
}

/** GPADL messages posted for `handle`, counted from what went over the link. */
function gpadlMessagesFor(w: World, handle: number, run: () => void): number {
  let n = 0;
  const off = w.conn.onMessage((e) => {
    if (e.direction !== "guest-to-host") return;
    if (e.type !== CHANNELMSG.GPADL_HEADER && e.type !== CHANNELMSG.GPADL_BODY) return;
    if (new DataView(e.bytes.buffer).getUint32(12, true) === handle) n++;
  });
  run();
  off();
  return n;
}

function hypercalls(w: World): number {
  return w.hyperv.hypervisor.counters.hypercalls;
}

describe.each(ERAS)("GPADL establish/teardown (%s)", (era) => {
  const isolated = era !== "none";

  it.each([
    [4096, 147, 9],
    [255, 10, 1],
  ])(
    "%i pages: %i messages, %i visibility hypercalls each way; the host gets the guest's PFNs",
    (pages, messages, calls) => {
      const w = makeWorld(era);
      const { channel } = connectNic(w);
      const va = buffer(w, pages);
      const before = hypercalls(w);
      let result: ReturnType<VmbusChannel["establishGpadl"]> | undefined;
      const posted = gpadlMessagesFor(w, GPADL_HANDLE_START, () => {
        result = channel.establishGpadl(va, pages * PAGE_SIZE);
      });
      expect(result?.ok).toBe(true);
      if (!result?.ok) return;
      const g = result.value;
      expect(posted).toBe(messages);
      expect(g.handle).toBe(GPADL_HANDLE_START);
      expect(g.decrypted).toBe(true);
      expect(hypercalls(w) - before).toBe(isolated ? calls : 0);
      const host = w.server.gpadls.get(g.handle);
      expect(host).toBeDefined();
      expect(Array.from(host!.pfns)).toEqual(Array.from(gpadlPfns(g)));
      const walked = Array.from({ length: pages }, (_, i) => w.memory.virtToPfn(va + i * PAGE_SIZE));
      expect(Array.from(host!.pfns)).toEqual(walked);

      const mid = hypercalls(w);
      const t = channel.teardownGpadl(g);
      expect(t).toEqual({ ok: true, mustLeak: false });
      expect(g.decrypted).toBe(false);
      expect(g.handle).toBe(0);
      expect(hypercalls(w) - mid).toBe(isolated ? calls : 0);
      expect(w.server.gpadls.get(GPADL_HANDLE_START)).toBeUndefined();
      w.memory.vmalloc.vfree(va);
      expect(w.memory.checkInvariants()).toEqual([]);
      expect(w.memory.mmu.totalFaults).toBe(0);
    },
  );

  it("GPADLs of different sizes one after another (and two at once) reach the host with their own PFNs", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const sizes = [4096, 255, 4096, 30, 1];
    const live: { va: number; g: Gpadl }[] = [];
    for (const pages of sizes) {
      const va = buffer(w, pages);
      const r = channel.establishGpadl(va, pages * PAGE_SIZE);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      live.push({ va, g: r.value });
      const walked = Array.from({ length: pages }, (_, i) => w.memory.virtToPfn(va + i * PAGE_SIZE));
      expect(Array.from(w.server.gpadls.get(r.value.handle)!.pfns)).toEqual(walked);
      if (live.length > 1) {
        // the one before keeps its PFNs while the next is assembled
        const prev = live[live.length - 2]!;
        expect(Array.from(w.server.gpadls.get(prev.g.handle)!.pfns)).toEqual(Array.from(gpadlPfns(prev.g)));
        expect(channel.teardownGpadl(prev.g)).toEqual({ ok: true, mustLeak: false });
        w.memory.vmalloc.vfree(prev.va);
      }
    }
    expect(w.server.gpadls.rejected).toEqual(
      Object.fromEntries(Object.keys(w.server.gpadls.rejected).map((k) => [k, 0])),
    );
  });

  it("hands out handles from 0xE1E10 upwards and never reuses one, even after a failure", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const va = buffer(w, 4);
    const a = channel.establishGpadl(va, 4 * PAGE_SIZE);
    expect(a.ok && a.value.handle).toBe(0xe1e10);
    if (a.ok) channel.teardownGpadl(a.value);
    w.server.hooks.intercept = (b) => (b[0] === CHANNELMSG.GPADL_CREATED ? { kind: "drop" } : undefined);
    const b = channel.establishGpadl(va, 4 * PAGE_SIZE);
    expect(b.ok).toBe(false);
    w.server.hooks.intercept = undefined;
    const c = channel.establishGpadl(va, 4 * PAGE_SIZE);
    expect(c.ok && c.value.handle).toBe(0xe1e12);
  });

  it("a pre-shared buffer is neither decrypted nor re-encrypted", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const va = buffer(w, 8);
    if (isolated) w.hyperv.setMemory.decrypted(va, 8); // the pool was shared at boot
    const before = hypercalls(w);
    const g = channel.establishGpadl(va, 8 * PAGE_SIZE, { preShared: true });
    expect(g.ok && g.value.decrypted).toBe(false);
    if (!g.ok) return;
    expect(channel.teardownGpadl(g.value)).toEqual({ ok: true, mustLeak: false });
    expect(hypercalls(w)).toBe(before);
  });

  it("the host refuses a GPADL with one private page inside a run of host-visible ones", () => {
    if (!isolated) return;
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const pages = 600;
    const va = buffer(w, pages);
    w.hyperv.setMemory.decrypted(va, pages); // pre-shared, but for one page in the middle
    w.hyperv.setMemory.encrypted(va + 300 * PAGE_SIZE, 1);
    const pfnAt = (i: number) => w.memory.virtToPfn(va + i * PAGE_SIZE);
    expect(pfnAt(301) - pfnAt(299)).toBe(2); // inside one run of consecutive PFNs
    const failedBefore = w.server.counters.gpadlsFailed;
    const g = channel.establishGpadl(va, pages * PAGE_SIZE, { preShared: true });
    expect(g.ok === false && g.error.reason).toBe("gpadl-creation-failed");
    expect(w.server.counters.gpadlsFailed).toBe(failedBefore + 1);
    expect(w.server.gpadls.establishedCount).toBe(0);
    // the same pages all visible: established
    w.hyperv.setMemory.decrypted(va + 300 * PAGE_SIZE, 1);
    expect(channel.establishGpadl(va, pages * PAGE_SIZE, { preShared: true }).ok).toBe(true);
  });

  it("a host that never answers is a typed ETIMEDOUT, and the pages are re-encrypted", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const va = buffer(w, 30);
    w.server.hooks.intercept = (b) => (b[0] === CHANNELMSG.GPADL_CREATED ? { kind: "drop" } : undefined);
    const r = channel.establishGpadl(va, 30 * PAGE_SIZE);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe("ETIMEDOUT");
    expect(r.error.reason).toBe("host-never-answered");
    expect(r.mustLeak).toBe(false);
    expect(w.conn.pendingRequests).toBe(0);
    w.memory.vmalloc.vfree(va);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("a delayed GPADL_CREATED still completes", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const va = buffer(w, 30);
    w.server.hooks.intercept = (b) =>
      b[0] === CHANNELMSG.GPADL_CREATED ? { kind: "delay", rounds: 50 } : undefined;
    expect(channel.establishGpadl(va, 30 * PAGE_SIZE).ok).toBe(true);
  });

  it("GPADL_CREATED for an unknown handle is counted and ignored", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    w.server.sendRaw(
      encodeChannelMessage({
        kind: "gpadl-created",
        childRelid: channel.relid,
        gpadl: 0x1234,
        creationStatus: 0,
      }),
    );
    w.scheduler.runIdle();
    expect(w.conn.counters.dropped["unmatched-reply"]).toBe(1);
    const va = buffer(w, 3);
    expect(channel.establishGpadl(va, 3 * PAGE_SIZE).ok).toBe(true);
  });

  it("a failed creation_status is EDQUOT and the pages are re-encrypted", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const va = buffer(w, 40);
    w.server.hooks.intercept = (b) => {
      if (b[0] !== CHANNELMSG.GPADL_CREATED) return undefined;
      const bad = b.slice();
      new DataView(bad.buffer).setUint32(16, 0xc0000001, true);
      return { kind: "replace", bytes: bad };
    };
    const r = channel.establishGpadl(va, 40 * PAGE_SIZE);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe("EDQUOT");
    expect(r.gpadl.decrypted).toBe(false);
    w.memory.vmalloc.vfree(va);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("rescind in the middle of GPADL set-up gives ENODEV and a consistent state", () => {
    const w = makeWorld(era);
    const { channel, host } = connectNic(w);
    const va = buffer(w, 100); // header + 3 bodies
    let posts = 0;
    w.server.postStatus = () => {
      if (++posts === 2) w.server.rescind(host.relid); // between the header and the first body
      return HV_POST_STATUS.SUCCESS;
    };
    const r = channel.establishGpadl(va, 100 * PAGE_SIZE);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe("ENODEV");
    expect(r.mustLeak).toBe(false);
    expect(channel.rescinded).toBe(true);
    expect(w.conn.pendingRequests).toBe(0);
    // Not open, so the guest releases the relid at once.
    expect(w.conn.posted(CHANNELMSG.RELID_RELEASED)).toBe(1);
    expect(w.conn.channels.has(host.relid)).toBe(false);
    w.scheduler.runIdle();
    expect(w.server.channels.has(host.relid)).toBe(false);
    // Further GPADLs on the rescinded channel fail before posting anything.
    const posted = w.conn.posted(CHANNELMSG.GPADL_HEADER);
    const again = channel.establishGpadl(va, 100 * PAGE_SIZE);
    expect(again.ok === false && again.error.code).toBe("ENODEV");
    expect(w.conn.posted(CHANNELMSG.GPADL_HEADER)).toBe(posted);
    w.memory.vmalloc.vfree(va);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("rebase onto another mapping of the same pages; a different mapping is refused", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const va = buffer(w, 6);
    const g = channel.establishGpadl(va, 6 * PAGE_SIZE);
    if (!g.ok) throw g.error;
    const pfns = gpadlPfns(g.value);
    const alias = w.memory.vmalloc.vmap(pfns, { tag: "alias", decrypted: isolated });
    expect(channel.rebaseGpadl(g.value, alias!).ok).toBe(true);
    expect(g.value.buffer).toBe(alias);
    const other = w.memory.vmalloc.vmap(pfns.slice().reverse(), { tag: "other", decrypted: isolated });
    const bad = channel.rebaseGpadl(g.value, other!);
    expect(bad.ok === false && bad.error.reason).toBe("rebase-pfn-mismatch");
    expect(g.value.buffer).toBe(alias);
    const before = hypercalls(w);
    expect(channel.teardownGpadl(g.value).ok).toBe(true);
    expect(hypercalls(w) - before).toBe(isolated ? 1 : 0);
  });
});

describe.each(["address-bit", "pte-bit"] as const)("GPADL visibility failures (%s)", (era) => {
  it("a decrypt failure returns the error with decrypted still true; the caller leaks", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const va = buffer(w, 4096);
    w.hyperv.hypervisor.faults.failCall(3); // two batches of 510 become visible, then a failure
    const posted = w.conn.posted(CHANNELMSG.GPADL_HEADER);
    const r = channel.establishGpadl(va, 4096 * PAGE_SIZE);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe(era === "address-bit" ? "EFAULT" : "EIO");
    expect(r.mustLeak).toBe(true);
    expect(r.gpadl.decrypted).toBe(true);
    expect(w.conn.posted(CHANNELMSG.GPADL_HEADER)).toBe(posted); // nothing was sent
    expect(w.memory.phys.hostVisiblePages).toBeGreaterThanOrEqual(1020);
    leakBuffer(w, va, 4096);
    expect(w.memory.leakedPages).toBe(4096);
    expect(w.memory.checkInvariants()).toEqual([]);
    expect(() => w.memory.vmalloc.vfree(va)).toThrow();
  });

  it("a re-encryption failure at teardown reports leak; the pages are marked leaked, never freed", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const va = buffer(w, 255);
    const g = channel.establishGpadl(va, 255 * PAGE_SIZE);
    if (!g.ok) throw g.error;
    w.hyperv.hypervisor.faults.failCall(1);
    const t = channel.teardownGpadl(g.value);
    expect(t.ok).toBe(false);
    expect(t.mustLeak).toBe(true);
    expect(g.value.decrypted).toBe(true);
    expect(g.value.handle).toBe(0); // the host did tear it down
    leakBuffer(w, va, 255);
    expect(w.memory.leakedPages).toBe(255);
    expect(w.memory.checkInvariants()).toEqual([]);
    expect(() => w.memory.vmalloc.vfree(va)).toThrow();
    expect(w.memory.leakedPages).toBe(255);
  });

  it("a failed re-encryption after a failed GPADL keeps decrypted true", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    const va = buffer(w, 10);
    w.server.hooks.intercept = (b) => (b[0] === CHANNELMSG.GPADL_CREATED ? { kind: "drop" } : undefined);
    w.hyperv.hypervisor.faults.failCall(2); // the decrypt is call 1, the re-encrypt call 2
    const r = channel.establishGpadl(va, 10 * PAGE_SIZE);
    expect(r.ok === false && r.mustLeak).toBe(true);
    leakBuffer(w, va, 10);
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});
