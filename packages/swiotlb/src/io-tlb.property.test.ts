import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SwiotlbBounce } from "./bounce.js";
import { DMA_FROM_DEVICE, DMA_MAPPING_ERROR, type SwiotlbDevice } from "./bounce-types.js";
import { SwiotlbError } from "./errors.js";
import { IoTlbMem, type SearchTermination } from "./io-tlb.js";
import { IO_TLB_SEGSIZE, IO_TLB_SIZE } from "./sizing.js";
import { expectedList, FakePhys } from "./testing/fake-phys.js";

const START = 0x4000_0000;

type Op =
  | { readonly kind: "map"; readonly orig: number; readonly size: number; readonly cpu: number }
  | { readonly kind: "unmap"; readonly pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("map" as const),
      orig: fc.integer({ min: 1, max: 2 ** 40 }),
      // mostly small, sometimes up to a whole segment (which may then not fit with an offset)
      size: fc.oneof(
        fc.integer({ min: 1, max: 6000 }),
        fc.integer({ min: 1, max: IO_TLB_SEGSIZE * IO_TLB_SIZE }),
      ),
      cpu: fc.nat({ max: 7 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("unmap" as const), pick: fc.nat() }) },
);

/** Cheap assertion for hot loops (vitest's expect is too slow to call per slot per step). */
function check(cond: boolean, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

function sameArray(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface Live {
  readonly tlb: number;
  readonly index: number;
  readonly nslots: number;
  readonly orig: number;
}

describe("slot allocator invariants under random map/unmap sequences", () => {
  it("keeps used, occupancy and list[] consistent", () => {
    const seen = { maps: 0, failures: 0, lockups: 0, releases: 0 };
    fc.assert(
      fc.property(
        fc.constantFrom(0, 0x7ff, 0xfff, 0x1fff),
        fc.constantFrom<SearchTermination>("wrap", "slots-checked"),
        fc.constantFrom(1, 2, 4),
        // size "max": long sequences, so the pool really fills and fragments
        fc.array(opArb, { maxLength: 200, size: "max" }),
        (minAlignMask, searchTermination, nareas, ops) => {
          const dev: SwiotlbDevice = { minAlignMask };
          const nslabs = 256;
          const mem = new IoTlbMem({ start: START, nslabs, nareas, searchTermination });
          const iotlbAlignMask = minAlignMask & ~(IO_TLB_SIZE - 1);
          const live: Live[] = [];
          for (const op of ops) {
            if (op.kind === "map") {
              const before = mem.listSnapshot();
              let index: number;
              try {
                index = mem.findSlots(dev, op.orig, op.size, { cpu: op.cpu });
              } catch (e) {
                // the kernel's endless search: must be reported without side effects
                check(e instanceof SwiotlbError && e.code === "EDEADLK", `unexpected ${String(e)}`);
                check(searchTermination === "wrap", "lockup under the slots-checked rule");
                check(sameArray(mem.listSnapshot(), before), "lockup changed list[]");
                seen.lockups++;
                continue;
              }
              if (index < 0) {
                seen.failures++;
                check(sameArray(mem.listSnapshot(), before), "failed search changed list[]");
                continue;
              }
              const offset = op.orig & minAlignMask & (IO_TLB_SIZE - 1);
              const nslots = Math.ceil((op.size + offset) / IO_TLB_SIZE);
              // one segment, and the address bits the device cares about preserved
              check(
                Math.floor(index / IO_TLB_SEGSIZE) === Math.floor((index + nslots - 1) / IO_TLB_SEGSIZE),
                `mapping at ${index} (${nslots} slots) crosses a segment`,
              );
              check(
                (mem.slotAddr(index) & iotlbAlignMask) === (op.orig & iotlbAlignMask),
                `slot ${index} does not keep the address bits of 0x${op.orig.toString(16)}`,
              );
              live.push({ tlb: mem.slotAddr(index) + offset, index, nslots, orig: op.orig });
              seen.maps++;
            } else if (live.length > 0) {
              const [gone] = live.splice(op.pick % live.length, 1);
              if (gone === undefined) continue;
              check(mem.releaseSlots(dev, gone.tlb) === gone.nslots, "release freed a different slot count");
              seen.releases++;
            }

            const used = new Uint8Array(nslabs);
            let sum = 0;
            for (const m of live) {
              for (let i = m.index; i < m.index + m.nslots; i++) {
                check(used[i] === 0, `slot ${i} handed out twice`);
                used[i] = 1;
                check(mem.origAddrAt(i) === m.orig + (i - m.index) * IO_TLB_SIZE, `slot ${i} orig_addr`);
              }
              sum += m.nslots;
            }
            check(mem.used === sum, `used ${mem.used} != ${sum}`);
            let perArea = 0;
            for (let a = 0; a < nareas; a++) perArea += mem.usedIn(a);
            check(perArea === sum, `per-area used ${perArea} != ${sum}`);
            check(mem.stats().liveMappings === live.length, "live mapping count");
            check(sameArray(mem.listSnapshot(), expectedList(used)), "list[] differs from its recomputation");
          }
        },
      ),
      { numRuns: 300 },
    );
    // the property is only worth something if the runs reached full and fragmented pools
    expect(seen.failures).toBeGreaterThan(0);
    expect(seen.lockups).toBeGreaterThan(0);
    expect(seen.releases).toBeGreaterThan(0);
  });
});

describe("bounce round trips under random traffic", () => {
  it("returns to every caller exactly what the device wrote, and its own bytes elsewhere", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            page: fc.nat({ max: 31 }),
            offset: fc.nat({ max: 4095 }),
            size: fc.integer({ min: 1, max: 3000 }),
            written: fc.nat({ max: 3000 }),
            fill: fc.integer({ min: 1, max: 255 }),
          }),
          { maxLength: 80, size: "max" },
        ),
        (reqs) => {
          const dev: SwiotlbDevice = { minAlignMask: 0xfff };
          const mem = new IoTlbMem({ start: START, nslabs: 128, searchTermination: "slots-checked" });
          const ram = new FakePhys(0, 40 * 4096);
          const shared = new FakePhys(START, 128 * IO_TLB_SIZE);
          const swiotlb = new SwiotlbBounce(mem, { pool: shared, poolAlias: START, orig: ram });
          // poison the pool: any stale byte reaching a caller would show as 0xee
          shared.bytes.fill(0xee);
          for (const q of reqs) {
            const addr = q.page * 4096 + q.offset;
            ram.bytes.fill(q.fill, addr, addr + q.size);
            const tlb = swiotlb.tblMapSingle(dev, addr, q.size, q.size, DMA_FROM_DEVICE);
            if (tlb === DMA_MAPPING_ERROR) continue;
            const n = Math.min(q.written, q.size);
            shared.bytes.fill(0xdd, tlb - START, tlb - START + n);
            swiotlb.tblUnmapSingle(dev, tlb, q.size, DMA_FROM_DEVICE);
            const got = ram.bytes.subarray(addr, addr + q.size);
            check(
              got.subarray(0, n).every((b) => b === 0xdd),
              "device bytes lost",
            );
            check(
              got.subarray(n).every((b) => b === q.fill),
              "stale or foreign bytes reached the caller",
            );
          }
          check(mem.used === 0, "slots leaked");
        },
      ),
      { numRuns: 200 },
    );
  });
});
