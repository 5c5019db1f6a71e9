import { bootPlatform, type HypervLayer } from "@ivm/hypercall";
import { FindingLog, getProfile, type KernelProfile, PROFILE_NAMES } from "@ivm/kernel";
import type { GuestMemory } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { DMA_MAPPING_ERROR, DMA_TO_DEVICE, type SwiotlbDevice } from "./bounce-types.js";
import { bootDma, type DmaLayer } from "./dma-layer.js";
import { SwiotlbError } from "./errors.js";
import { SLOT_SEARCH_FINDING } from "./io-tlb.js";
import { dmaMapSingle } from "./mapping.js";
import { LOW_MEMORY_LIMIT, type SwiotlbBootOptions } from "./pool.js";
import { ivmSwiotlbNslabs } from "./sizing.js";

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const LOW_PFN = LOW_MEMORY_LIMIT / 4096;
const netvsc: SwiotlbDevice = { minAlignMask: 0xfff };

interface Booted {
  readonly memory: GuestMemory;
  readonly hv: HypervLayer;
  readonly dma: DmaLayer;
  readonly findings: FindingLog;
  readonly lines: string[];
}

function boot(
  profile: KernelProfile,
  bytes: number,
  options: SwiotlbBootOptions,
  beforeBoot?: (memory: GuestMemory) => void,
): Booted {
  const findings = new FindingLog();
  const { memory, hyperv: hv } = bootPlatform({ bytes, era: profile.era, kernel: { profile, findings } });
  beforeBoot?.(memory);
  const lines: string[] = [];
  const dma = bootDma(memory, hv, { ...options, printk: (l) => lines.push(l) });
  return { memory, hv, dma, findings, lines };
}

/** Takes every free page below `limitPfn` except one run of `holePages` at the lowest free address. */
function fillBelow(memory: GuestMemory, limitPfn: number, holePages = 0): void {
  const free: [number, number][] = [];
  memory.buddy.forEachBlock((head, order, isFree) => {
    if (isFree && head < limitPfn) free.push([head, Math.min(2 ** order, limitPfn - head)]);
  });
  let hole = holePages;
  for (const [head, pages] of free) {
    const keep = Math.min(hole, pages);
    hole -= keep;
    if (pages > keep && !memory.buddy.allocRange(head + keep, pages - keep, { tag: "filler" })) {
      throw new Error(`cannot take ${pages - keep} pages at ${head + keep}`);
    }
  }
}

const profiles = PROFILE_NAMES.map((name) => getProfile(name));

describe.each(profiles)("kernel $name: swiotlb layer", (profile) => {
  const s = profile.swiotlb;

  it(`slot search ${s.searchTermination.value} (${s.searchTermination.commit})`, () => {
    const { dma, findings } = boot(profile, GiB, { nslabs: 256 });
    const mem = dma.pool!.mem;
    expect(mem.searchTermination).toBe(s.searchTermination.value);
    // even slots taken, one freed and retaken: the index sits on an odd slot, every odd slot has only
    // one free slot, and a 2-slot request with bit 11 set in the original steps round the odd slots
    for (let i = 0; i < 128; i++) mem.findSlots(netvsc, 0x1000, 1024);
    mem.releaseSlots(netvsc, mem.slotAddr(2));
    mem.findSlots(netvsc, 0x1000, 1024);
    if (s.searchTermination.value === "wrap") {
      let error: unknown;
      try {
        mem.findSlots(netvsc, 0x1800, 3000);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SwiotlbError);
      expect((error as SwiotlbError).code).toBe("EDEADLK");
      expect(findings.count(SLOT_SEARCH_FINDING)).toBe(1);
      expect(findings.list()[0]).toMatchObject({ profile: profile.name, where: "swiotlb_do_find_slots" });
    } else {
      expect(mem.findSlots(netvsc, 0x1800, 3000)).toBe(-1);
      expect(findings.count()).toBe(0);
    }
  });

  it(`pool ${s.poolBoot.value} (${s.poolBoot.commit}), low memory taken: where the pool goes`, () => {
    const { dma, lines } = boot(profile, 5 * GiB, { nslabs: 32_768 }, (m) => fillBelow(m, LOW_PFN));
    if (s.poolBoot.value === "hyperv-iommu") {
      // memblock_alloc: anywhere in RAM, so above 4 GiB here
      expect(dma.pool?.boot.startPfn).toBeGreaterThanOrEqual(LOW_PFN);
      expect(dma.pool?.boot.nslabs).toBe(32_768);
    } else {
      // memblock_alloc_low cannot: no pool, every mapping fails
      expect(dma.pool).toBeNull();
      expect(dma.ops.name).toBe("swiotlb-no-pool");
      expect(lines.some((l) => l.includes("Failed to allocate"))).toBe(true);
    }
  });

  it(`allocation failure ${s.poolAllocFailure.value} (${s.poolAllocFailure.commit}): a 64 MiB guest`, () => {
    // 6 % of 64 MiB clamps up to the 64 MiB default pool, which a 64 MiB guest cannot hold
    const { memory, dma, lines } = boot(profile, 64 * MiB, {});
    if (s.poolAllocFailure.value === "no-pool") {
      expect(dma.pool).toBeNull();
      expect(lines.filter((l) => l.includes("allocate"))).toHaveLength(1);
      const dev = dma.createDevice({ name: "netvsc", minAlignMask: 0xfff });
      const va = memory.kmalloc.kmalloc(512, { tag: "skb" })!;
      expect(dmaMapSingle(dev, va, 512, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
      expect(lines.at(-1)).toMatch(/Can not allocate SWIOTLB buffer earlier/);
    } else {
      // 32,768 slots (64 MiB) cannot fit; 16,384 (32 MiB) does
      expect(dma.pool?.boot.nslabs).toBe(16_384);
      expect(lines).toContain("software IO TLB: SWIOTLB bounce buffer size adjusted 32768 -> 16384 slabs");
    }
  });

  it("allocation failure with only a 16 MiB hole below 4 GiB", () => {
    const { dma } = boot(profile, 5 * GiB, { nslabs: 32_768 }, (m) => fillBelow(m, LOW_PFN, 4096));
    const expected = { "hyperv-iommu": 32_768, halve: 8192, "no-pool": null }[
      s.poolBoot.value === "hyperv-iommu" ? "hyperv-iommu" : s.poolAllocFailure.value
    ];
    expect(dma.pool?.boot.nslabs ?? null).toBe(expected);
  });
});

describe("swiotlb= and the IVM sizing (every profile)", () => {
  it("a swiotlb= that aligns to the default 32,768 slots still gets the 6 % sizing", () => {
    expect(ivmSwiotlbNslabs({ guestMemBytes: 8 * GiB, swiotlbParamSlabs: 32_768 })).toBe(251_776);
    expect(ivmSwiotlbNslabs({ guestMemBytes: 8 * GiB, swiotlbParamSlabs: 32_700 })).toBe(251_776);
    expect(ivmSwiotlbNslabs({ guestMemBytes: 8 * GiB, swiotlbParamSlabs: 32_769 })).toBe(32_896);
  });

  it.each(["5.17", "6.12"] as const)(
    "boot on %s: swiotlb=32768 in an 8 GiB guest",
    (name) => {
      const { dma } = boot(getProfile(name), 8 * GiB, { swiotlbParamSlabs: 32_768 });
      expect(dma.pool?.boot.nslabs).toBe(251_776);
    },
    30_000,
  );
});
