import { describe, expect, it } from "vitest";
import { DMA_ATTR_NO_WARN, type SwiotlbDevice } from "./bounce-types.js";
import { SwiotlbError } from "./errors.js";
import { IoTlbMem, type IoTlbMemOptions } from "./io-tlb.js";
import { IO_TLB_SIZE } from "./sizing.js";
import { freshList } from "./testing/fake-phys.js";

const START = 0x1000_0000; // page-aligned, as memblock_alloc_low returns it
const netvsc: SwiotlbDevice = { minAlignMask: 0xfff }; // HV_HYP_PAGE_SIZE - 1
const plain: SwiotlbDevice = { minAlignMask: 0 };
const slots = (n: number): number => n * IO_TLB_SIZE;

function pool(nslabs = 256, extra: Partial<IoTlbMemOptions> = {}): IoTlbMem {
  return new IoTlbMem({ start: START, nslabs, ...extra });
}

function catchError(fn: () => unknown): SwiotlbError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SwiotlbError) return e;
    throw e;
  }
  throw new Error("expected a SwiotlbError");
}

describe("slot search stride and alignment (netvsc min_align_mask 0xFFF)", () => {
  it("steps by 2 slots: a second 1-slot request skips the odd slot", () => {
    const mem = pool();
    expect(mem.findSlots(netvsc, 0x1000, 100)).toBe(0);
    expect(mem.indexOf()).toBe(1);
    // ALIGN(1, 2) = 2
    expect(mem.findSlots(netvsc, 0x1000, 100)).toBe(2);
    expect(mem.indexOf()).toBe(3);
  });

  it("matches address bit 11: an original in the upper half of its page lands in an odd slot", () => {
    const mem = pool();
    mem.findSlots(netvsc, 0x1000, 100);
    mem.findSlots(netvsc, 0x1000, 100);
    // ALIGN(3, 2) = 4, slot 4 has bit 11 clear, +1 → slot 5
    expect(mem.findSlots(netvsc, 0x1800, 100)).toBe(5);
    expect((mem.slotAddr(5) & 0x800) !== 0).toBe(true);
  });

  it("steps by 4 slots when the padded size reaches a page", () => {
    const mem = pool();
    mem.findSlots(netvsc, 0x2000, 100); // slot 0, index 1
    expect(mem.findSlots(netvsc, 0x3000, 4096)).toBe(4); // ALIGN(1, 4)
  });

  it("counts the in-slot offset in the page test, as the kernel's padded size does", () => {
    const a = pool();
    a.findSlots(netvsc, 0x2000, 100);
    expect(a.findSlots(netvsc, 0x3000, 4000)).toBe(2); // 4000 < 4096: stride 2
    const b = pool();
    b.findSlots(netvsc, 0x2000, 100);
    expect(b.findSlots(netvsc, 0x3100, 4000)).toBe(4); // 0x100 + 4000 = 4096: stride 4
  });

  it("takes ceil((size + offset) / 2 KiB) slots and records orig_addr and alloc_size per slot", () => {
    const mem = pool();
    // offset 0x234; 0x234 + 3000 = 3564 → 2 slots
    expect(mem.findSlots(netvsc, 0x1234, 3000)).toBe(0);
    expect(mem.used).toBe(2);
    expect(mem.origAddrAt(0)).toBe(0x1234);
    expect(mem.origAddrAt(1)).toBe(0x1234 + 2048);
    expect(mem.allocSizeAt(0)).toBe(3000);
    expect(mem.allocSizeAt(1)).toBe(3000 - 2048);
    expect(mem.listAt(2)).toBe(126);
  });
});

describe("segments", () => {
  it("never places a request across a 128-slot segment boundary", () => {
    const mem = pool();
    expect(mem.findSlots(plain, 0x10_0000, slots(120))).toBe(0);
    expect(mem.listAt(120)).toBe(8);
    expect(mem.findSlots(plain, 0x10_0000, slots(16))).toBe(128);
    expect(mem.listAt(120)).toBe(8); // the 8-slot tail stays free
  });

  it("can never satisfy more than one segment", () => {
    const mem = pool();
    expect(mem.findSlots(plain, 0x10_0000, slots(129))).toBe(-1);
    expect(mem.stats().failures).toBe(1);
  });

  it("honours a device segment boundary (iommu_is_span_boundary)", () => {
    const mem = pool();
    const dev: SwiotlbDevice = { minAlignMask: 0, segBoundaryMask: 0xffff }; // 64 KiB = 32 slots
    expect(mem.findSlots(dev, 0x10_0000, slots(20))).toBe(0);
    expect(mem.findSlots(dev, 0x10_0000, slots(20))).toBe(32);
  });
});

describe("next fit", () => {
  it("wraps around to the start of the pool", () => {
    const mem = pool();
    const a = mem.findSlots(plain, 0x10_0000, slots(128));
    expect(mem.findSlots(plain, 0x20_0000, slots(100))).toBe(128);
    expect(mem.indexOf()).toBe(228);
    mem.releaseSlots(plain, mem.slotAddr(a));
    expect(mem.findSlots(plain, 0x30_0000, slots(50))).toBe(0);
    expect(mem.indexOf()).toBe(50);
  });

  it("gives up after one lap, changing nothing", () => {
    const mem = pool();
    mem.findSlots(plain, 0x10_0000, slots(100)); // 0..99
    mem.findSlots(plain, 0x20_0000, slots(100)); // 128..227
    const before = mem.listSnapshot();
    // 56 slots free, but as 28 + 28
    expect(mem.findSlots(plain, 0x30_0000, slots(50))).toBe(-1);
    expect(mem.listSnapshot()).toEqual(before);
    expect(mem.indexOf()).toBe(228);
    expect(mem.stats()).toMatchObject({ used: 200, liveMappings: 2, failures: 1 });
  });

  it("fails fast when fewer slots are free than asked", () => {
    const mem = pool(128);
    mem.findSlots(plain, 0x10_0000, slots(100));
    expect(mem.findSlots(plain, 0x20_0000, slots(29))).toBe(-1);
  });
});

describe("the 5.15–6.2 search that never ends", () => {
  // Even slots all used, index on an even slot, a 2-slot request whose original has bit 11 set: every
  // odd slot has only 1 free slot, and +1/+2 steps cycle through the odd slots without meeting index 4.
  function fragmented(termination: IoTlbMemOptions["searchTermination"]): IoTlbMem {
    const mem = pool(256, termination === undefined ? {} : { searchTermination: termination });
    for (let i = 0; i < 128; i++) expect(mem.findSlots(netvsc, 0x1000, 1024)).toBe(2 * i);
    mem.releaseSlots(netvsc, mem.slotAddr(2));
    expect(mem.findSlots(netvsc, 0x1000, 1024)).toBe(2);
    expect(mem.indexOf()).toBe(3);
    return mem;
  }

  it("is reported as a lockup (the kernel spins under the lock) and changes nothing", () => {
    const mem = fragmented(undefined);
    const before = mem.listSnapshot();
    const e = catchError(() => mem.findSlots(netvsc, 0x1800, 3000));
    expect(e.code).toBe("EDEADLK");
    expect(e.fault).toBe("lockup");
    expect(mem.listSnapshot()).toEqual(before);
    expect(mem.stats()).toMatchObject({ lockups: 1, used: 128, liveMappings: 128 });
  });

  it("returns -1 under the 6.3 slots-checked rule", () => {
    const mem = fragmented("slots-checked");
    expect(mem.findSlots(netvsc, 0x1800, 3000)).toBe(-1);
    expect(mem.stats().lockups).toBe(0);
  });
});

describe("exhaustion", () => {
  it("fills, fails cleanly with counters intact, and recovers on release", () => {
    const lines: string[] = [];
    const mem = pool(256, { printk: (l) => lines.push(l) });
    const taken: number[] = [];
    for (;;) {
      const i = mem.findSlots(netvsc, 0x4000 + (taken.length % 2) * 0x800, 1500);
      if (i < 0) break;
      taken.push(i);
    }
    expect(taken.length).toBe(256);
    expect(mem.stats()).toMatchObject({ used: 256, peakUsed: 256, liveMappings: 256, failures: 1 });
    expect(lines).toEqual(["swiotlb buffer is full (sz: 1500 bytes), total 256 (slots), used 256 (slots)"]);
    // both originals sit at offset 0 of their half page, so the bounce address is the slot address
    for (const i of taken) mem.releaseSlots(netvsc, mem.slotAddr(i));
    expect(mem.stats()).toMatchObject({ used: 0, peakUsed: 256, liveMappings: 0, releases: 256 });
    expect(mem.listSnapshot()).toEqual(freshList(256));
    expect(mem.findSlots(netvsc, 0x4000, 1500)).toBeGreaterThanOrEqual(0);
  });
});

describe("release", () => {
  it("merges with the runs on both sides until list[] is fresh again", () => {
    const mem = pool();
    expect(mem.findSlots(plain, 0x10_0000, 6000)).toBe(0); // 3 slots
    expect(mem.findSlots(plain, 0x20_0000, 4000)).toBe(3); // 2 slots; under a page, so stride 1
    expect(mem.findSlots(plain, 0x30_0000, 2000)).toBe(5); // 1 slot
    expect(mem.listAt(6)).toBe(122);
    mem.releaseSlots(plain, mem.slotAddr(3));
    expect([2, 3, 4, 5].map((i) => mem.listAt(i))).toEqual([0, 2, 1, 0]);
    mem.releaseSlots(plain, mem.slotAddr(0));
    expect([0, 1, 2, 3, 4, 5].map((i) => mem.listAt(i))).toEqual([5, 4, 3, 2, 1, 0]);
    mem.releaseSlots(plain, mem.slotAddr(5));
    expect(mem.listSnapshot()).toEqual(freshList(256));
    expect(mem.origAddrAt(5)).toBe(-1);
    expect(mem.allocSizeAt(5)).toBe(0);
  });

  it("rounds page-sized requests to an even slot even without an alignment mask", () => {
    const mem = pool();
    mem.findSlots(plain, 0x10_0000, 6000); // 0..2, index 3
    expect(mem.findSlots(plain, 0x20_0000, 4096)).toBe(4); // ALIGN(3, 2): slot 3 stays free
    expect(mem.listAt(3)).toBe(1);
  });

  it("refuses slots that are not mapped, the middle of a mapping, a wrong offset, or an outside address", () => {
    const mem = pool();
    const i = mem.findSlots(netvsc, 0x1234, slots(2)); // offset 0x234, 3 slots
    const tlb = mem.slotAddr(i) + 0x234;
    const before = mem.listSnapshot();
    expect(catchError(() => mem.releaseSlots(netvsc, mem.slotAddr(10))).reason).toBe("slot-free");
    expect(catchError(() => mem.releaseSlots(netvsc, mem.slotAddr(1) + 0x234)).reason).toBe(
      "not-mapping-start",
    );
    expect(catchError(() => mem.releaseSlots(netvsc, mem.slotAddr(0) + 0x200)).reason).toBe(
      "address-mismatch",
    );
    expect(catchError(() => mem.releaseSlots(netvsc, START - 1)).reason).toBe("outside-pool");
    expect(mem.listSnapshot()).toEqual(before);
    expect(mem.releaseSlots(netvsc, tlb)).toBe(3);
    const again = catchError(() => mem.releaseSlots(netvsc, tlb));
    expect([again.code, again.fault, again.reason]).toEqual(["EINVAL", "bad-caller", "slot-free"]);
  });
});

describe("the 'buffer is full' warning", () => {
  function full(clock: () => number, lines: string[]): IoTlbMem {
    const mem = pool(128, { clock, printk: (l) => lines.push(l) });
    mem.findSlots(plain, 0x10_0000, slots(128));
    return mem;
  }

  it("prints 10 per 5 s of simulated time and counts the rest", () => {
    let now = 1000;
    const lines: string[] = [];
    const mem = full(() => now, lines);
    for (let k = 0; k < 25; k++) mem.findSlots(plain, 0x20_0000, 100);
    expect(mem.stats()).toMatchObject({ failures: 25, fullWarningsPrinted: 10, fullWarningsSuppressed: 15 });
    now += 5000; // not yet: the window ends strictly after the interval
    mem.findSlots(plain, 0x20_0000, 100);
    expect(mem.stats().fullWarningsSuppressed).toBe(16);
    now += 1;
    mem.findSlots(plain, 0x20_0000, 100);
    expect(mem.stats().fullWarningsPrinted).toBe(11);
    expect(lines.at(-2)).toBe("swiotlb_tbl_map_single: 16 callbacks suppressed");
    expect(lines.length).toBe(12);
  });

  it("stays silent with DMA_ATTR_NO_WARN", () => {
    const lines: string[] = [];
    const mem = full(() => 0, lines);
    expect(mem.findSlots(plain, 0x20_0000, 100, { attrs: DMA_ATTR_NO_WARN })).toBe(-1);
    expect(lines).toEqual([]);
    expect(mem.stats()).toMatchObject({ failures: 1, fullWarningsNoWarn: 1, fullWarningsPrinted: 0 });
  });

  it("defaults to a counter clock, so a burst of failures is limited", () => {
    const mem = pool(128);
    mem.findSlots(plain, 0x10_0000, slots(128));
    for (let k = 0; k < 100; k++) mem.findSlots(plain, 0x20_0000, 100);
    // one simulated millisecond per failure: all 100 fall in the first 5 s window
    expect(mem.stats()).toMatchObject({ fullWarningsPrinted: 10, fullWarningsSuppressed: 90 });
  });
});

describe("areas (6.x)", () => {
  it("starts in area cpu & (nareas - 1), then tries the others in order", () => {
    const mem = pool(512, { nareas: 4 });
    expect(mem.findSlots(plain, 0x10_0000, 100, { cpu: 2 })).toBe(256);
    expect(mem.findSlots(plain, 0x10_0000, 100, { cpu: 5 })).toBe(128);
    // page-sized: ALIGN(1, 2) = 2 inside area 2
    expect(mem.findSlots(plain, 0x10_0000, slots(126), { cpu: 2 })).toBe(258);
    // the area cursor wrapped (2 + 126 = 128 → 0): slot 256 is taken, 257 is free
    expect(mem.findSlots(plain, 0x10_0000, 100, { cpu: 2 })).toBe(257);
    expect(mem.usedIn(2)).toBe(128);
    // area 2 is full: area 3 next
    expect(mem.findSlots(plain, 0x10_0000, 100, { cpu: 2 })).toBe(384);
    expect(mem.usedIn(3)).toBe(1);
    mem.releaseSlots(plain, mem.slotAddr(384));
    expect(mem.usedIn(3)).toBe(0);
    expect(mem.used).toBe(129);
  });

  it("keeps a next-fit cursor per area", () => {
    const mem = pool(512, { nareas: 2 });
    mem.findSlots(plain, 0x10_0000, slots(10), { cpu: 1 });
    expect([mem.indexOf(0), mem.indexOf(1)]).toEqual([0, 10]);
  });
});

describe("construction", () => {
  it("refuses pools the slot maths cannot describe", () => {
    expect(catchError(() => new IoTlbMem({ start: START, nslabs: 100 })).reason).toBe("bad-pool");
    expect(catchError(() => new IoTlbMem({ start: START + 1, nslabs: 128 })).reason).toBe("bad-pool");
    expect(catchError(() => new IoTlbMem({ start: START, nslabs: 256, nareas: 3 })).reason).toBe("bad-pool");
  });
});
