import { describe, expect, it } from "vitest";
import { BackingCache } from "./backing-cache.js";
import { PAGE_SIZE } from "./constants.js";
import { MemoryFault } from "./errors.js";
import { GuestMemory } from "./guest-memory.js";
import { PhysicalMemory } from "./phys.js";

const MiB = 2 ** 20;
const VTOM = 2 ** 46;

/** A vmalloc'd page with bytes, read once so that its translation and backing are kept. */
function keptPage(mem: GuestMemory, fill: number): { va: number; pfn: number } {
  const va = mem.vmalloc.vzalloc(PAGE_SIZE, { tag: "buf" })!;
  mem.mmu.write(va, new Uint8Array(64).fill(fill));
  expect(mem.mmu.readU32(va)).toBe(fill * 0x01010101);
  return { va, pfn: mem.virtToPfn(va) };
}

describe("the MMU's kept backings", () => {
  it("count hits and misses as the translation cache does, also when a conflicting page evicts an entry", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    // 4097 pages: the first and the last share a translation-cache slot (vpn mod 4096)
    const va = mem.vmalloc.vzalloc(4097 * PAGE_SIZE, { tag: "big" })!;
    const far = va + 4096 * PAGE_SIZE;
    mem.mmu.write(va, Uint8Array.of(1, 2, 3, 4));
    mem.mmu.write(far, Uint8Array.of(5, 6, 7, 8));
    const steps: [number, number][] = [];
    const step = (access: () => void) => {
      const h = mem.mmu.tlbHits;
      const m = mem.mmu.tlbMisses;
      access();
      steps.push([mem.mmu.tlbHits - h, mem.mmu.tlbMisses - m]);
    };
    step(() => expect(mem.mmu.readU32(va)).toBe(0x04030201)); // the write to far evicted it
    step(() => expect(mem.mmu.readU32(va)).toBe(0x04030201)); // kept: served from the backing
    step(() => expect(mem.mmu.readU32(far)).toBe(0x08070605)); // evicts va's entry
    const out = new Uint8Array(4);
    step(() => mem.mmu.read(va, out));
    step(() => mem.mmu.read(va, out));
    expect([...out]).toEqual([1, 2, 3, 4]);
    expect(steps).toEqual([
      [0, 1],
      [1, 0],
      [0, 1],
      [0, 1],
      [1, 0],
    ]);
  });

  it("never serve an address the full path would refuse: a fractional one, or one just below 0", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const { va } = keptPage(mem, 0x77);
    expect(() => mem.mmu.readU32(va + 0.5)).toThrowError(/range/);
    expect(() => mem.mmu.read(va + 0.5, new Uint8Array(4))).toThrowError(/range/);
    expect(() => mem.mmu.writeU32(va + 0.5, 1)).toThrowError(/range/);
    // every translation-cache slot filled, then all emptied: an empty slot matches no page, not even
    // the one of [-4096, 0) (whose page number, -1, was once the empty tag)
    const big = mem.vmalloc.vzalloc(4096 * PAGE_SIZE, { tag: "big" })!;
    for (let p = 0; p < 4096; p++) mem.mmu.writeU32(big + p * PAGE_SIZE, p);
    mem.vmalloc.vunmap(big);
    expect(() => mem.mmu.readU32(-8)).toThrowError(/unmapped/);
    expect(() => mem.mmu.read(-8, new Uint8Array(4))).toThrowError(/unmapped/);
  });

  it("count bytes and shared reads on a kept page as on any other", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const va = mem.vmalloc.vzalloc(PAGE_SIZE, { tag: "buf" })!;
    const pfn = mem.virtToPfn(va);
    mem.phys.setHostVisible(pfn, true);
    const alias = mem.vmalloc.vmapPfn([pfn + mem.vtomPfn], { tag: "alias" })!;
    mem.mmu.write(alias, new Uint8Array(16).fill(7));
    const before = { r: mem.mmu.bytesRead, w: mem.mmu.bytesWritten, s: mem.mmu.sharedReads };
    for (let i = 0; i < 3; i++) {
      expect(mem.mmu.readU32(alias + 4)).toBe(0x07070707);
      mem.mmu.read(alias, new Uint8Array(16));
      mem.mmu.writeU32(alias + 8, 0x07070707);
      mem.mmu.write(alias, new Uint8Array(4).fill(7));
    }
    expect(mem.mmu.bytesRead - before.r).toBe(3 * 20);
    expect(mem.mmu.bytesWritten - before.w).toBe(3 * 8);
    expect(mem.mmu.sharedReads - before.s).toBe(6);
  });

  it("drop a page whose visibility flipped: the next access through the old alias faults", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const { va, pfn } = keptPage(mem, 0x5a);
    mem.phys.setHostVisible(pfn, true);
    expect(() => mem.mmu.readU32(va)).toThrowError(/private-alias-to-shared-page/);
    expect(() => mem.mmu.write(va, new Uint8Array(4))).toThrowError(MemoryFault);
    expect(mem.mmu.faults["private-alias-to-shared-page"]).toBe(2);
  });

  it("drop a page that was unmapped or remapped: no access reaches the old frame", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const a = keptPage(mem, 0x11);
    const b = keptPage(mem, 0x22);
    const alias = mem.vmalloc.vmap([a.pfn], { tag: "alias" })!;
    expect(mem.mmu.readU32(alias)).toBe(0x11111111);
    mem.vmalloc.vunmap(alias);
    expect(() => mem.mmu.readU32(alias)).toThrowError(/unmapped/);
    // the address range handed out again (after the lazy purge) for another frame reads that frame
    mem.vmalloc.purge();
    const again = mem.vmalloc.vmap([b.pfn], { tag: "alias" })!;
    expect(again).toBe(alias);
    expect(mem.mmu.readU32(again)).toBe(0x22222222);
    // and once more for a page that has no bytes: it reads as zeros, twice (nothing of b was kept)
    mem.vmalloc.vunmap(again);
    mem.vmalloc.purge();
    const fresh = mem.buddy.allocPages(0, { tag: "fresh" })!;
    const third = mem.vmalloc.vmap([fresh], { tag: "alias" })!;
    expect(third).toBe(alias);
    expect(mem.mmu.readU32(third)).toBe(0);
    expect(mem.mmu.readU32(third)).toBe(0);
  });

  it("drop a page whose bytes were released or moved, even when its old slot now holds another page", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const a = keptPage(mem, 0x33);
    // zeroed: the slot goes back to the pool, and the next page to get bytes takes it
    mem.phys.zeroPage(a.pfn);
    const b = mem.vmalloc.vmalloc(PAGE_SIZE, { tag: "other" })!;
    mem.mmu.write(b, new Uint8Array(PAGE_SIZE).fill(0xbb));
    expect(mem.mmu.readU32(a.va)).toBe(0);
    // written again, kept again, then its contents migrate away: it reads as zeros
    mem.mmu.writeU32(a.va + 8, 0xcafe);
    expect(mem.mmu.readU32(a.va + 8)).toBe(0xcafe);
    const spare = mem.buddy.allocPages(0, { tag: "spare" })!;
    mem.phys.migratePage(spare, a.pfn);
    expect(mem.mmu.readU32(a.va + 8)).toBe(0);
    const moved = new Uint8Array(4);
    mem.phys.read(spare * PAGE_SIZE + 8, moved);
    expect([...moved]).toEqual([0xfe, 0xca, 0, 0]);
  });

  it("keep nothing for a page without bytes: it reads as zeros until written, then as written", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const va = mem.vmalloc.vmalloc(PAGE_SIZE, { tag: "fresh" })!;
    const backed = mem.phys.backedPages;
    expect(mem.mmu.readU32(va)).toBe(0);
    expect(mem.mmu.readU32(va)).toBe(0);
    expect(mem.phys.backedPages).toBe(backed);
    mem.mmu.writeU32(va, 42);
    expect(mem.mmu.readU32(va)).toBe(42);
    expect(mem.phys.backedPages).toBe(backed + 1);
  });
});

describe("the MMU's kept direct-map backings", () => {
  it("serve a direct-map page until its attributes, visibility or bytes change", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const va = mem.kmalloc.kmalloc(PAGE_SIZE, { tag: "buf" })!;
    const pfn = mem.virtToPfn(va);
    mem.mmu.writeU32(va, 0x0badcafe);
    const hits = mem.mmu.tlbHits;
    expect(mem.mmu.readU32(va)).toBe(0x0badcafe);
    expect(mem.mmu.readU32(va)).toBe(0x0badcafe);
    expect(mem.mmu.tlbHits).toBe(hits); // the direct map has no translation to count
    // set_memory_np: the next access faults instead of reaching the kept bytes
    mem.changePageAttr(va, 1, { present: false });
    expect(() => mem.mmu.readU32(va)).toThrowError(/not-present/);
    mem.changePageAttr(va, 1, { present: true });
    expect(mem.mmu.readU32(va)).toBe(0x0badcafe);
    // the pte-bit era's shared bit on a private page: the shared alias faults
    mem.changePageAttr(va, 1, { shared: true });
    expect(() => mem.mmu.readU32(va)).toThrowError(/shared-alias-to-private-page/);
    mem.phys.setHostVisible(pfn, true); // converted: its contents were destroyed
    const converted = mem.mmu.readU32(va);
    expect(converted).not.toBe(0x0badcafe);
    expect(mem.mmu.sharedReads).toBeGreaterThan(0);
    mem.mmu.writeU32(va, 7);
    expect(mem.mmu.readU32(va)).toBe(7);
  });
});

describe("BackingCache", () => {
  it("finds a kept page until the backing epoch moves, and never keeps a page without bytes", () => {
    const phys = new PhysicalMemory(16 * PAGE_SIZE);
    const cache = new BackingCache(phys, 4);
    cache.remember(3);
    expect(cache.find(3)).toBe(-1); // no bytes yet
    phys.write(3 * PAGE_SIZE, Uint8Array.of(1, 2, 3, 4));
    cache.remember(3);
    const e = cache.find(3);
    expect(e).toBeGreaterThanOrEqual(0);
    expect(cache.readU32(e, 0)).toBe(0x04030201);
    cache.writeU32(e, 4, 0xa0b0c0d0);
    const out = new Uint8Array(4);
    phys.read(3 * PAGE_SIZE + 4, out);
    expect([...out]).toEqual([0xd0, 0xc0, 0xb0, 0xa0]);
    expect(cache.find(7)).toBe(-1); // same entry (7 mod 4), other page
    phys.write(9 * PAGE_SIZE, Uint8Array.of(1)); // bytes for a page that had none: still valid
    expect(cache.find(3)).toBe(e);
    phys.setHostVisible(12, true); // any flip moves the epoch
    expect(cache.find(3)).toBe(-1);
    expect(() => new BackingCache(phys, 3)).toThrowError(RangeError);
  });
});
