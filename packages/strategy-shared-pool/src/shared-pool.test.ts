import { bootPlatform } from "@ivm/hypercall";
import { PAGE_SIZE, type VtomMode } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { sharedPoolStrategy } from "./shared-pool.js";

const MiB = 2 ** 20;

function boot(era: VtomMode) {
  return bootPlatform({ bytes: 256 * MiB, era });
}

describe("strategy (6): shared pool", () => {
  for (const era of ["address-bit", "pte-bit"] as const) {
    it(`makes the pool visible once at boot and none per buffer (${era})`, () => {
      const { memory, hyperv } = boot(era);
      const s = sharedPoolStrategy({ memory, hyperv });
      expect(s.pool.bootHypercalls).toBe(Math.ceil(8192 / 510));
      const calls = hyperv.hypervisor.counters.hypercalls;
      const rx = s.allocate(16 * MiB, "netvsc-rx")!;
      expect(rx.preShared).toBe(true);
      const va = s.map(rx)!.va;
      memory.mmu.write(va + 100, new Uint8Array([7]));
      const seen = new Uint8Array(1);
      hyperv.hostView.read(memory.virtToPfn(va) * PAGE_SIZE + 100, seen);
      expect(seen[0]).toBe(7);
      s.unmap(rx);
      s.free(rx);
      expect(hyperv.hypervisor.counters.hypercalls).toBe(calls);
      expect(memory.checkInvariants()).toEqual([]);
    });
  }

  it("zeroes a buffer before handing it out again", () => {
    const { memory, hyperv } = boot("pte-bit");
    const s = sharedPoolStrategy({ memory, hyperv }, { poolBytes: 4 * PAGE_SIZE });
    const a = s.allocate(PAGE_SIZE, "a")!;
    memory.mmu.write(s.map(a)!.va, new Uint8Array([9, 9, 9]));
    s.unmap(a);
    s.free(a);
    const b = s.allocate(PAGE_SIZE, "b")!;
    const out = new Uint8Array(3);
    memory.mmu.read(s.map(b)!.va, out);
    expect([...out]).toEqual([0, 0, 0]);
  });

  it("fails cleanly when the pool is exhausted and never reissues leaked pages", () => {
    const { memory, hyperv } = boot("address-bit");
    const s = sharedPoolStrategy({ memory, hyperv }, { poolBytes: 4 * PAGE_SIZE });
    const a = s.allocate(3 * PAGE_SIZE, "a")!;
    expect(s.allocate(2 * PAGE_SIZE, "b")).toBeNull();
    expect(s.pool.failures).toBe(1);
    s.leak(a);
    expect(s.pool.leakedPages).toBe(3);
    expect(s.allocate(2 * PAGE_SIZE, "b")).toBeNull();
    expect(s.allocate(PAGE_SIZE, "c")).not.toBeNull();
  });
});
