import { describe, expect, it } from "vitest";
import { PAGE_SIZE, VMALLOC_START } from "./constants.js";
import { MemoryError } from "./errors.js";
import { GuestMemory } from "./guest-memory.js";

const MiB = 2 ** 20;
const VTOM = 2 ** 46;

function guest(bytes = 256 * MiB): GuestMemory {
  return new GuestMemory({ bytes, sharedGpaBoundary: VTOM });
}

describe("vmalloc range", () => {
  it("keeps one guard page between areas", () => {
    const mem = guest();
    const a = mem.vmalloc.vmalloc(3 * PAGE_SIZE, { tag: "a" })!;
    const b = mem.vmalloc.vmalloc(PAGE_SIZE, { tag: "b" })!;
    expect(a).toBe(VMALLOC_START);
    expect(b - a).toBe(4 * PAGE_SIZE); // 3 pages + guard
    expect(mem.vmalloc.findArea(a)!.reserved).toBe(4 * PAGE_SIZE);
    // The guard page is not mapped: touching it faults.
    expect(() => mem.mmu.read(a + 3 * PAGE_SIZE, new Uint8Array(1))).toThrowError(/unmapped/);
  });

  it("aligns vmap_pfn (VM_IOREMAP) areas to their size order: 16 MiB → 16 MiB, 1,044,480 B → 1 MiB", () => {
    const mem = guest();
    mem.vmalloc.vmalloc(PAGE_SIZE, { tag: "pad" });
    const rx = Array.from({ length: 4096 }, (_, i) => mem.vtomPfn + i);
    const tx = Array.from({ length: 255 }, (_, i) => mem.vtomPfn + 5000 + i);
    const rxVa = mem.vmalloc.vmapPfn(rx, { tag: "rx" })!;
    const txVa = mem.vmalloc.vmapPfn(tx, { tag: "tx" })!;
    expect(rxVa % (16 * MiB)).toBe(0);
    expect(txVa % MiB).toBe(0);
    expect(mem.vmalloc.findArea(rxVa)!.align).toBe(16 * MiB);
    expect(mem.vmalloc.findArea(txVa)!.align).toBe(MiB);
  });

  it("vmap and vmap_pfn keep a copy of the frames: the caller's array may change afterwards", () => {
    const mem = guest();
    const ram = new Float64Array(3);
    expect(mem.buddy.allocPagesBulk(3, { tag: "v" }, ram)).toBe(3);
    const alias = Float64Array.from(ram, (p) => p + mem.vtomPfn);
    const want = Array.from(ram);
    const va = mem.vmalloc.vmap(ram, { tag: "v" })!;
    const pfnVa = mem.vmalloc.vmapPfn(alias, { tag: "v" })!;
    ram.fill(0);
    alias.fill(0);
    expect(Array.from(mem.vmalloc.findArea(va)!.frames)).toEqual(want);
    expect(Array.from(mem.vmalloc.findArea(pfnVa)!.frames)).toEqual(want.map((p) => p + mem.vtomPfn));
    expect([0, 1, 2].map((i) => mem.vmalloc.vmallocToPfn(va + i * PAGE_SIZE))).toEqual(want);
    expect([0, 1, 2].map((i) => mem.vmalloc.vmallocToPfn(pfnVa + i * PAGE_SIZE))).toEqual(
      want.map((p) => p + mem.vtomPfn),
    );
  });

  it("vmap_pfn refuses PFNs that have a struct page", () => {
    const mem = guest();
    expect(mem.vmalloc.vmapPfn([1, 2, 3], { tag: "x" })).toBeNull();
    expect(mem.vmalloc.vmapPfnRefusals).toBe(1);
    expect(mem.vmalloc.areas()).toHaveLength(0);
  });

  it("counts page-table pages: 16 MiB at a fresh 2 MiB-aligned address costs 8 PTE pages", () => {
    const mem = guest();
    const before = { ...mem.pageTables.tablePages };
    const frames = Array.from({ length: 4096 }, (_, i) => mem.vtomPfn + i);
    const va = mem.vmalloc.vmapPfn(frames, { tag: "rx" })!;
    expect(va % (2 * MiB)).toBe(0);
    expect(mem.pageTables.tablePages.pte - before.pte).toBe(8);
    expect(mem.buddy.pagesOwnedBy("pagetable")).toBe(mem.pageTables.totalTablePages);
    // Page tables stay after vunmap; mapping the same range again costs none.
    mem.vmalloc.vunmap(va);
    mem.vmalloc.purge();
    const again = mem.vmalloc.vmapPfn(frames, { tag: "rx" })!;
    expect(again).toBe(va);
    expect(mem.pageTables.tablePages.pte - before.pte).toBe(8);
  });

  it("vzalloc maps order-0 pages with a kmalloc'd or vmalloc'd page array", () => {
    const mem = guest();
    const tx = mem.vmalloc.vzalloc(1_044_480, { tag: "tx" })!;
    const area = mem.vmalloc.findArea(tx)!;
    expect(area.frames.length).toBe(255);
    expect(area.pageArray).toMatchObject({ bytes: 2040, vmalloc: false });
    expect(mem.kmalloc.statsFor("vmalloc-page-array").liveFootprint).toBe(2048);
    const rx = mem.vmalloc.vzalloc(16 * MiB, { tag: "rx" })!;
    const rxArea = mem.vmalloc.findArea(rx)!;
    expect(rxArea.pageArray).toMatchObject({ bytes: 32768, vmalloc: true });
    expect(mem.buddy.pagesOwnedBy("rx")).toBe(4096);
    expect(mem.buddy.pagesOwnedBy("vmalloc-page-array")).toBe(8);
    expect(mem.virtToPfn(rx + 5 * PAGE_SIZE)).toBe(rxArea.frames[5]);
    mem.vmalloc.vfree(rx);
    mem.vmalloc.vfree(tx);
    expect(mem.buddy.pagesOwnedBy("rx")).toBe(0);
    expect(mem.buddy.pagesOwnedBy("vmalloc-page-array")).toBe(0);
    expect(mem.kmalloc.statsFor("vmalloc-page-array").live).toBe(0);
  });

  it("fails cleanly and releases everything when pages run out", () => {
    const mem = guest(8 * MiB);
    const free = mem.buddy.nrFreePages;
    const tables = mem.pageTables.totalTablePages;
    expect(mem.vmalloc.vmalloc(16 * MiB, { tag: "big" })).toBeNull();
    // Everything comes back except the page-table pages, which the kernel keeps for the vmalloc range.
    expect(mem.buddy.nrFreePages + (mem.pageTables.totalTablePages - tables)).toBe(free);
    expect(mem.vmalloc.areas()).toHaveLength(0);
    expect(mem.vmalloc.failures).toBe(1);
  });

  it("rejects unknown addresses with typed errors", () => {
    const mem = guest();
    expect(() => mem.vmalloc.vunmap(VMALLOC_START)).toThrowError(MemoryError);
    expect(() => mem.vmalloc.vfree(VMALLOC_START + 12)).toThrowError(/vfree-unknown/);
    const va = mem.vmalloc.vmalloc(PAGE_SIZE, { tag: "x" })!;
    expect(() => mem.vmalloc.vmalloc(0, { tag: "x" })).toThrowError(/vmalloc-size/);
    mem.vmalloc.vfree(va);
    expect(() => mem.vmalloc.vfree(va)).toThrowError(/vfree-unknown/);
  });

  it("refuses to vfree a buffer with a leaked page and changes nothing", () => {
    const mem = guest();
    const va = mem.vmalloc.vzalloc(4 * PAGE_SIZE, { tag: "buf" })!;
    const pfn = mem.virtToPfn(va + PAGE_SIZE);
    mem.buddy.leakPages(pfn, 1);
    expect(() => mem.vmalloc.vfree(va)).toThrowError(/leaked/);
    expect(mem.vmalloc.findArea(va)).toBeDefined();
    expect(mem.buddy.pagesOwnedBy("buf")).toBe(4);
  });

  it("names the first refused page: a visible page before a leaked one is the host-visible refusal", () => {
    const mem = guest();
    const va = mem.vmalloc.vzalloc(4 * PAGE_SIZE, { tag: "buf" })!;
    mem.phys.setHostVisible(mem.virtToPfn(va + PAGE_SIZE), true);
    mem.buddy.leakPages(mem.virtToPfn(va + 3 * PAGE_SIZE), 1);
    expect(() => mem.vmalloc.vfree(va)).toThrowError(/free-host-visible/);
    const other = mem.vmalloc.vzalloc(4 * PAGE_SIZE, { tag: "buf2" })!;
    mem.buddy.leakPages(mem.virtToPfn(other), 1);
    mem.phys.setHostVisible(mem.virtToPfn(other + 2 * PAGE_SIZE), true);
    expect(() => mem.vmalloc.vfree(other)).toThrowError(/free-leaked/);
    expect(mem.buddy.pagesOwnedBy("buf") + mem.buddy.pagesOwnedBy("buf2")).toBe(8);
  });

  it("purges lazily freed address space past lazy_max_pages", () => {
    const mem = guest(512 * MiB);
    expect(mem.vmalloc.lazyMaxPages).toBe(16384); // fls(2) × 32 MiB
    for (let i = 0; i < 6; i++) {
      const va = mem.vmalloc.vmalloc(16 * MiB, { tag: "churn" })!;
      mem.vmalloc.vfree(va);
    }
    expect(mem.vmalloc.purges).toBeGreaterThanOrEqual(1);
  });
});

describe("vmap with pgprot_decrypted", () => {
  it("maps RAM pages through their shared alias", () => {
    const mem = guest();
    const pfn = mem.buddy.allocPages(0, { tag: "ring" })!;
    const va = mem.vmalloc.vmap([pfn], { tag: "ring", decrypted: true })!;
    expect(mem.mmu.translate.bind(mem.mmu, va)).toThrowError(/shared-alias-to-private-page/);
    mem.phys.setHostVisible(pfn, true);
    expect(mem.mmu.translate(va)).toEqual({ pfn, shared: true });
    expect(mem.virtToPfn(va)).toBe(pfn);
  });
});
