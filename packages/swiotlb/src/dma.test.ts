import { MemoryFault, PAGE_SIZE, PageFlag } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import {
  DMA_ATTR_NO_WARN,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_NONE,
  DMA_TO_DEVICE,
} from "./bounce-types.js";
import type { DmaDevice } from "./dma-ops.js";
import { SwiotlbError } from "./errors.js";
import {
  dmaMappingError,
  dmaMapSingle,
  dmaSyncSingleForCpu,
  dmaSyncSingleForDevice,
  dmaUnmapSingle,
} from "./mapping.js";
import { SWIOTLB_REMAP_TAG, SWIOTLB_SLOTS_TAG, SWIOTLB_TAG } from "./pool.js";
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, ivmSwiotlbNslabs } from "./sizing.js";
import { bootIsolatedGuest, bootPlainGuest, kmallocFilled, pattern } from "./testing/boot.js";

const ERAS = ["address-bit", "pte-bit"] as const;

describe.each(ERAS)(
  "boot of an isolated 1 GiB guest (%s era)",
  (era) => {
    it("reserves a 64 MiB host-visible pool of 32,768 slots in low memory with 33 hypercalls", () => {
      const { memory, hv, dma } = bootIsolatedGuest(era);
      const pool = dma.pool!;
      expect(pool).not.toBeNull();
      expect(pool.mem.nslabs).toBe(32_768);
      expect(pool.boot).toMatchObject({
        poolPages: 16_384,
        hypercalls: 33,
        reps: 16_384,
        pagesMadeVisible: 16_384,
      });
      expect(pool.mem.start + pool.mem.nslabs * IO_TLB_SIZE).toBeLessThanOrEqual(2 ** 32);
      expect(pool.mem.start % PAGE_SIZE).toBe(0);
      expect(memory.buddy.pagesOwnedBy(SWIOTLB_TAG)).toBe(16_384);
      // 24 B per slot (struct io_tlb_slot): 768 KiB
      expect(memory.buddy.pagesOwnedBy(SWIOTLB_SLOTS_TAG)).toBe(192);
      for (let i = 0; i < pool.boot.poolPages; i++) {
        if (!memory.phys.hasFlag(pool.boot.startPfn + i, PageFlag.HostVisible))
          throw new Error(`page ${i} private`);
      }
      expect(hv.hypervisor.counters.hypercalls).toBe(33);
      expect(pool.stats()).toMatchObject({
        nslabs: 32_768,
        poolPages: 16_384,
        bootHypercalls: 33,
        slotsUsed: 0,
      });
      // the eras' default kernels: 5.17 still has the wrap-around search, 6.9 counts the slots checked
      expect(pool.mem.searchTermination).toBe(era === "address-bit" ? "wrap" : "slots-checked");
    });

    it("uses the era's alias for bounce copies (remap above vTOM, or the shared-bit direct map)", () => {
      const { memory, dma } = bootIsolatedGuest(era);
      const pool = dma.pool!;
      const direct = memory.pageToVirt(pool.boot.startPfn);
      if (era === "address-bit") {
        expect(pool.vaddr).not.toBe(direct);
        expect(pool.boot.remapVa).toBe(pool.vaddr);
        expect(memory.vmalloc.findArea(pool.vaddr)?.tag).toBe(SWIOTLB_REMAP_TAG);
        expect(memory.virtToPfn(pool.vaddr)).toBe(pool.boot.startPfn);
        // the direct map is now a private alias to host-visible pages: I7 forbids touching it
        expect(() => memory.mmu.read(direct, new Uint8Array(8))).toThrow(MemoryFault);
        // 5.17 clears the pool through the remap after the conversion
        const head = new Uint8Array(64);
        memory.mmu.read(pool.vaddr, head);
        expect(head).toEqual(new Uint8Array(64));
      } else {
        expect(pool.vaddr).toBe(direct);
        expect(pool.boot.remapVa).toBeNull();
        expect(memory.vmalloc.areas().some((a) => a.tag === SWIOTLB_REMAP_TAG)).toBe(false);
        expect(memory.isSharedMapping(direct)).toBe(true);
        expect(() => memory.mmu.read(direct, new Uint8Array(8))).not.toThrow();
      }
    });

    it("a buffer mapped DMA_TO_DEVICE reads the same through the host view at its DMA address", () => {
      const { memory, hv, dma } = bootIsolatedGuest(era);
      const dev = dma.createDevice({ name: "netvsc", minAlignMask: 0xfff });
      const data = pattern(3000, 1);
      const va = kmallocFilled(memory, data);
      const addr = dmaMapSingle(dev, va, data.length, DMA_TO_DEVICE);
      expect(dmaMappingError(dev, addr)).toBe(false);
      expect(dma.pool!.contains(addr)).toBe(true);
      // min_align_mask 0xFFF keeps the buffer's offset inside its 4 KiB page
      expect(addr % PAGE_SIZE).toBe(memory.virtToPhys(va) % PAGE_SIZE);
      const seen = new Uint8Array(data.length);
      hv.hostView.read(addr, seen);
      expect(seen).toEqual(data);
      // the original stays private: the host cannot reach it
      expect(() => hv.hostView.read(memory.virtToPhys(va), new Uint8Array(1))).toThrow();
      dmaUnmapSingle(dev, addr, data.length, DMA_TO_DEVICE);
      expect(dma.pool!.stats()).toMatchObject({ bytesToDevice: 3000, bytesFromDevice: 0, liveMappings: 0 });
      expect(dev.counters).toMatchObject({ maps: 1, unmaps: 1, liveMappings: 0 });
    });

    it("FROM_DEVICE: a host that writes fewer bytes than mapped exposes no stale pool bytes", () => {
      // a secret passes through every slot of a small pool first, leaving its bytes behind
      const { memory, hv, dma } = bootIsolatedGuest(era, 2 ** 30, { nslabs: 256 });
      const dev = dma.createDevice({ name: "netvsc", minAlignMask: 0xfff });
      const filler = dma.createDevice({ name: "filler" });
      const secretVa = kmallocFilled(memory, new Uint8Array(2048).fill(0x5e), "secret");
      const held: number[] = [];
      for (;;) {
        const s = dmaMapSingle(filler, secretVa, 2048, DMA_TO_DEVICE, DMA_ATTR_NO_WARN);
        if (s === DMA_MAPPING_ERROR) break;
        held.push(s);
      }
      expect(held).toHaveLength(256);
      for (const s of held) dmaUnmapSingle(filler, s, 2048, DMA_TO_DEVICE);

      const rx = new Uint8Array(2048).fill(0x11);
      const rxVa = kmallocFilled(memory, rx, "rx");
      const addr = dmaMapSingle(dev, rxVa, rx.length, DMA_FROM_DEVICE);
      expect(addr).not.toBe(DMA_MAPPING_ERROR);
      // map copied the caller's buffer over the stale secret (the CVE-2022-0854 rule)
      const before = new Uint8Array(rx.length);
      hv.hostView.read(addr, before);
      expect(before).toEqual(rx);
      hv.hostView.write(addr, new Uint8Array(100).fill(0xd0));
      dmaUnmapSingle(dev, addr, rx.length, DMA_FROM_DEVICE);
      const after = new Uint8Array(rx.length);
      memory.mmu.read(rxVa, after);
      expect(after.subarray(0, 100)).toEqual(new Uint8Array(100).fill(0xd0));
      expect(after.subarray(100)).toEqual(new Uint8Array(rx.length - 100).fill(0x11));
      expect(after.includes(0x5e)).toBe(false);
    });

    it("exhaustion returns DMA_MAPPING_ERROR, keeps the counters and recovers after unmaps", () => {
      const lines: string[] = [];
      const { memory, dma } = bootIsolatedGuest(era, 2 ** 30, {
        nslabs: 2 * IO_TLB_SEGSIZE,
        printk: (l) => lines.push(l),
      });
      const pool = dma.pool!;
      const dev = dma.createDevice({ name: "dev" });
      const seg = IO_TLB_SEGSIZE * IO_TLB_SIZE; // 256 KiB, the largest mapping
      const va = kmallocFilled(memory, pattern(seg, 3));
      const a = dmaMapSingle(dev, va, seg, DMA_TO_DEVICE);
      const b = dmaMapSingle(dev, va, seg, DMA_TO_DEVICE);
      expect([a, b]).not.toContain(DMA_MAPPING_ERROR);
      expect(dmaMapSingle(dev, va, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
      expect(dmaMapSingle(dev, va, 64, DMA_TO_DEVICE, DMA_ATTR_NO_WARN)).toBe(DMA_MAPPING_ERROR);
      expect(pool.stats()).toMatchObject({
        slotsUsed: 256,
        peakSlotsUsed: 256,
        liveMappings: 2,
        mapFailures: 2,
        fullWarningsPrinted: 1,
      });
      expect(pool.stats().io.fullWarningsNoWarn).toBe(1);
      expect(
        lines.some((l) => l.startsWith("swiotlb buffer is full (sz: 64 bytes), total 256 (slots), used 256")),
      ).toBe(true);
      expect(dev.counters).toMatchObject({ maps: 2, mapErrors: 2, liveMappings: 2 });
      // more than a segment can never be mapped
      expect(dmaMapSingle(dev, va, seg + 1, DMA_TO_DEVICE, DMA_ATTR_NO_WARN)).toBe(DMA_MAPPING_ERROR);

      dmaUnmapSingle(dev, a, seg, DMA_TO_DEVICE);
      const c = dmaMapSingle(dev, va, 64, DMA_TO_DEVICE);
      expect(c).not.toBe(DMA_MAPPING_ERROR);
      dmaUnmapSingle(dev, b, seg, DMA_TO_DEVICE);
      dmaUnmapSingle(dev, c, 64, DMA_TO_DEVICE);
      expect(pool.stats()).toMatchObject({ slotsUsed: 0, peakSlotsUsed: 256, liveMappings: 0 });
      expect(dev.counters.liveMappings).toBe(0);
    });

    it("sync_for_cpu / sync_for_device move bytes by direction through the pool alias", () => {
      const { memory, hv, dma } = bootIsolatedGuest(era);
      const dev = dma.createDevice({ name: "dev" });
      const va = kmallocFilled(memory, new Uint8Array(512).fill(1));
      const addr = dmaMapSingle(dev, va, 512, DMA_BIDIRECTIONAL);
      hv.hostView.write(addr, new Uint8Array(16).fill(9));
      dmaSyncSingleForCpu(dev, addr, 512, DMA_BIDIRECTIONAL);
      const got = new Uint8Array(16);
      memory.mmu.read(va, got);
      expect(got).toEqual(new Uint8Array(16).fill(9));
      memory.mmu.write(va, new Uint8Array(16).fill(7));
      dmaSyncSingleForDevice(dev, addr, 512, DMA_BIDIRECTIONAL);
      hv.hostView.read(addr, got);
      expect(got).toEqual(new Uint8Array(16).fill(7));
      dmaUnmapSingle(dev, addr, 512, DMA_BIDIRECTIONAL);
      expect(dev.counters).toMatchObject({ syncsForCpu: 1, syncsForDevice: 1 });
    });
  },
  60_000,
);

describe("the DMA API front end", () => {
  it("rejects vmalloc memory, unknown unmaps and bad directions without touching the pool", () => {
    const { memory, dma } = bootIsolatedGuest("address-bit");
    const dev = dma.createDevice({ name: "dev" });
    const vbuf = memory.vmalloc.vzalloc(8192, { tag: "v" })!;
    expect(dmaMapSingle(dev, vbuf, 100, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(dev.counters).toMatchObject({ vmallocRejected: 1, mapErrors: 1, maps: 0 });
    const va = kmallocFilled(memory, pattern(100, 2));
    expect(() => dmaMapSingle(dev, va, 100, DMA_NONE)).toThrow(SwiotlbError);
    const addr = dmaMapSingle(dev, va, 100, DMA_TO_DEVICE);
    expect(() => dmaUnmapSingle(dev, addr + IO_TLB_SIZE, 100, DMA_TO_DEVICE)).toThrow(/unmap-unknown/);
    const other: DmaDevice = dma.createDevice({ name: "other" });
    expect(() => dmaUnmapSingle(other, addr, 100, DMA_TO_DEVICE)).toThrow(SwiotlbError);
    dmaUnmapSingle(dev, addr, 100, DMA_TO_DEVICE);
    expect(() => dmaUnmapSingle(dev, addr, 100, DMA_TO_DEVICE)).toThrow(SwiotlbError);
    expect(dma.pool!.stats()).toMatchObject({ slotsUsed: 0, liveMappings: 0 });
  });

  it("non-isolated guest: no pool, dma-direct ops, the DMA address is the physical address, no copies", () => {
    const { memory, hv, dma } = bootPlainGuest();
    expect(dma.pool).toBeNull();
    expect(dma.ops.name).toBe("dma-direct");
    const dev = dma.createDevice({ name: "nic", minAlignMask: 0xfff });
    const data = pattern(1500, 4);
    const va = kmallocFilled(memory, data);
    const bytesWritten = memory.mmu.bytesWritten;
    const addr = dmaMapSingle(dev, va, data.length, DMA_FROM_DEVICE);
    expect(addr).toBe(memory.virtToPhys(va));
    hv.hostView.write(addr, new Uint8Array(10).fill(0xee));
    dmaSyncSingleForCpu(dev, addr, data.length, DMA_FROM_DEVICE);
    dmaUnmapSingle(dev, addr, data.length, DMA_FROM_DEVICE);
    // the device wrote the buffer itself; the guest copied nothing
    expect(memory.mmu.bytesWritten).toBe(bytesWritten);
    const got = new Uint8Array(10);
    memory.mmu.read(va, got);
    expect(got).toEqual(new Uint8Array(10).fill(0xee));
    expect(hv.hypervisor.counters.hypercalls).toBe(0);
    expect(memory.buddy.pagesOwnedBy(SWIOTLB_TAG)).toBe(0);
  });

  it("swiotlb=force in a non-isolated guest builds a private pool without hypercalls", () => {
    const { memory, hv, dma } = bootPlainGuest(2 ** 30, { force: true, nslabs: 1024 });
    expect(dma.pool?.boot).toMatchObject({ hypercalls: 0, hostVisible: false, remapVa: null });
    expect(dma.ops.name).toBe("swiotlb");
    const dev = dma.createDevice({ name: "nic" });
    const va = kmallocFilled(memory, pattern(100, 5));
    const addr = dmaMapSingle(dev, va, 100, DMA_TO_DEVICE);
    const got = new Uint8Array(100);
    hv.hostView.read(addr, got);
    expect(got).toEqual(pattern(100, 5));
    expect(hv.hypervisor.counters.hypercalls).toBe(0);
  });

  it("a 1 GiB pool (the IVM cap) takes 515 hypercalls to make host-visible", () => {
    expect(ivmSwiotlbNslabs({ guestMemBytes: 32 * 2 ** 30 })).toBe(524_288);
    const { dma } = bootIsolatedGuest("address-bit", 2 * 2 ** 30, { nslabs: 524_288 });
    expect(dma.pool?.boot).toMatchObject({ poolPages: 262_144, hypercalls: 515, reps: 262_144 });
    // 12 MiB of io_tlb_slot structs
    expect(dma.pool?.boot.slotArrayPages).toBe(3072);
  }, 60_000);

  it("keeps the 5.17 'wrap' search as an option", () => {
    const { dma } = bootIsolatedGuest("address-bit", 2 ** 30, { nslabs: 256, searchTermination: "wrap" });
    expect(dma.pool?.mem.searchTermination).toBe("wrap");
  });

  it("a pool that does not fit below 4 GiB is halved until it does (6.9's default kernel)", () => {
    const lines: string[] = [];
    const { dma } = bootIsolatedGuest("pte-bit", 2 ** 30, { nslabs: 2 ** 20, printk: (l) => lines.push(l) });
    expect(dma.pool?.boot.nslabs).toBe(2 ** 18);
    expect(lines.filter((l) => l.includes("Failed to allocate"))).toHaveLength(2);
    expect(lines).toContain("software IO TLB: SWIOTLB bounce buffer size adjusted 1048576 -> 262144 slabs");
  });

  it("a failed conversion at boot is ignored as the kernel does; bouncing into the private part faults", () => {
    const { memory, hv, dma } = bootIsolatedGuest("pte-bit", 2 ** 30, { nslabs: 2048 }, (_m, hv) =>
      hv.hypervisor.faults.failCall(2),
    );
    const pool = dma.pool!;
    expect(pool.boot.visibilityError).toMatch(/EIO/);
    expect(pool.boot.hypercalls).toBe(2);
    // the first batch (510 pages = 1020 slots) became host-visible, the rest did not
    const dev = dma.createDevice({ name: "dev" });
    const va = kmallocFilled(memory, pattern(2048, 6));
    const mapped: number[] = [];
    for (let i = 0; i < 1020; i++) mapped.push(dmaMapSingle(dev, va, 2048, DMA_TO_DEVICE));
    expect(mapped).not.toContain(DMA_MAPPING_ERROR);
    const faults = memory.mmu.faults["shared-alias-to-private-page"];
    expect(() => dmaMapSingle(dev, va, 2048, DMA_TO_DEVICE)).toThrow(MemoryFault);
    expect(memory.mmu.faults["shared-alias-to-private-page"]).toBe(faults + 1);
    const got = new Uint8Array(2048);
    hv.hostView.read(mapped[0]!, got);
    expect(got).toEqual(pattern(2048, 6));
  });

  it("in the address-bit era the boot-time clear through the remap faults on unconverted pages (5.17 crash)", () => {
    expect(() =>
      bootIsolatedGuest("address-bit", 2 ** 30, { nslabs: 2048 }, (_m, hv) =>
        hv.hypervisor.faults.failCall(2),
      ),
    ).toThrow(MemoryFault);
  });

  it("the 'swiotlb' fault knob makes a mapping fail like a full pool", () => {
    const { memory, dma } = bootIsolatedGuest("address-bit", 2 ** 30, { nslabs: 256 });
    const dev = dma.createDevice({ name: "dev" });
    const va = kmallocFilled(memory, pattern(64, 7));
    memory.faults.failCall("swiotlb", 2);
    const a = dmaMapSingle(dev, va, 64, DMA_TO_DEVICE);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    expect(dmaMapSingle(dev, va, 64, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(dma.pool!.stats()).toMatchObject({ mapFailures: 1, slotsUsed: 1, liveMappings: 1 });
    expect(dmaMapSingle(dev, va, 64, DMA_TO_DEVICE)).not.toBe(DMA_MAPPING_ERROR);
  });
});
