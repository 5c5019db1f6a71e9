import type { Era } from "@ivm/hypercall";
import { PAGE_SIZE } from "@ivm/memory";
import type { SharedBufferStrategy } from "@ivm/shared-buffer";
import { describe, expect, it } from "vitest";
import { baseline, checkInvariants, hostVisiblePages } from "../invariants.js";
import { bootKitEnv, type KitEnv } from "../kit-env.js";
import { runLifecycle } from "../lifecycle.js";

export interface ConformanceSubject {
  /** The strategy package's name, for the test titles. */
  readonly name: string;
  /** Builds the strategy in a freshly booted environment (as the VM's composition root would). */
  readonly create: (env: KitEnv) => SharedBufferStrategy;
  /** Buffers for the lifecycle run; default netvsc's receive (16 MiB) and send (1,044,480 B) buffers. */
  readonly sizes?: readonly { readonly bytes: number; readonly purpose: string }[];
  /** Small buffers for the exhaustive fault enumeration; default 16 pages and 3 pages. */
  readonly faultSizes?: readonly { readonly bytes: number; readonly purpose: string }[];
}

const DEFAULT_SIZES = [
  { bytes: 16 * 2 ** 20, purpose: "netvsc-rx" },
  { bytes: 1_044_480, purpose: "netvsc-tx" },
] as const;
const FAULT_SIZES = [
  { bytes: 16 * PAGE_SIZE, purpose: "netvsc-rx" },
  { bytes: 3 * PAGE_SIZE, purpose: "netvsc-tx" },
] as const;
const SITES = ["pages", "kmalloc", "vmalloc"] as const;

/** Index of the first differing byte, or −1 (a deep-equality diff of megabytes would swamp the report). */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  // A plain loop rather than Node's Buffer.compare: the kit is platform neutral (it runs in a browser too).
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** What must be back where it was once a lifecycle ends (page tables excepted: the kernel keeps them). */
function footprint(env: KitEnv): { free: number; kmalloc: number; areas: number; visible: number } {
  let kmalloc = 0;
  for (const s of env.memory.kmalloc.stats().values()) kmalloc += s.live;
  return {
    free: env.memory.buddy.nrFreePages + env.memory.pageTables.totalTablePages,
    kmalloc,
    areas: env.memory.vmalloc.areas().length,
    visible: hostVisiblePages(env),
  };
}

/**
 * Registers the conformance suite for one strategy: in every era it supports, the whole lifecycle with
 * traffic checked byte for byte from both sides, invariants after every step; an allocation failure at
 * every allocation point of allocate and map; a visibility failure at GPADL set-up and at teardown
 * (leak, never free); and the lifecycle rules.
 */
export function describeStrategyConformance(subject: ConformanceSubject): void {
  const probe = subject.create(bootKitEnv("none", 64 * 2 ** 20));
  const eras: readonly Era[] = probe.eras;
  describe(`${subject.name} conformance`, () => {
    it("declares its contract version and at least one era", () => {
      expect(probe.contractVersion).toBe(1);
      expect(eras.length).toBeGreaterThan(0);
    });

    // Every declared era, and a VM without isolation (where netvsc takes its plain path).
    for (const era of [...eras, "none"] as const) {
      describe(era === "none" ? "without isolation" : `${era} era`, () => {
        it("runs the lifecycle with traffic verified from both sides and leaves nothing behind", () => {
          const env = bootKitEnv(era);
          const strategy = subject.create(env);
          const base = baseline(env);
          const before = footprint(env);
          for (const { bytes, purpose } of subject.sizes ?? DEFAULT_SIZES) {
            const out = runLifecycle(env, strategy, bytes, purpose, (va, buffer, gpadl) => {
              expect(checkInvariants(env, base, [])).toEqual([]);
              // The guest writes every page through the mapped address; the host sees the same bytes.
              const pattern = new Uint8Array(buffer.bytes);
              for (let i = 0; i < pattern.length; i += 251) pattern[i] = (i / 251) & 0xff;
              env.memory.mmu.write(va, pattern);
              const seen = new Uint8Array(buffer.bytes);
              expect(env.host.readGpadl(gpadl.handle, 0, seen)).toBe(true);
              expect(firstDifference(seen, pattern)).toBe(-1);
              // And the host's writes reach the guest.
              const reply = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7) & 0xff);
              expect(env.host.writeGpadl(gpadl.handle, buffer.bytes - 4096, reply)).toBe(true);
              const back = new Uint8Array(4096);
              env.memory.mmu.read(va + buffer.bytes - 4096, back);
              expect(firstDifference(back, reply)).toBe(-1);
              if (!buffer.preShared && env.memory.isolated) {
                expect(hostVisiblePages(env) - before.visible).toBeGreaterThanOrEqual(buffer.pages);
              }
            });
            expect(out.failedAt).toBeNull();
            expect(out.leaked).toBe(false);
            expect(strategy.state(out.buffer!)).toBe("freed");
            expect(checkInvariants(env, base, out.pfns)).toEqual([]);
          }
          expect(footprint(env)).toEqual(before);
          expect(env.memory.leakedPages).toBe(0);
        });

        it("fails cleanly at every allocation point of allocate, GPADL, map and teardown", () => {
          // Count the calls a successful run makes at each site, then fail each one in turn.
          const sizes = subject.faultSizes ?? FAULT_SIZES;
          const counting = bootKitEnv(era, 64 * 2 ** 20);
          const s0 = subject.create(counting);
          const start = SITES.map((site) => counting.memory.faults.calls(site));
          for (const { bytes, purpose } of sizes) {
            const b = s0.allocate(bytes, purpose)!;
            const est = counting.channel.establishGpadl(b.gpadlVa, b.bytes, { preShared: b.preShared });
            if (est.ok) {
              s0.map(b);
            }
          }
          const calls = SITES.map((site, i) => counting.memory.faults.calls(site) - start[i]!);
          let injected = 0;
          SITES.forEach((site, i) => {
            for (let k = 1; k <= calls[i]!; k++) {
              const env = bootKitEnv(era, 64 * 2 ** 20);
              const strategy = subject.create(env);
              const base = baseline(env);
              const before = footprint(env);
              env.memory.faults.failCall(site, k);
              let leaked = 0;
              for (const { bytes, purpose } of sizes) {
                const out = runLifecycle(env, strategy, bytes, purpose);
                // The kernel's rule: once the GPADL set `decrypted`, a failure leaks the whole buffer
                // (even an -ENOMEM before any hypercall); otherwise everything comes back.
                if (out.leaked) leaked += out.buffer!.pages;
                if (!out.leaked && out.buffer) expect(strategy.state(out.buffer)).toBe("freed");
              }
              injected += env.memory.faults.injected;
              expect(checkInvariants(env, base)).toEqual([]);
              expect(env.memory.leakedPages).toBe(leaked);
              if (leaked === 0) expect(footprint(env)).toEqual(before);
            }
          });
          expect(injected).toBe(calls.reduce((a, b) => a + b, 0));
        });

        it("leaks, never frees, a buffer whose decryption failed at GPADL set-up", () => {
          const env = bootKitEnv(era, 64 * 2 ** 20);
          const strategy = subject.create(env);
          const base = baseline(env);
          const size = (subject.faultSizes ?? FAULT_SIZES)[0]!;
          env.hyperv.hypervisor.faults.failCall(1);
          const out = runLifecycle(env, strategy, size.bytes, size.purpose);
          if (out.buffer?.preShared || !env.memory.isolated) {
            expect(out.failedAt).toBeNull(); // no visibility change: nothing to fail
            return;
          }
          expect(out.failedAt).toBe("gpadl");
          expect(out.leaked).toBe(true);
          expect(strategy.state(out.buffer!)).toBe("leaked");
          expect(env.memory.leakedPages).toBe(out.buffer!.pages);
          expect(checkInvariants(env, base)).toEqual([]);
        });

        it("leaks, never frees, a buffer whose re-encryption failed at teardown", () => {
          const env = bootKitEnv(era, 64 * 2 ** 20);
          const strategy = subject.create(env);
          const base = baseline(env);
          const size = (subject.faultSizes ?? FAULT_SIZES)[0]!;
          const out = runLifecycle(env, strategy, size.bytes, size.purpose, () => {
            env.hyperv.hypervisor.faults.failCall(1);
          });
          if (out.buffer?.preShared || !env.memory.isolated) {
            expect(out.leaked).toBe(false);
            return;
          }
          expect(out.leaked).toBe(true);
          expect(strategy.state(out.buffer!)).toBe("leaked");
          expect(env.memory.leakedPages).toBe(out.buffer!.pages);
          expect(checkInvariants(env, base)).toEqual([]);
        });

        it("refuses calls out of lifecycle order without changing anything", () => {
          const env = bootKitEnv(era, 64 * 2 ** 20);
          const strategy = subject.create(env);
          const b = strategy.allocate(PAGE_SIZE, "netvsc-tx")!;
          expect(() => strategy.unmap(b)).toThrowError(/lifecycle/);
          expect(() => strategy.allocate(0, "x")).toThrowError(/size/);
          expect(() => strategy.free({ ...b })).toThrowError(/foreign/);
          strategy.free(b);
          expect(() => strategy.free(b)).toThrowError(/lifecycle/);
          expect(() => strategy.map(b)).toThrowError(/lifecycle/);
        });
      });
    }
  });
}
