import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { PAGE_SIZE, VMALLOC_START } from "./constants.js";
import { MemoryError } from "./errors.js";
import { GuestMemory } from "./guest-memory.js";
import { makePte, Pte, pteFlags, pteFrame } from "./page-table.js";

const MiB = 2 ** 20;
const VTOM = 2 ** 46;
/** A window of 2048 pages that straddles a PGD entry boundary (512 GiB), so walks cross every level. */
const WINDOW_PAGES = 2048;
const BASE = VMALLOC_START + 2 ** 39 - 700 * PAGE_SIZE;

/** The first index where two byte arrays differ (-1 if none): cheaper than a deep equal of 16 Ki pages. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function guest(): GuestMemory {
  return new GuestMemory({ bytes: 64 * MiB, sharedGpaBoundary: VTOM, vtomMode: "pte-bit" });
}

type Op =
  | { kind: "map"; at: number; frames: number[]; flags: number }
  | { kind: "mapRun"; at: number; frame: number; pages: number; flags: number }
  | { kind: "unmap"; at: number; pages: number }
  | { kind: "present"; at: number; pages: number; present: boolean }
  | { kind: "shared"; at: number; pages: number; shared: boolean }
  | { kind: "failNextTable"; k: number };

const at = fc.integer({ min: 0, max: WINDOW_PAGES - 1 });
const pages = fc.integer({ min: 1, max: 700 });
const flags = fc.constantFrom(Pte.Present | Pte.Rw, Pte.Rw, Pte.Present | Pte.Rw | Pte.Special);
const frame = fc.integer({ min: 0, max: 2 ** 20 });
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("map" as const),
    at,
    frames: fc.array(frame, { minLength: 1, maxLength: 700 }),
    flags,
  }),
  fc.record({ kind: fc.constant("mapRun" as const), at, frame, pages, flags }),
  fc.record({ kind: fc.constant("unmap" as const), at, pages }),
  fc.record({ kind: fc.constant("present" as const), at, pages, present: fc.boolean() }),
  fc.record({ kind: fc.constant("shared" as const), at, pages, shared: fc.boolean() }),
  fc.record({ kind: fc.constant("failNextTable" as const), k: fc.integer({ min: 1, max: 3 }) }),
);

/** The range operation, on one guest. */
function ranged(mem: GuestMemory, o: Op): number {
  const t = mem.pageTables;
  switch (o.kind) {
    case "map":
      return t.map(BASE + o.at * PAGE_SIZE, o.frames, o.flags);
    case "mapRun":
      return t.mapRun(BASE + o.at * PAGE_SIZE, o.frame, o.pages, o.flags);
    case "unmap":
      t.unmap(BASE + o.at * PAGE_SIZE, o.pages);
      return 0;
    case "present":
      return t.setPresent(BASE + o.at * PAGE_SIZE, o.pages, o.present);
    case "shared":
      return t.setShared(BASE + o.at * PAGE_SIZE, o.pages, mem.vtomPfn, o.shared);
    case "failNextTable":
      mem.faults.failCall("pages", o.k);
      return 0;
  }
}

/** The same operation as single-page calls, on another guest. */
function pageByPage(mem: GuestMemory, o: Op): number {
  const t = mem.pageTables;
  const va = (i: number) => BASE + (("at" in o ? o.at : 0) + i) * PAGE_SIZE;
  let n = 0;
  switch (o.kind) {
    case "map":
      while (n < o.frames.length && t.set(va(n), makePte(o.frames[n]!, o.flags))) n++;
      return n;
    case "mapRun":
      while (n < o.pages && t.set(va(n), makePte(o.frame + n, o.flags))) n++;
      return n;
    case "unmap":
      for (let i = 0; i < o.pages; i++) t.clear(va(i));
      return 0;
    case "present":
      for (let i = 0; i < o.pages; i++) {
        const present = o.present;
        if (
          t.update(va(i), (pte) =>
            makePte(pteFrame(pte), present ? pteFlags(pte) | Pte.Present : pteFlags(pte) & ~Pte.Present),
          )
        )
          n++;
      }
      return n;
    case "shared":
      for (let i = 0; i < o.pages; i++) {
        const shared = o.shared;
        const v = mem.vtomPfn;
        const changed = t.update(va(i), (pte) => {
          const f = pteFrame(pte);
          const isShared = f >= v;
          return makePte(shared && !isShared ? f + v : !shared && isShared ? f - v : f, pteFlags(pte));
        });
        if (changed) n++;
      }
      return n;
    case "failNextTable":
      mem.faults.failCall("pages", o.k);
      return 0;
  }
}

function expectSameTables(a: GuestMemory, b: GuestMemory): void {
  expect(a.pageTables.tablePages).toEqual(b.pageTables.tablePages);
  expect(a.buddy.nrFreePages).toBe(b.buddy.nrFreePages);
  const ptes = new Float64Array(WINDOW_PAGES + 2);
  a.pageTables.read(BASE - PAGE_SIZE, WINDOW_PAGES + 2, ptes);
  for (let i = 0; i < WINDOW_PAGES + 2; i++) {
    const va = BASE + (i - 1) * PAGE_SIZE;
    if (ptes[i] !== b.pageTables.get(va) || a.pageTables.get(va) !== ptes[i]) {
      expect({ page: i - 1, pte: ptes[i], perPage: b.pageTables.get(va) }).toEqual({
        page: i - 1,
        pte: a.pageTables.get(va),
        perPage: a.pageTables.get(va),
      });
    }
  }
}

describe("page-table range operations", () => {
  test.prop([fc.array(op, { maxLength: 25 })], { numRuns: 60 })(
    "a range operation equals its single-page operations: same PTEs, table pages, failures and counts",
    (ops) => {
      const a = guest();
      const b = guest();
      for (const o of ops) {
        expect(ranged(a, o)).toBe(pageByPage(b, o));
        expectSameTables(a, b);
      }
      // Reads, holes and walks agree too.
      for (let i = 0; i < WINDOW_PAGES; i += 97) {
        const va = BASE + i * PAGE_SIZE;
        const n = Math.min(300, WINDOW_PAGES - i);
        let hole = -1;
        for (let j = 0; j < n && hole === -1; j++)
          if (b.pageTables.get(va + j * PAGE_SIZE) === 0) hole = va + j * PAGE_SIZE;
        expect(a.pageTables.firstUnmapped(va, n)).toBe(hole);
      }
    },
  );

  test.prop([fc.array(fc.tuple(at, pages), { maxLength: 8 }), at, fc.integer({ min: 1, max: 3000 })], {
    numRuns: 60,
  })(
    "missingTablePages predicts exactly the table pages a mapping then allocates",
    (earlier, start, count) => {
      const mem = guest();
      for (const [first, n] of earlier) mem.pageTables.mapRun(BASE + first * PAGE_SIZE, 1, n, Pte.Present);
      const va = BASE + start * PAGE_SIZE;
      const predicted = mem.pageTables.missingTablePages(va, count * PAGE_SIZE);
      const before = mem.pageTables.totalTablePages;
      expect(mem.pageTables.mapRun(va, 1, count, Pte.Present)).toBe(count);
      expect(mem.pageTables.totalTablePages - before).toBe(predicted);
      expect(mem.pageTables.missingTablePages(va, count * PAGE_SIZE)).toBe(0);
    },
  );

  it("invalidates cached translations over a range, so the MMU sees every rewritten PTE", () => {
    const mem = guest();
    const va = mem.vmalloc.vzalloc(600 * PAGE_SIZE, { tag: "buf" })!;
    for (let i = 0; i < 600; i++) mem.mmu.read(va + i * PAGE_SIZE, new Uint8Array(1)); // fill the cache
    mem.pageTables.setPresent(va, 600, false);
    for (let i = 0; i < 600; i += 599) {
      expect(() => mem.mmu.read(va + i * PAGE_SIZE, new Uint8Array(1))).toThrowError(/not-present/);
    }
    mem.pageTables.setPresent(va, 600, true);
    mem.pageTables.unmap(va + 10 * PAGE_SIZE, 1);
    expect(() => mem.mmu.read(va + 10 * PAGE_SIZE, new Uint8Array(1))).toThrowError(/unmapped/);
    mem.mmu.read(va + 11 * PAGE_SIZE, new Uint8Array(1));
  });

  it("has no PTE outside the 48-bit address space the model keeps", () => {
    const mem = guest();
    expect(mem.pageTables.get(-PAGE_SIZE)).toBe(0);
    expect(mem.pageTables.get(2 ** 48)).toBe(0);
    expect(mem.pageTables.set(2 ** 48, makePte(1, Pte.Present))).toBe(false);
    expect(() => mem.mmu.read(2 ** 48, new Uint8Array(1))).toThrowError(/unmapped/);
  });
});

describe("ranged callers", () => {
  test.prop(
    [fc.integer({ min: 1, max: 1200 }), fc.integer({ min: 0, max: 1300 }), fc.integer({ min: 1, max: 1300 })],
    { numRuns: 40 },
  )(
    "vmallocToPfns equals a loop of vmallocToPfn: pfns, walk count and the first error",
    (size, from, count) => {
      const mem = guest();
      const va = mem.vmalloc.vmalloc(size * PAGE_SIZE, { tag: "buf" })!;
      const start = va + from * PAGE_SIZE;
      const expected: number[] = [];
      let error: unknown = null;
      const walks = mem.vmalloc.pageWalks;
      try {
        for (let i = 0; i < count; i++) expected.push(mem.vmalloc.vmallocToPfn(start + i * PAGE_SIZE));
      } catch (e) {
        error = e;
      }
      const loopWalks = mem.vmalloc.pageWalks - walks;
      const out = new Float64Array(count + 1);
      const rangeWalks = mem.vmalloc.pageWalks;
      let rangeError: unknown = null;
      try {
        mem.vmalloc.vmallocToPfns(start, count, out, 1);
      } catch (e) {
        rangeError = e;
      }
      expect(mem.vmalloc.pageWalks - rangeWalks).toBe(loopWalks);
      expect(String(rangeError)).toBe(String(error));
      if (rangeError !== null) expect(rangeError).toBeInstanceOf(MemoryError);
      expect(Array.from(out.subarray(1, 1 + expected.length))).toEqual(expected);
    },
  );

  test.prop([fc.integer({ min: 1, max: 1100 }), fc.nat(), fc.nat(), fc.boolean(), fc.boolean()], {
    numRuns: 40,
  })(
    "changePageAttr over a range equals page-by-page calls: PTEs, direct-map aliases, MMU faults; a hole changes nothing",
    (size, f, c, shared, hole) => {
      const a = guest();
      const b = guest();
      const va = a.vmalloc.vmalloc(size * PAGE_SIZE, { tag: "buf" })!;
      expect(b.vmalloc.vmalloc(size * PAGE_SIZE, { tag: "buf" })).toBe(va);
      const from = f % size;
      const count = hole ? size - from + 1 + (c % 5) : 1 + (c % (size - from));
      const start = va + from * PAGE_SIZE;
      const change = { shared, present: !shared };
      const fits = !hole;
      if (!fits) {
        const flags = a.phys.flags.slice();
        expect(() => a.changePageAttr(start, count, change)).toThrowError(
          `0x${(va + size * PAGE_SIZE).toString(16)} has no PTE`,
        );
        expect(firstDifference(a.phys.flags, flags)).toBe(-1);
        expect(a.cpaPages).toBe(0);
        return;
      }
      a.changePageAttr(start, count, change);
      for (let i = 0; i < count; i++) b.changePageAttr(start + i * PAGE_SIZE, 1, change);
      expect(a.cpaPages).toBe(b.cpaPages);
      expect(firstDifference(a.phys.flags, b.phys.flags)).toBe(-1);
      const seen = (mem: GuestMemory) =>
        Array.from({ length: size }, (_, i) => {
          const page = va + i * PAGE_SIZE;
          try {
            mem.mmu.read(page, new Uint8Array(1));
            return `${mem.vmalloc.pte(page)} ok`;
          } catch (e) {
            return `${mem.vmalloc.pte(page)} ${(e as MemoryError).reason}`;
          }
        });
      expect(seen(a)).toEqual(seen(b));
      expect(a.mmu.faults).toEqual(b.mmu.faults);
    },
  );

  it("changePageAttr on the direct map refuses a range past guest RAM and changes nothing", () => {
    const mem = guest();
    const last = mem.pageToVirt(mem.phys.pages - 2);
    const flags = mem.phys.flags.slice();
    expect(() => mem.changePageAttr(last, 3, { present: false })).toThrowError(
      `0x${(last + 2 * PAGE_SIZE).toString(16)} has no PTE`,
    );
    expect(firstDifference(mem.phys.flags, flags)).toBe(-1);
    mem.changePageAttr(last, 2, { present: false });
    expect(() => mem.mmu.read(last + PAGE_SIZE, new Uint8Array(1))).toThrowError(/not-present/);
  });
});

describe("virtToPfns and zeroPages", () => {
  test.prop([fc.integer({ min: 1, max: 600 }), fc.nat(), fc.integer({ min: 1, max: 700 }), fc.boolean()], {
    numRuns: 40,
  })(
    "virtToPfns equals a loop of virtToPfn over vmalloc, vmap_pfn (shared alias) and direct-map ranges",
    (size, f, count, alias) => {
      const mem = guest();
      const pfns = Array.from({ length: size }, (_, i) => 1000 + ((i * 37) % 5000));
      const va = alias
        ? mem.vmalloc.vmapPfn(
            pfns.map((p) => p + mem.vtomPfn),
            { tag: "alias" },
          )!
        : mem.vmalloc.vmalloc(size * PAGE_SIZE, { tag: "buf" })!;
      for (const start of [va + (f % size) * PAGE_SIZE, mem.pageToVirt(f % mem.phys.pages)]) {
        const expected: number[] = [];
        let error = "none";
        try {
          for (let i = 0; i < count; i++) expected.push(mem.virtToPfn(start + i * PAGE_SIZE));
        } catch (e) {
          error = String(e);
        }
        const out = new Array<number>(count).fill(-1);
        let rangeError = "none";
        try {
          mem.virtToPfns(start, count, out);
        } catch (e) {
          rangeError = String(e);
        }
        expect(rangeError).toBe(error);
        expect(out.slice(0, expected.length)).toEqual(expected);
      }
    },
  );

  it("zeroPages makes a physical range read as zeros and releases its bytes; a range past RAM is refused", () => {
    const mem = guest();
    mem.phys.write(10 * PAGE_SIZE, new Uint8Array(3 * PAGE_SIZE).fill(7));
    expect(mem.phys.backedPages).toBe(3);
    mem.phys.zeroPages(10, 2);
    expect(mem.phys.backedPages).toBe(1);
    const out = new Uint8Array(3 * PAGE_SIZE);
    mem.phys.read(10 * PAGE_SIZE, out);
    expect(out.subarray(0, 2 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    expect(out.subarray(2 * PAGE_SIZE).every((b) => b === 7)).toBe(true);
    expect(() => mem.phys.zeroPages(mem.phys.pages - 1, 2)).toThrowError(MemoryError);
  });
});

describe("Mmu.copy", () => {
  it("behaves as memmove for overlapping ranges, call after call, with a kept bounce buffer", () => {
    const mem = guest();
    const va = mem.vmalloc.vzalloc(8 * PAGE_SIZE, { tag: "buf" })!;
    const data = Uint8Array.from({ length: 3 * PAGE_SIZE }, (_, i) => (i * 7) & 0xff);
    mem.mmu.write(va, data);
    mem.mmu.copy(va + 100, va, 3 * PAGE_SIZE); // forward overlap, larger than the first bounce buffer
    const out = new Uint8Array(3 * PAGE_SIZE);
    mem.mmu.read(va + 100, out);
    expect(out).toEqual(data);
    mem.mmu.copy(va, va + 100, 10); // a smaller copy after a larger one: only its own bytes move
    const small = new Uint8Array(11);
    mem.mmu.read(va, small);
    expect(Array.from(small)).toEqual([...Array.from(data.subarray(0, 10)), data[10]!]);
  });

  it("leaves the destination untouched when the source faults", () => {
    const mem = guest();
    const va = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    mem.mmu.write(va, new Uint8Array(PAGE_SIZE).fill(5));
    expect(() => mem.mmu.copy(va, va + PAGE_SIZE, 2 * PAGE_SIZE)).toThrowError(/unmapped/); // runs into the guard page
    const out = new Uint8Array(PAGE_SIZE);
    mem.mmu.read(va, out);
    expect(out.every((b) => b === 5)).toBe(true);
  });
});
