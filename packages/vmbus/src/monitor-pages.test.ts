import { getProfile, PROFILE_NAMES, withHardened } from "@ivm/kernel";
import { MemoryFault, PAGE_SIZE, PageFlag } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { MONITOR_TAGS } from "./monitor-pages.js";
import { connectNic, makeWorld, type World } from "./testing/world.js";
import {
  CHANNELMSG,
  decodeChannelMessage,
  type InitiateContactMessage,
  VMBUS_VERSION,
} from "./wire/channel-message.js";

// Which kernels have 03f5a999adba ("Leak pages if set_memory_encrypted() fails"), stated independently
// of the table: mainline 6.9, stable 6.1.91 and 6.6.31.
const WITHOUT_FIX = ["5.17", "6.1", "6.4", "6.6"] as const;
const WITH_FIX = ["6.1.91", "6.6.31", "6.9", "6.12", "6.18"] as const;

/** A guest of the profile's own era, its INITIATE_CONTACT messages recorded. */
function world(name: string, options: { hardened?: boolean; era?: "none" } = {}) {
  const p = getProfile(name);
  const kernel = options.hardened === true ? withHardened(p) : p;
  const w = makeWorld(options.era ?? p.era, { kernel });
  const contacts: InitiateContactMessage[] = [];
  w.conn.onMessage((e) => {
    if (e.type !== CHANNELMSG.INITIATE_CONTACT) return;
    const m = decodeChannelMessage(e.bytes);
    if (m.ok && m.value.kind === "initiate-contact") contacts.push(m.value);
  });
  return { w, contacts };
}

const visible = (w: World, pfn: number): boolean => (w.memory.phys.flags[pfn]! & PageFlag.HostVisible) !== 0;
const findingIds = (w: World): string[] => w.conn.kernel.findings.list().map((f) => f.id);

describe.each(PROFILE_NAMES)("vmbus_connect's monitor pages on %s", (name) => {
  it("allocates two pages, makes them host-visible and zeroed, and sends their shared GPAs", () => {
    const { w, contacts } = world(name);
    const calls = w.hyperv.hypervisor.counters.hypercalls;
    const visibleBefore = w.memory.phys.hostVisiblePages;
    connectNic(w);
    const pages = w.conn.monitorPages;
    expect(pages).toHaveLength(2);
    expect(w.memory.buddy.pagesOwnedBy(MONITOR_TAGS.pages)).toBe(2);
    // one set_memory_decrypted of one page each: one hypercall each
    expect(w.hyperv.hypervisor.counters.hypercalls - calls).toBe(2);
    expect(w.memory.phys.hostVisiblePages - visibleBefore).toBe(2);
    const boundary = w.memory.vtomPfn * PAGE_SIZE;
    expect(boundary).toBeGreaterThan(0);
    for (const p of pages) {
      expect(visible(w, p.pfn)).toBe(true);
      expect(p.gpa).toBe(p.pfn * PAGE_SIZE + boundary);
      // the guest reads the page through its own mapping: zeros, not the conversion's garbage
      const bytes = new Uint8Array(PAGE_SIZE).fill(0xff);
      w.memory.mmu.read(p.va, bytes);
      expect(bytes.every((b) => b === 0)).toBe(true);
    }
    // every version tried carried the same two addresses
    expect(contacts.length).toBeGreaterThan(0);
    for (const c of contacts) {
      expect(c.monitorPage1).toBe(pages[0]!.gpa);
      expect(c.monitorPage2).toBe(pages[1]!.gpa);
    }
    const remaps = w.memory.vmalloc.areas().filter((a) => a.tag === MONITOR_TAGS.mapping);
    if (getProfile(name).era === "address-bit") {
      // memremap(pa + vTOM): one page each, at the shared alias
      expect(remaps.map((a) => a.frames[0])).toEqual(pages.map((p) => p.pfn + w.memory.vtomPfn));
      expect(pages.every((p) => p.remapped && !w.memory.isDirectMap(p.va))).toBe(true);
    } else {
      expect(remaps).toEqual([]);
      expect(pages.map((p) => p.va)).toEqual(pages.map((p) => w.memory.pageToVirt(p.pfn)));
    }
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("disconnect re-encrypts and frees both", () => {
    const { w } = world(name);
    connectNic(w);
    const pfns = w.conn.monitorPages.map((p) => p.pfn);
    w.conn.disconnect();
    expect(w.conn.monitorPages).toEqual([]);
    expect(w.memory.buddy.pagesOwnedBy(MONITOR_TAGS.pages)).toBe(0);
    expect(w.memory.vmalloc.areas().filter((a) => a.tag === MONITOR_TAGS.mapping)).toEqual([]);
    expect(pfns.some((p) => visible(w, p))).toBe(false);
    expect(w.conn.counters.monitorPages).toEqual({ allocated: 2, freed: 2, leaked: 0, freedWhileVisible: 0 });
    expect(findingIds(w)).toEqual([]);
  });

  it("a guest without isolation sends the plain physical addresses and makes no hypercall", () => {
    const { w, contacts } = world(name, { era: "none" });
    connectNic(w);
    expect(w.hyperv.hypervisor.counters.hypercalls).toBe(0);
    const pages = w.conn.monitorPages;
    expect(pages.map((p) => p.gpa)).toEqual(pages.map((p) => p.pfn * PAGE_SIZE));
    expect(contacts[0]!.monitorPage1).toBe(pages[0]!.gpa);
    expect(pages.some((p) => visible(w, p.pfn))).toBe(false);
  });
});

/** Connects, then makes the first monitor page's re-encryption fail at disconnect. */
function failFirstReencrypt(name: string, hardened = false) {
  const { w } = world(name, { hardened });
  connectNic(w);
  const [first, second] = w.conn.monitorPages.map((p) => p.pfn) as [number, number];
  const leakedBefore = w.memory.leakedPages;
  w.hyperv.hypervisor.faults.failCall(1);
  w.conn.disconnect();
  return { w, first, second, leaked: w.memory.leakedPages - leakedBefore };
}

describe("a failed set_memory_encrypted at vmbus_disconnect", () => {
  it.each(WITHOUT_FIX)("%s: the page is freed still host-visible — CVE-2024-36913", (name) => {
    const { w, first, second, leaked } = failFirstReencrypt(name);
    expect(findingIds(w)).toEqual(["CVE-2024-36913"]);
    expect(w.conn.kernel.findings.list()[0]).toMatchObject({
      profile: name,
      invariant: "I1",
      where: "vmbus_disconnect",
    });
    expect(leaked).toBe(0);
    expect(w.conn.counters.monitorPages).toMatchObject({ freed: 1, freedWhileVisible: 1, leaked: 0 });
    // back in the allocator, still visible to the host; the memory model attributes it to the finding
    expect(w.memory.buddy.blockOf(first)?.free).toBe(true);
    expect(visible(w, first)).toBe(true);
    expect(w.memory.buddy.isFreedWhileVisible(first)).toBe(true);
    expect([...w.memory.buddy.freedWhileVisible()]).toEqual([first]);
    expect(w.memory.buddy.freedWhileVisiblePages).toBe(1);
    expect(visible(w, second)).toBe(false);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it.each(WITHOUT_FIX)(
    "%s hardened: reported the same, but the model keeps the page out (leaked)",
    (name) => {
      const { w, first, leaked } = failFirstReencrypt(name, true);
      expect(findingIds(w)).toEqual(["CVE-2024-36913"]);
      expect(leaked).toBe(1);
      expect(w.memory.buddy.isFreedWhileVisible(first)).toBe(false);
      expect(w.memory.checkInvariants()).toEqual([]);
    },
  );

  it.each(WITH_FIX)("%s: the page is leaked, counted and never reused; no finding", (name) => {
    const { w, first, second, leaked } = failFirstReencrypt(name);
    expect(findingIds(w)).toEqual([]);
    expect(leaked).toBe(1);
    expect(w.conn.counters.monitorPages).toMatchObject({ freed: 1, leaked: 1, freedWhileVisible: 0 });
    expect(w.memory.buddy.blockOf(first)?.free).toBe(false);
    expect(w.memory.buddy.blockOf(second)?.free).toBe(true);
    expect(w.memory.buddy.freedWhileVisiblePages).toBe(0);
    expect(() => w.memory.buddy.freePages(first, 0)).toThrow(/leaked/);
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});

describe("the freed-while-visible page is handed out again", () => {
  /** Order-0 allocations until `pfn` comes back (or `tries` run out); returns whether it did. */
  function reallocate(w: World, pfn: number, tries = 64): boolean {
    for (let i = 0; i < tries; i++) {
      const got = w.memory.buddy.allocPages(0, { tag: "later-user" });
      if (got === null) return false;
      if (got === pfn) return true;
    }
    return false;
  }

  it("5.17: a later allocation gets it, and the guest's first private-alias access is an RMP fault", () => {
    const { w, first } = failFirstReencrypt("5.17");
    expect(reallocate(w, first)).toBe(true);
    const faults = w.memory.mmu.faults["private-alias-to-shared-page"];
    const buf = new Uint8Array(8);
    expect(() => w.memory.mmu.read(w.memory.pageToVirt(first), buf)).toThrow(MemoryFault);
    expect(w.memory.mmu.faults["private-alias-to-shared-page"]).toBe(faults + 1);
    // still attributed to the finding while the new owner holds it, and the new owner may free it
    expect(w.memory.buddy.isFreedWhileVisible(first)).toBe(true);
    w.memory.buddy.freePages(first, 0);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("6.9: the page never comes back, and no access faults", () => {
    const { w, first } = failFirstReencrypt("6.9");
    const faults = w.memory.mmu.totalFaults;
    const free = w.memory.buddy.nrFreePages;
    expect(reallocate(w, first, free)).toBe(false);
    expect(w.memory.mmu.totalFaults).toBe(faults);
  });
});

describe("a failed set_memory_decrypted at vmbus_connect", () => {
  const run = (name: string) => {
    const { w } = world(name);
    const calls = w.hyperv.hypervisor.counters.hypercalls;
    const leakedBefore = w.memory.leakedPages;
    w.hyperv.hypervisor.faults.failCall(1); // the first monitor page
    const r = w.conn.connect();
    return {
      w,
      r,
      calls: w.hyperv.hypervisor.counters.hypercalls - calls,
      leaked: w.memory.leakedPages - leakedBefore,
    };
  };

  it.each(WITH_FIX)(
    "%s: both pages are leaked at once (the second was still tried); nothing sent",
    (name) => {
      const { w, r, calls, leaked } = run(name);
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.error.code).toBe("EFAULT");
      expect(calls).toBe(2);
      expect(leaked).toBe(2);
      expect(w.conn.state).toBe("disconnected");
      expect(w.conn.posted(CHANNELMSG.INITIATE_CONTACT)).toBe(0);
      expect(findingIds(w)).toEqual([]);
      expect(w.memory.checkInvariants()).toEqual([]);
    },
  );

  it.each(WITHOUT_FIX)(
    "%s: the cleanup re-encrypts both and frees them (both re-encryptions succeed)",
    (name) => {
      const { w, r, calls, leaked } = run(name);
      expect(r.ok).toBe(false);
      expect(calls).toBe(4);
      expect(leaked).toBe(0);
      expect(w.memory.buddy.pagesOwnedBy(MONITOR_TAGS.pages)).toBe(0);
      expect(w.memory.phys.hostVisiblePages).toBe(0);
      expect(findingIds(w)).toEqual([]);
    },
  );
});

describe("a vmbus_connect that fails after the pages exist", () => {
  it.each(PROFILE_NAMES)(
    "%s: a host too old for an isolated guest: cleanup re-encrypts and frees both",
    (name) => {
      const p = getProfile(name);
      const w = makeWorld(p.era, { kernel: p, hostMaxVersion: VMBUS_VERSION.WIN10_V5_1 });
      const calls = w.hyperv.hypervisor.counters.hypercalls;
      const r = w.conn.connect();
      expect(r.ok === false && r.error.reason).toBe("version-too-old");
      expect(w.conn.monitorPages).toEqual([]);
      expect(w.conn.counters.monitorPages).toEqual({
        allocated: 2,
        freed: 2,
        leaked: 0,
        freedWhileVisible: 0,
      });
      expect(w.hyperv.hypervisor.counters.hypercalls - calls).toBe(4); // two decryptions, two re-encryptions
      expect(w.memory.phys.hostVisiblePages).toBe(0);
      expect(w.memory.vmalloc.areas().filter((a) => a.tag === MONITOR_TAGS.mapping)).toEqual([]);
    },
  );
});
