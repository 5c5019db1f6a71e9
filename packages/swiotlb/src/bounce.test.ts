import { describe, expect, it } from "vitest";
import { SwiotlbBounce, type SwiotlbBounceOptions } from "./bounce.js";
import {
  DMA_ATTR_NO_WARN,
  DMA_ATTR_SKIP_CPU_SYNC,
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_MAPPING_ERROR,
  DMA_NONE,
  DMA_TO_DEVICE,
  type SwiotlbDevice,
} from "./bounce-types.js";
import { SwiotlbError } from "./errors.js";
import { IoTlbMem } from "./io-tlb.js";
import { IO_TLB_SIZE } from "./sizing.js";
import { FakePhys } from "./testing/fake-phys.js";

const START = 0x1000_0000;
const VTOM = 2 ** 36; // the shared alias of the pool, as memremap(start + vTOM) in 5.17
const NSLABS = 256;
const netvsc: SwiotlbDevice = { minAlignMask: 0xfff };

interface Rig {
  readonly mem: IoTlbMem;
  readonly swiotlb: SwiotlbBounce;
  readonly ram: FakePhys;
  readonly shared: FakePhys;
  /** What the host/device sees of the slot at bounce address `tlb`. */
  device(tlb: number, len: number): Uint8Array;
  /** The device writes `bytes` at bounce address `tlb`. */
  deviceWrite(tlb: number, bytes: Uint8Array): void;
}

function rig(options: SwiotlbBounceOptions = {}, nslabs = NSLABS): Rig {
  const mem = new IoTlbMem({ start: START, nslabs });
  const ram = new FakePhys(0, 1 << 20);
  const shared = new FakePhys(START + VTOM, nslabs * IO_TLB_SIZE);
  const swiotlb = new SwiotlbBounce(mem, { pool: shared, poolAlias: START + VTOM, orig: ram }, options);
  return {
    mem,
    swiotlb,
    ram,
    shared,
    device: (tlb, len) => shared.bytes.slice(tlb - START, tlb - START + len),
    deviceWrite: (tlb, bytes) => shared.bytes.set(bytes, tlb - START),
  };
}

const fill = (len: number, byte: number): Uint8Array => new Uint8Array(len).fill(byte);

describe("tbl_map_single", () => {
  it("returns the slot address plus the original's offset and copies the buffer in", () => {
    const r = rig();
    const data = Uint8Array.from({ length: 3000 }, (_, i) => i & 0xff);
    r.ram.bytes.set(data, 0x1234);
    const tlb = r.swiotlb.tblMapSingle(netvsc, 0x1234, 3000, 3000, DMA_TO_DEVICE);
    expect(tlb).toBe(START + 0x234);
    expect(tlb & 0xfff).toBe(0x1234 & 0xfff);
    expect(r.device(tlb, 3000)).toEqual(data);
    expect(r.swiotlb.stats()).toMatchObject({ bytesToDevice: 3000, copiesToDevice: 1, maps: 1 });
  });

  it("copies even for DMA_FROM_DEVICE and even with DMA_ATTR_SKIP_CPU_SYNC", () => {
    const r = rig();
    r.ram.bytes.set(fill(512, 0x11), 0x2000);
    const tlb = r.swiotlb.tblMapSingle(netvsc, 0x2000, 512, 512, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    expect(r.device(tlb, 512)).toEqual(fill(512, 0x11));
    expect(r.swiotlb.stats().bytesToDevice).toBe(512);
  });

  it("counts what every map copied against what it mapped (I5: the two stay equal)", () => {
    const r = rig();
    r.swiotlb.tblMapSingle(netvsc, 0x2000, 512, 512, DMA_FROM_DEVICE);
    r.swiotlb.tblMapSingle(netvsc, 0x5100, 3000, 4096, DMA_TO_DEVICE);
    r.swiotlb.tblMapSingle(netvsc, 0x9000, 10, 5, DMA_TO_DEVICE); // invalid sizes: not a map
    expect(r.swiotlb.stats()).toMatchObject({ bytesMapped: 3512, bytesCopiedAtMap: 3512, maps: 2 });
  });

  it("returns DMA_MAPPING_ERROR when the pool is full, and for a mapping larger than its allocation", () => {
    const lines: string[] = [];
    const r = rig({ printk: (l) => lines.push(l) }, 128);
    expect(r.swiotlb.tblMapSingle(netvsc, 0x1000, 100, 50, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(r.swiotlb.tblMapSingle(netvsc, 0, 128 * IO_TLB_SIZE, 128 * IO_TLB_SIZE, DMA_TO_DEVICE)).toBe(
      START,
    );
    expect(r.swiotlb.tblMapSingle(netvsc, 0x1000, 100, 100, DMA_TO_DEVICE, DMA_ATTR_NO_WARN)).toBe(
      DMA_MAPPING_ERROR,
    );
    expect(r.swiotlb.stats()).toMatchObject({ mapErrors: 2, invalidSizes: 1, maps: 1 });
    expect(r.mem.stats()).toMatchObject({ failures: 1, fullWarningsNoWarn: 1, fullWarningsPrinted: 0 });
    expect(lines).toEqual(["Invalid sizes (mapping: 100 bytes, alloc: 50 bytes)"]);
  });

  it("prints the memory-encryption notice once", () => {
    const lines: string[] = [];
    const r = rig({ memEncryptActive: true, printk: (l) => lines.push(l) });
    r.swiotlb.tblMapSingle(netvsc, 0x1000, 10, 10, DMA_TO_DEVICE);
    r.swiotlb.tblMapSingle(netvsc, 0x1000, 10, 10, DMA_TO_DEVICE);
    expect(lines).toEqual(["Memory encryption is active and system is using DMA bounce buffers"]);
  });
});

describe("CVE-2022-0854: no stale swiotlb bytes reach a DMA_FROM_DEVICE caller", () => {
  it("a short device write leaves the caller's own bytes, not an earlier user's", () => {
    const r = rig({}, 128);
    // an earlier user sends a secret through every slot of the pool, then unmaps; slots keep the bytes
    const whole = 128 * IO_TLB_SIZE;
    r.ram.bytes.set(fill(whole, 0x5e), 0x40000);
    const first = r.swiotlb.tblMapSingle(netvsc, 0x40000, whole, whole, DMA_TO_DEVICE);
    r.swiotlb.tblUnmapSingle(netvsc, first, whole, DMA_TO_DEVICE);
    expect(r.device(START, whole).every((b) => b === 0x5e)).toBe(true);

    // the victim maps a receive buffer; the device writes only the first 100 of 512 bytes
    const victim = 0x5000;
    r.ram.bytes.set(fill(512, 0x11), victim);
    const tlb = r.swiotlb.tblMapSingle(netvsc, victim, 512, 512, DMA_FROM_DEVICE);
    expect(r.device(tlb, 512)).toEqual(fill(512, 0x11)); // map overwrote the stale secret
    r.deviceWrite(tlb, fill(100, 0xdd));
    r.swiotlb.tblUnmapSingle(netvsc, tlb, 512, DMA_FROM_DEVICE);

    const got = r.ram.bytes.slice(victim, victim + 512);
    expect(got.subarray(0, 100)).toEqual(fill(100, 0xdd));
    expect(got.subarray(100)).toEqual(fill(412, 0x11));
    expect(got.includes(0x5e)).toBe(false);
    expect(r.swiotlb.stats()).toMatchObject({ bytesToDevice: whole + 512, bytesFromDevice: 512 });
  });
});

describe("copy-back rules", () => {
  function mapped(dir: number, options: SwiotlbBounceOptions = {}): { r: Rig; tlb: number } {
    const r = rig(options);
    r.ram.bytes.set(fill(256, 0x11), 0x6100);
    const tlb = r.swiotlb.tblMapSingle(netvsc, 0x6100, 256, 256, dir);
    r.deviceWrite(tlb, fill(256, 0xdd));
    return { r, tlb };
  }
  const orig = (r: Rig): Uint8Array => r.ram.bytes.slice(0x6100, 0x6100 + 256);

  it("unmap copies back for DMA_FROM_DEVICE and DMA_BIDIRECTIONAL", () => {
    for (const dir of [DMA_FROM_DEVICE, DMA_BIDIRECTIONAL]) {
      const { r, tlb } = mapped(dir);
      r.swiotlb.tblUnmapSingle(netvsc, tlb, 256, dir);
      expect(orig(r)).toEqual(fill(256, 0xdd));
      expect(r.mem.used).toBe(0);
    }
  });

  it("unmap does not copy back for DMA_TO_DEVICE, nor with DMA_ATTR_SKIP_CPU_SYNC", () => {
    const a = mapped(DMA_TO_DEVICE);
    a.r.swiotlb.tblUnmapSingle(netvsc, a.tlb, 256, DMA_TO_DEVICE);
    expect(orig(a.r)).toEqual(fill(256, 0x11));
    const b = mapped(DMA_FROM_DEVICE);
    b.r.swiotlb.tblUnmapSingle(netvsc, b.tlb, 256, DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC);
    expect(orig(b.r)).toEqual(fill(256, 0x11));
    expect(b.r.swiotlb.stats().bytesFromDevice).toBe(0);
  });

  it("sync_for_cpu copies back for DMA_FROM_DEVICE only; sync_for_device copies out for DMA_TO_DEVICE", () => {
    const { r, tlb } = mapped(DMA_FROM_DEVICE);
    r.swiotlb.syncSingleForCpu(netvsc, tlb, 256, DMA_TO_DEVICE);
    expect(orig(r)).toEqual(fill(256, 0x11));
    r.swiotlb.syncSingleForCpu(netvsc, tlb, 256, DMA_FROM_DEVICE);
    expect(orig(r)).toEqual(fill(256, 0xdd));
    r.ram.bytes.set(fill(256, 0x22), 0x6100);
    r.swiotlb.syncSingleForDevice(netvsc, tlb, 256, DMA_FROM_DEVICE); // by direction: nothing
    expect(r.device(tlb, 256)).toEqual(fill(256, 0xdd));
    r.swiotlb.syncSingleForDevice(netvsc, tlb, 256, DMA_TO_DEVICE);
    expect(r.device(tlb, 256)).toEqual(fill(256, 0x22));
  });

  it("sync_for_device copies for every direction under the aa6f8dcbab47 rule", () => {
    const { r, tlb } = mapped(DMA_FROM_DEVICE, { syncForDevice: "always" });
    r.ram.bytes.set(fill(256, 0x22), 0x6100);
    r.swiotlb.syncSingleForDevice(netvsc, tlb, 256, DMA_FROM_DEVICE);
    expect(r.device(tlb, 256)).toEqual(fill(256, 0x22)); // what the device had written is gone (ath9k)
  });

  it("clips a copy to the mapping, as swiotlb_bounce's overflow check does", () => {
    const { r, tlb } = mapped(DMA_FROM_DEVICE);
    r.swiotlb.syncSingleForCpu(netvsc, tlb, 4096, DMA_FROM_DEVICE);
    expect(r.swiotlb.stats()).toMatchObject({ boundsWarnings: 1, bytesFromDevice: 256 });
    expect(r.ram.bytes[0x6100 + 256]).toBe(0);
  });

  it("refuses DMA_NONE, foreign addresses and double unmaps before copying anything", () => {
    const { r, tlb } = mapped(DMA_FROM_DEVICE);
    const reason = (fn: () => void): string => {
      try {
        fn();
      } catch (e) {
        if (e instanceof SwiotlbError) return e.reason;
      }
      return "none";
    };
    expect(reason(() => r.swiotlb.syncSingleForCpu(netvsc, tlb, 256, DMA_NONE))).toBe("bad-direction");
    expect(reason(() => r.swiotlb.syncSingleForCpu(netvsc, 0x6100, 256, DMA_FROM_DEVICE))).toBe(
      "outside-pool",
    );
    expect(reason(() => r.swiotlb.tblUnmapSingle(netvsc, tlb + 2, 256, DMA_FROM_DEVICE))).toBe(
      "address-mismatch",
    );
    expect(orig(r)).toEqual(fill(256, 0x11));
    r.swiotlb.tblUnmapSingle(netvsc, tlb, 256, DMA_FROM_DEVICE);
    expect(reason(() => r.swiotlb.tblUnmapSingle(netvsc, tlb, 256, DMA_FROM_DEVICE))).toBe("slot-free");
    expect(r.swiotlb.stats()).toMatchObject({ unmaps: 1, copiesFromDevice: 1 });
  });

  it("ignores a sync of a slot that holds no mapping, as the kernel does", () => {
    const r = rig();
    r.swiotlb.syncSingleForCpu(netvsc, START + 10 * IO_TLB_SIZE, 64, DMA_FROM_DEVICE);
    expect(r.swiotlb.stats()).toMatchObject({ skippedUnmapped: 1, bytesFromDevice: 0 });
  });
});
