// The native compare behind the lab-frame check: both WebAssembly variants (SIMD, and the 8-byte one an
// engine without SIMD gets) must say "equal" exactly when the bytes are equal, at every length and
// alignment, and a lab-frame check without WebAssembly must still work (the JavaScript loop).
import { afterEach, describe, expect, it, vi } from "vitest";
import { compareModules, NativeCompare, nativeCompare, nativeCompareFrom } from "./byte-compare.js";
import { labFrameStream } from "./lab-frame.js";

const SLOT = 4096;

/** Reference bytes: the start of a lab-frame stream (any fixed pseudo-random bytes would do). */
function reference(): Uint8Array {
  return labFrameStream(5).slice(0, SLOT);
}

const variants = compareModules().map((bytes, i) => ({
  name: i === 0 ? "SIMD" : "i64",
  bytes,
  make: (): NativeCompare => {
    const nc = nativeCompareFrom(bytes, 2, SLOT);
    if (nc === null) throw new Error("the module does not run here");
    return nc;
  },
}));

describe.each(variants)("native compare, $name module", ({ bytes, make }) => {
  it("is valid WebAssembly that runs here", () => {
    expect(nativeCompareFrom(bytes, 1, SLOT)).toBeInstanceOf(NativeCompare);
  });

  it("says equal for equal ranges and not for one flipped byte anywhere, every length and alignment", () => {
    const nc = make();
    const ref = reference();
    nc.install(1, ref);
    const buf = new Uint8Array(2 * SLOT);
    for (const n of [0, 1, 7, 8, 15, 16, 17, 63, 64, 65, 127, 200, 1500]) {
      for (const at of [0, 1, 2, 3, 5, 8]) {
        const from = 100 + ((at * 7) % 13);
        buf.set(ref.subarray(from, from + n), at);
        expect(nc.equal(buf, at, 1, from, n)).toBe(true);
        for (let i = 0; i < n; i++) {
          buf[at + i]! ^= 0x40;
          const same = nc.equal(buf, at, 1, from, n);
          buf[at + i]! ^= 0x40;
          if (same) throw new Error(`flip at ${i} of ${n} (buffer offset ${at}) not detected`);
        }
      }
    }
  });

  it("keeps slots apart and grows its scratch for a range longer than it has", () => {
    const nc = make();
    const ref = reference();
    nc.install(0, ref.subarray(0, 1024));
    nc.install(1, ref);
    const long = new Uint8Array(300_000);
    expect(nc.equal(long, 0, 1, 0, 0)).toBe(true);
    long.set(ref.subarray(0, SLOT), 200_000);
    expect(nc.equal(long, 200_000, 1, 0, SLOT)).toBe(true);
    expect(nc.equal(long, 200_000, 0, 0, 1024)).toBe(true);
    nc.install(0, new Uint8Array(1024));
    expect(nc.equal(long, 200_000, 0, 0, 1024)).toBe(false);
  });

  it("refuses a compare outside the range's buffer or the slot", () => {
    const nc = make();
    const buf = new Uint8Array(100);
    expect(() => nc.equal(buf, 90, 0, 0, 20)).toThrow(RangeError);
    expect(() => nc.equal(buf, 0, 0, SLOT - 10, 20)).toThrow(RangeError);
    expect(() => nc.equal(buf, 0, 2, 0, 20)).toThrow(RangeError);
    expect(() => nc.equal(buf, -1, 0, 0, 20)).toThrow(RangeError);
    // the last bytes of a slot are inside it (an uninstalled slot reads as zeros, as the buffer does)
    expect(nc.equal(buf, 80, 1, SLOT - 20, 20)).toBe(true);
  });

  it("refuses a slot it does not have and a reference larger than a slot", () => {
    const nc = make();
    expect(() => nc.install(2, new Uint8Array(8))).toThrow(RangeError);
    expect(() => nc.install(-1, new Uint8Array(8))).toThrow(RangeError);
    expect(() => nc.install(0, new Uint8Array(SLOT + 1))).toThrow(RangeError);
  });
});

describe("the lab-frame check without WebAssembly", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.resetModules();
  });

  it("has no native compare and still checks every payload byte in JavaScript", async () => {
    vi.stubGlobal("WebAssembly", undefined);
    vi.resetModules();
    const fresh = await import("./byte-compare.js");
    expect(fresh.nativeCompare(1, SLOT)).toBeNull();
    const lab = await import("./lab-frame.js");
    const frame = lab.encodeLabFrame({ seq: 3, seed: 11, length: 1500 });
    expect(lab.labFrameSeq(frame)).toBe(3);
    for (const i of [26, 700, 1499]) {
      frame[i]! ^= 1;
      expect(lab.labFrameSeq(frame)).toBe(-1);
      frame[i]! ^= 1;
    }
  });

  it("with WebAssembly, a NativeCompare is made", () => {
    expect(nativeCompare(1, SLOT)).toBeInstanceOf(NativeCompare);
  });
});
