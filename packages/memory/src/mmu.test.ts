import { describe, expect, it } from "vitest";
import { PAGE_SIZE } from "./constants.js";
import { MemoryFault } from "./errors.js";
import { GuestMemory } from "./guest-memory.js";

const MiB = 2 ** 20;
const VTOM = 2 ** 46;

describe("MMU", () => {
  it("reads and writes across page boundaries of a vmalloc buffer with bulk copies", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const va = mem.vmalloc.vzalloc(3 * PAGE_SIZE, { tag: "buf" })!;
    const data = Uint8Array.from({ length: 6000 }, (_, i) => i & 0xff);
    mem.mmu.write(va + 100, data);
    const out = new Uint8Array(6000);
    mem.mmu.read(va + 100, out);
    expect(out).toEqual(data);
    mem.mmu.writeU32(va, 0xdeadbeef);
    expect(mem.mmu.readU32(va)).toBe(0xdeadbeef);
    expect(mem.mmu.tlbHits).toBeGreaterThan(0);
  });

  it("reads into and writes from a piece of a buffer as read() and write() of that piece would", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const va = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    const src = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
    const at = PAGE_SIZE - 100; // the piece crosses into the second page
    mem.mmu.writeFrom(va + at, src, 50, 200);
    const whole = new Uint8Array(200);
    mem.mmu.read(va + at, whole);
    expect([...whole]).toEqual([...src.subarray(50, 250)]);
    const dst = new Uint8Array(300).fill(0xee);
    const before = { r: mem.mmu.bytesRead, w: mem.mmu.bytesWritten };
    mem.mmu.readInto(va + at, dst, 40, 200);
    expect([...dst.subarray(40, 240)]).toEqual([...whole]);
    expect(dst[39]).toBe(0xee);
    expect(dst[240]).toBe(0xee);
    expect([mem.mmu.bytesRead - before.r, mem.mmu.bytesWritten - before.w]).toEqual([200, 0]);
    // a piece outside its buffer is the caller's bug: refused before any access
    expect(() => mem.mmu.readInto(va, dst, 250, 51)).toThrowError(RangeError);
    expect(() => mem.mmu.writeFrom(va, src, -1, 4)).toThrowError(RangeError);
    expect(() => mem.mmu.readInto(va, dst, 1.5, 4)).toThrowError(RangeError);
    expect(mem.mmu.bytesRead - before.r).toBe(200);
    // and the faults are read()'s: an unmapped address faults, counted
    expect(() => mem.mmu.readInto(0x1000, dst, 0, 4)).toThrowError(MemoryFault);
    expect(mem.mmu.faults.unmapped).toBe(1);
  });

  it("faults on the private alias of a host-visible page and the shared alias of a private page (I7)", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const va = mem.vmalloc.vzalloc(PAGE_SIZE, { tag: "buf" })!;
    const pfn = mem.virtToPfn(va);
    const alias = mem.vmalloc.vmapPfn([pfn + mem.vtomPfn], { tag: "alias" })!;
    expect(() => mem.mmu.read(alias, new Uint8Array(4))).toThrowError(MemoryFault);
    expect(mem.mmu.faults["shared-alias-to-private-page"]).toBe(1);
    mem.phys.setHostVisible(pfn, true);
    expect(() => mem.mmu.write(va, new Uint8Array(4))).toThrowError(/private-alias-to-shared-page/);
    expect(mem.mmu.faults["private-alias-to-shared-page"]).toBe(1);
    mem.mmu.write(alias, new Uint8Array([9, 8, 7]));
    const out = new Uint8Array(3);
    mem.phys.read(pfn * PAGE_SIZE, out);
    expect([...out]).toEqual([9, 8, 7]);
  });

  it("reads and writes u32 words with read()'s bytes, counters and faults, inside a page and across one", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const va = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    const pfn = mem.virtToPfn(va);
    const alias = mem.vmalloc.vmapPfn([pfn + mem.vtomPfn, mem.virtToPfn(va + PAGE_SIZE) + mem.vtomPfn], {
      tag: "alias",
    })!;
    expect(() => mem.mmu.readU32(alias + 8)).toThrowError(/shared-alias-to-private-page/);
    expect(() => mem.mmu.writeU32(alias + 8, 1)).toThrowError(/shared-alias-to-private-page/);
    expect(mem.mmu.faults["shared-alias-to-private-page"]).toBe(2);
    mem.phys.setHostVisibleRange(pfn, 2, true);
    // a converted page reads as its destroyed contents, the same through u32 and byte reads
    const bytes = new Uint8Array(4);
    mem.mmu.read(alias + 8, bytes);
    expect(mem.mmu.readU32(alias + 8)).toBe(new DataView(bytes.buffer).getUint32(0, true));
    const before = { r: mem.mmu.bytesRead, w: mem.mmu.bytesWritten, s: mem.mmu.sharedReads };
    mem.mmu.writeU32(alias + 8, 0x8badf00d);
    mem.mmu.writeU32(alias + PAGE_SIZE - 2, 0x11223344); // crosses into the second page
    expect(mem.mmu.readU32(alias + 8)).toBe(0x8badf00d);
    expect(mem.mmu.readU32(alias + PAGE_SIZE - 2)).toBe(0x11223344);
    mem.phys.read(pfn * PAGE_SIZE + PAGE_SIZE - 2, bytes);
    expect([...bytes]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(mem.phys.readU32(pfn * PAGE_SIZE + 8)).toBe(0x8badf00d);
    expect(() => mem.phys.readU32(pfn * PAGE_SIZE + PAGE_SIZE - 2)).toThrowError(/crosses a page/);
    expect([
      mem.mmu.bytesRead - before.r,
      mem.mmu.bytesWritten - before.w,
      mem.mmu.sharedReads - before.s,
    ]).toEqual([8, 8, 2]);
    // revoked: the word faults exactly as a byte access does
    mem.phys.setHostVisibleRange(pfn, 2, false);
    expect(() => mem.mmu.readU32(alias + 8)).toThrowError(/shared-alias-to-private-page/);
    expect(() => mem.mmu.writeU32(alias + PAGE_SIZE - 2, 0)).toThrowError(/shared-alias-to-private-page/);
  });

  it("gives a recycled byte slot the zeros of a fresh page", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const pfnA = 100;
    const pfnB = 200;
    mem.phys.fill(pfnA * PAGE_SIZE, PAGE_SIZE, 0xab);
    mem.phys.zeroPage(pfnA); // its slot goes back to the free list with 0xab in it
    mem.phys.write(pfnB * PAGE_SIZE + 10, new Uint8Array([1]));
    const out = new Uint8Array(PAGE_SIZE);
    mem.phys.read(pfnB * PAGE_SIZE, out);
    expect(out.filter((b) => b !== 0)).toEqual(new Uint8Array([1]));
    expect(out[10]).toBe(1);
  });

  it("counts reads that fetched through a shared alias, once per call (for I3 double-fetch checks)", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    const va = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    const pfns = [mem.virtToPfn(va), mem.virtToPfn(va + PAGE_SIZE)];
    const alias = mem.vmalloc.vmapPfn([pfns[0]! + mem.vtomPfn], { tag: "alias" })!;
    const priv = mem.kmalloc.kzalloc(64, { tag: "priv" })!;
    mem.phys.setHostVisible(pfns[0]!, true);
    mem.mmu.read(va + PAGE_SIZE, new Uint8Array(8)); // private
    mem.mmu.read(priv, new Uint8Array(8));
    expect(mem.mmu.sharedReads).toBe(0);
    mem.mmu.read(alias, new Uint8Array(PAGE_SIZE));
    mem.mmu.copy(priv, alias + 8, 16);
    expect(mem.mmu.sharedReads).toBe(2);
    mem.mmu.write(alias, new Uint8Array(4)); // writes are not fetches
    expect(mem.mmu.sharedReads).toBe(2);
  });

  it("faults on not-present PTEs and sees the change at once (translation cache invalidated)", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM, vtomMode: "pte-bit" });
    const va = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    mem.mmu.read(va, new Uint8Array(1)); // fills the cache
    mem.changePageAttr(va, 2, { present: false });
    expect(() => mem.mmu.read(va + PAGE_SIZE, new Uint8Array(1))).toThrowError(/not-present/);
    expect(() => mem.mmu.read(va, new Uint8Array(1))).toThrowError(/not-present/);
    mem.changePageAttr(va, 2, { present: true, shared: true });
    // The same VA now reaches the shared alias: private pages are refused until the hypervisor flips them.
    expect(() => mem.mmu.read(va, new Uint8Array(1))).toThrowError(/shared-alias-to-private-page/);
    mem.phys.setHostVisible(mem.virtToPfn(va), true);
    expect(mem.mmu.translate(va)).toEqual({ pfn: mem.virtToPfn(va), shared: true });
  });

  it("applies the rules to the direct map too", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM, vtomMode: "pte-bit" });
    const va = mem.kmalloc.kzalloc(64, { tag: "obj" })!;
    mem.mmu.write(va, new Uint8Array([1]));
    const pfn = mem.virtToPfn(va);
    mem.phys.setHostVisible(pfn, true);
    expect(() => mem.mmu.read(va, new Uint8Array(1))).toThrowError(/private-alias-to-shared-page/);
    mem.changePageAttr(va - (va % PAGE_SIZE), 1, { shared: true });
    mem.mmu.read(va, new Uint8Array(1));
  });

  it("does no alias checks in a VM without isolation", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB });
    const va = mem.vmalloc.vzalloc(PAGE_SIZE, { tag: "buf" })!;
    mem.phys.setHostVisible(mem.virtToPfn(va), true);
    mem.mmu.write(va, new Uint8Array([1, 2]));
    expect(mem.mmu.totalFaults).toBe(0);
  });

  it("reports unmapped addresses as faults, never as crashes", () => {
    const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
    expect(() => mem.mmu.read(0x1234, new Uint8Array(1))).toThrowError(MemoryFault);
    expect(mem.mmu.faults.unmapped).toBe(1);
  });

  describe("copy", () => {
    const pattern = (n: number, seed: number) =>
      Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

    it("copies across page boundaries of both ranges with read() + write()'s bytes and counters", () => {
      const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
      const src = mem.vmalloc.vzalloc(3 * PAGE_SIZE, { tag: "src" })!;
      const dst = mem.vmalloc.vzalloc(3 * PAGE_SIZE, { tag: "dst" })!;
      const data = pattern(9000, 3);
      mem.mmu.write(src + 50, data);
      const before = { read: mem.mmu.bytesRead, written: mem.mmu.bytesWritten };
      mem.mmu.copy(dst + 3000, src + 50, 5000);
      const out = new Uint8Array(5000);
      mem.mmu.read(dst + 3000, out);
      expect(out).toEqual(data.subarray(0, 5000));
      expect(mem.mmu.bytesRead - before.read).toBe(5000 + 5000);
      expect(mem.mmu.bytesWritten - before.written).toBe(5000);
      // a page never written reads as zeros, and copies as zeros over written bytes
      const fresh = mem.vmalloc.vzalloc(PAGE_SIZE, { tag: "fresh" })!;
      mem.mmu.copy(dst + 3000, fresh + 10, 100);
      const zeros = new Uint8Array(100);
      mem.mmu.read(dst + 3000, zeros);
      expect(zeros).toEqual(new Uint8Array(100));
    });

    it("gives memmove's result for overlapping ranges, forwards and backwards", () => {
      const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
      const va = mem.vmalloc.vzalloc(3 * PAGE_SIZE, { tag: "buf" })!;
      const data = pattern(3 * PAGE_SIZE, 11);
      for (const [to, from, len] of [
        [100, 40, 6000],
        [40, 100, 6000],
        [4090, 4000, 200],
      ] as const) {
        mem.mmu.write(va, data);
        mem.mmu.copy(va + to, va + from, len);
        const expected = data.slice();
        expected.copyWithin(to, from, from + len);
        const out = new Uint8Array(3 * PAGE_SIZE);
        mem.mmu.read(va, out);
        expect(out).toEqual(expected);
      }
    });

    it("gives memmove's result when the destination is another mapping of a source page", () => {
      const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM });
      const va = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
      const second = mem.virtToPfn(va + PAGE_SIZE);
      const alias = mem.vmalloc.vmap([second], { tag: "alias" })!;
      const data = pattern(2 * PAGE_SIZE, 5);
      mem.mmu.write(va, data);
      // the source's second page is the alias: the copy reads it before writing through the alias
      mem.mmu.copy(alias + 16, va + 4000, 1000);
      const expected = data.slice();
      expected.copyWithin(PAGE_SIZE + 16, 4000, 5000);
      const out = new Uint8Array(2 * PAGE_SIZE);
      mem.mmu.read(va, out);
      expect(out).toEqual(expected);
    });

    it("leaves the destination untouched and the counters as read() leaves them when a source page faults", () => {
      const mem = new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM, vtomMode: "pte-bit" });
      const src = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "src" })!;
      const dst = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "dst" })!;
      mem.mmu.write(src, pattern(2 * PAGE_SIZE, 1));
      const old = pattern(2 * PAGE_SIZE, 9);
      mem.mmu.write(dst, old);
      mem.changePageAttr(src + PAGE_SIZE, 1, { present: false });
      const before = { read: mem.mmu.bytesRead, written: mem.mmu.bytesWritten, shared: mem.mmu.sharedReads };
      expect(() => mem.mmu.copy(dst + 10, src + 100, 6000)).toThrowError(/not-present/);
      expect(mem.mmu.faults["not-present"]).toBe(1);
      expect(mem.mmu.bytesRead).toBe(before.read);
      expect(mem.mmu.bytesWritten).toBe(before.written);
      expect(mem.mmu.sharedReads).toBe(before.shared);
      const out = new Uint8Array(2 * PAGE_SIZE);
      mem.mmu.read(dst, out);
      expect(out).toEqual(old);
    });
  });
});
