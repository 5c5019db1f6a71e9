import { GuestMemory, PAGE_SIZE, PageFlag, type VtomMode } from "@ivm/memory";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HypercallError } from "./errors.js";
import {
  decodeControl,
  decodeStatus,
  encodeControl,
  HV_MAX_MODIFY_GPA_REP_COUNT,
  HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY,
  HvStatus,
} from "./hv-abi.js";
import { createHyperv, type HypervLayer } from "./hyperv.js";
import { cpuidFor, isolationFromCpuid } from "./isolation.js";

const MiB = 2 ** 20;
const GiB = 2 ** 30;

function boot(
  bytes: number,
  era: VtomMode = "address-bit",
  isolated = true,
): { mem: GuestMemory; hv: HypervLayer } {
  const isolation = isolationFromCpuid(cpuidFor({ type: isolated ? "snp" : "none" }));
  const mem = new GuestMemory({ bytes, sharedGpaBoundary: isolation.sharedGpaBoundary, vtomMode: era });
  return { mem, hv: createHyperv(mem, isolation) };
}

function visiblePages(mem: GuestMemory, va: number, pages: number): number {
  let n = 0;
  for (let i = 0; i < pages; i++)
    if (mem.phys.hasFlag(mem.virtToPfn(va + i * PAGE_SIZE), PageFlag.HostVisible)) n++;
  return n;
}

describe("isolation config", () => {
  it("derives vTOM from the CPUID fields", () => {
    const snp = isolationFromCpuid(cpuidFor({ type: "snp", addressBits: 47 }));
    expect(snp).toMatchObject({
      isolated: true,
      isolationType: 2,
      paravisorPresent: true,
      sharedGpaBoundaryBits: 46,
    });
    expect(snp.sharedGpaBoundary).toBe(0x4000_0000_0000);
    // HV_ISOLATION missing from priv_high: leaf 0x4000000C is not even read.
    expect(isolationFromCpuid({ privHigh: 0, configA: 1, configB: 0xfff }).isolated).toBe(false);
    // Boundary bits present but ACTIVE clear: boundary stays 0.
    expect(
      isolationFromCpuid({ privHigh: 1 << 22, configA: 1, configB: 2 | (46 << 6) }).sharedGpaBoundary,
    ).toBe(0);
  });
});

describe("rep hypercall ABI", () => {
  it("encodes control and status words at the kernel's bit positions", () => {
    const word = encodeControl({ code: 0xdb, fast: false, varHeadSize: 0, repCount: 510, repStart: 12 });
    expect(word).toBe(0xdbn | (510n << 32n) | (12n << 48n));
    expect(decodeControl(word)).toMatchObject({ code: 0xdb, repCount: 510, repStart: 12 });
    expect(decodeStatus((7n << 32n) | 5n)).toEqual({ result: 5, repsCompleted: 7 });
  });

  it("lays out the input page as hv_gpa_range_for_visibility", () => {
    const { mem, hv } = boot(64 * MiB);
    const va = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    const pfns = [mem.virtToPfn(va), mem.virtToPfn(va + PAGE_SIZE)];
    hv.setMemory.decrypted(va, 2);
    const page = new Uint8Array(32);
    mem.phys.read(hv.hypercalls.inputPagePa, page);
    const v = new DataView(page.buffer);
    expect(v.getBigUint64(0, true)).toBe(0xffff_ffff_ffff_ffffn); // HV_PARTITION_ID_SELF
    expect(v.getUint32(8, true)).toBe(3); // VMBUS_PAGE_VISIBLE_READ_WRITE
    expect(v.getUint32(12, true)).toBe(0);
    expect(v.getBigUint64(16, true)).toBe(BigInt(pfns[0]!));
    expect(v.getBigUint64(24, true)).toBe(BigInt(pfns[1]!));
    const seen: number[] = [];
    hv.hypervisor.onHypercall((e) => seen.push(e.visibility, e.repCount));
    hv.setMemory.encrypted(va, 2);
    expect(seen).toEqual([0, 2]);
  });
});

describe("set_memory_decrypted / encrypted", () => {
  it("needs 9 hypercalls for the 4096-page receive buffer, 1 for the 255-page send buffer, 515 for 1 GiB", () => {
    const { mem, hv } = boot(2 * GiB);
    const rx = mem.vmalloc.vzalloc(16 * MiB, { tag: "rx" })!;
    hv.setMemory.decrypted(rx, 4096);
    expect(hv.hypervisor.counters.hypercalls).toBe(9);
    const tx = mem.vmalloc.vzalloc(255 * PAGE_SIZE, { tag: "tx" })!;
    hv.setMemory.decrypted(tx, 255);
    expect(hv.hypervisor.counters.hypercalls).toBe(10);
    const pool = mem.buddy.nrFreePages > 262144 ? 262144 : 0;
    expect(mem.buddy.allocRange(0x10000, pool, { tag: "swiotlb" })).toBe(true);
    hv.setMemory.decrypted(mem.pageToVirt(0x10000), pool);
    expect(hv.hypervisor.counters.hypercalls).toBe(10 + 515);
    expect(hv.hypervisor.counters.reps).toBe(4096 + 255 + 262144);
    expect(hv.hypervisor.byOwner.get("rx")).toEqual({ visible: 4096, private: 0 });
  });

  it("converts scattered PFNs and runs crossing owners exactly as page by page: counters, owners, contents", () => {
    const { mem, hv } = boot(256 * MiB);
    // Two owners' blocks side by side, then the PFNs interleaved and out of order in one batch.
    const a = mem.buddy.allocPages(3, { tag: "a" })!;
    const b = mem.buddy.allocPages(3, { tag: "b" })!;
    for (const pfn of [a, b]) mem.phys.write(pfn * PAGE_SIZE, new Uint8Array(8 * PAGE_SIZE).fill(0x5a));
    const pfns = [a + 2, a + 3, a + 4, b, b + 1, a, a + 7, b + 7, b + 6];
    hv.hypercalls.markGpaVisibility(pfns, 3);
    expect(hv.hypervisor.counters.reps).toBe(pfns.length);
    expect(hv.hypervisor.counters.pagesMadeVisible).toBe(pfns.length);
    expect(hv.hypervisor.byOwner.get("a")).toEqual({ visible: 5, private: 0 });
    expect(hv.hypervisor.byOwner.get("b")).toEqual({ visible: 4, private: 0 });
    for (let p = 0; p < 8; p++) {
      for (const [base, block] of [
        [a, "a"],
        [b, "b"],
      ] as const) {
        const visible = pfns.includes(base + p);
        expect(mem.phys.hasFlag(base + p, PageFlag.HostVisible), `${block}+${p}`).toBe(visible);
        // a converted page's contents are destroyed; the others keep theirs
        const out = new Uint8Array(PAGE_SIZE);
        mem.phys.read((base + p) * PAGE_SIZE, out);
        expect(
          out.every((x) => x === 0x5a),
          `${block}+${p}`,
        ).toBe(!visible);
      }
    }
    // Making visible again changes nothing; the counts still grow by the reps.
    const changes = mem.phys.visibilityChanges;
    hv.hypercalls.markGpaVisibility([a + 2, a + 3], 3);
    expect(mem.phys.visibilityChanges).toBe(changes);
    expect(hv.hypervisor.byOwner.get("a")).toEqual({ visible: 7, private: 0 });
  });

  it("counts a run of order-0 pages by the owner each page has, free ones as free, as ownerOf names them", () => {
    const { mem, hv } = boot(64 * MiB);
    const start = 0x2000;
    const tags = ["a", "a", "b", null, "a", "c", "c", null];
    tags.forEach((tag, i) => {
      if (tag !== null) expect(mem.buddy.allocRange(start + i, 1, { tag })).toBe(true);
    });
    const want = new Map<string, number>();
    for (let i = 0; i < tags.length; i++) {
      const owner = mem.buddy.ownerOf(start + i);
      want.set(owner, (want.get(owner) ?? 0) + 1);
    }
    expect(want.get("free")).toBe(2);
    hv.hypercalls.markGpaVisibility(
      tags.map((_, i) => start + i),
      3,
    );
    for (const [owner, pages] of want)
      expect(hv.hypervisor.byOwner.get(owner)).toEqual({ visible: pages, private: 0 });
    hv.hypercalls.markGpaVisibility([start + 2, start + 5], 0);
    expect(hv.hypervisor.byOwner.get("b")).toEqual({ visible: 1, private: 1 });
    expect(hv.hypervisor.byOwner.get("c")).toEqual({ visible: 2, private: 1 });
  });

  it("stops a run at a refused PFN and at a PFN past RAM, reporting the reps done before it", () => {
    const { mem, hv } = boot(64 * MiB);
    const base = mem.buddy.allocPages(2, { tag: "r" })!;
    hv.hypervisor.faults.refusePfn(base + 2);
    expect(() => hv.hypercalls.markGpaVisibility([base, base + 1, base + 2, base + 3], 3)).toThrowError(
      HypercallError,
    );
    expect([0, 1, 2, 3].map((i) => mem.phys.hasFlag(base + i, PageFlag.HostVisible))).toEqual([
      true,
      true,
      false,
      false,
    ]);
    hv.hypervisor.faults.clear();
    const last = mem.phys.pages - 2;
    expect(() => hv.hypercalls.markGpaVisibility([last, last + 1, last + 2], 3)).toThrowError(HypercallError);
    expect(mem.phys.hasFlag(last + 1, PageFlag.HostVisible)).toBe(true);
    expect(hv.hypervisor.counters.reps).toBe(2 + 2);
  });

  it("a failure at batch k leaves exactly the first k·510 pages visible and rolls nothing back", () => {
    for (const k of [1, 3, 8]) {
      const { mem, hv } = boot(256 * MiB);
      const rx = mem.vmalloc.vzalloc(16 * MiB, { tag: "rx" })!;
      hv.hypervisor.faults.failCall(k + 1);
      expect(() => hv.setMemory.decrypted(rx, 4096)).toThrowError(HypercallError);
      expect(visiblePages(mem, rx, 4096)).toBe(k * 510);
      expect(hv.setMemory.counters.failures).toBe(1);
    }
  });

  it("maps a failed status to -EFAULT in the address-bit era and -EIO in the pte-bit era", () => {
    for (const [era, code] of [
      ["address-bit", "EFAULT"],
      ["pte-bit", "EIO"],
    ] as const) {
      const { mem, hv } = boot(64 * MiB, era);
      const buf = mem.vmalloc.vzalloc(4 * PAGE_SIZE, { tag: "buf" })!;
      hv.hypervisor.faults.failCall(1);
      try {
        hv.setMemory.decrypted(buf, 4);
        expect.unreachable();
      } catch (e) {
        expect((e as HypercallError).code).toBe(code);
      }
    }
  });

  it("resumes a partial completion from the reported rep", () => {
    const { mem, hv } = boot(64 * MiB);
    const buf = mem.vmalloc.vzalloc(300 * PAGE_SIZE, { tag: "buf" })!;
    hv.hypervisor.faults.partialReps(1, 100);
    hv.setMemory.decrypted(buf, 300);
    expect(hv.hypervisor.counters.hypercalls).toBe(2);
    expect(visiblePages(mem, buf, 300)).toBe(300);
  });

  it("refuses impossible rep counts with a typed error instead of looping", () => {
    for (const kind of ["too-many", "no-progress"] as const) {
      const { mem, hv } = boot(64 * MiB);
      const buf = mem.vmalloc.vzalloc(10 * PAGE_SIZE, { tag: "buf" })!;
      hv.hypervisor.faults.impossibleCount(1, kind);
      expect(() => hv.setMemory.decrypted(buf, 10)).toThrowError(/EPROTO/);
      expect(hv.hypercalls.untrustedAnswers).toBe(1);
    }
  });

  it("a refused PFN fails its batch at that rep", () => {
    const { mem, hv } = boot(64 * MiB);
    const buf = mem.vmalloc.vzalloc(10 * PAGE_SIZE, { tag: "buf" })!;
    hv.hypervisor.faults.refusePfn(mem.virtToPfn(buf + 4 * PAGE_SIZE));
    expect(() => hv.setMemory.decrypted(buf, 10)).toThrowError(/EFAULT/);
    expect(visiblePages(mem, buf, 10)).toBe(4);
  });

  it("more than 510 PFNs in one call is -EINVAL without a hypercall", () => {
    const { hv } = boot(64 * MiB);
    expect(() =>
      hv.hypercalls.markGpaVisibility(new Array(HV_MAX_MODIFY_GPA_REP_COUNT + 1).fill(1), 3),
    ).toThrowError(/EINVAL/);
    expect(hv.hypervisor.counters.hypercalls).toBe(0);
  });

  it("destroys data written before a conversion", () => {
    const { mem, hv } = boot(64 * MiB);
    const buf = mem.vmalloc.vzalloc(PAGE_SIZE, { tag: "buf" })!;
    mem.mmu.write(buf, new Uint8Array(64).fill(0x5a));
    hv.setMemory.decrypted(buf, 1);
    const out = new Uint8Array(64);
    hv.hostView.read(mem.virtToPfn(buf) * PAGE_SIZE, out);
    expect(out).not.toEqual(new Uint8Array(64).fill(0x5a));
    hv.hostView.write(mem.virtToPfn(buf) * PAGE_SIZE, new Uint8Array(64).fill(7));
    hv.setMemory.encrypted(buf, 1);
    mem.mmu.read(buf, out);
    expect(out).not.toEqual(new Uint8Array(64).fill(7));
  });

  it("pte-bit era: the same virtual address reaches the shared alias; no second mapping", () => {
    const { mem, hv } = boot(64 * MiB, "pte-bit");
    const buf = mem.vmalloc.vzalloc(4 * PAGE_SIZE, { tag: "buf" })!;
    const areas = mem.vmalloc.areas().length;
    hv.setMemory.decrypted(buf, 4);
    expect(mem.mmu.translate(buf + PAGE_SIZE)).toEqual({ pfn: mem.virtToPfn(buf + PAGE_SIZE), shared: true });
    mem.mmu.write(buf, new Uint8Array([1, 2, 3]));
    const host = new Uint8Array(3);
    hv.hostView.read(mem.virtToPfn(buf) * PAGE_SIZE + mem.vtomPfn * PAGE_SIZE, host);
    expect([...host]).toEqual([1, 2, 3]);
    expect(mem.vmalloc.areas().length).toBe(areas);
    hv.setMemory.encrypted(buf, 4);
    expect(mem.mmu.translate(buf).shared).toBe(false);
    mem.mmu.write(buf, new Uint8Array([1]));
  });

  it("address-bit era: PTEs stay private; the buffer is reachable only through a second mapping", () => {
    const { mem, hv } = boot(64 * MiB, "address-bit");
    const buf = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    hv.setMemory.decrypted(buf, 2);
    expect(() => mem.mmu.write(buf, new Uint8Array(1))).toThrowError(/private-alias-to-shared-page/);
    const alias = mem.vmalloc.vmapPfn(
      [mem.virtToPfn(buf) + mem.vtomPfn, mem.virtToPfn(buf + PAGE_SIZE) + mem.vtomPfn],
      {
        tag: "alias",
      },
    )!;
    mem.mmu.write(alias, new Uint8Array([4]));
  });

  it("does nothing in a VM without isolation", () => {
    const { mem, hv } = boot(64 * MiB, "address-bit", false);
    const buf = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    hv.setMemory.decrypted(buf, 2);
    expect(hv.hypervisor.counters.hypercalls).toBe(0);
    mem.mmu.write(buf, new Uint8Array([1]));
    hv.hostView.write(mem.virtToPfn(buf) * PAGE_SIZE, new Uint8Array([2]));
  });

  it("answers an unknown hypercall code with HV_STATUS_INVALID_HYPERCALL_CODE", () => {
    const { hv } = boot(64 * MiB);
    const status = hv.hypervisor.hypercall(
      encodeControl({ code: 0x1234, fast: false, varHeadSize: 0, repCount: 0, repStart: 0 }),
      0,
    );
    expect(decodeStatus(status).result).toBe(HvStatus.InvalidHypercallCode);
    expect(HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY).toBe(0xdb);
  });
});

describe("host view", () => {
  it("refuses and counts access to pages that are not host-visible (I2)", () => {
    const { mem, hv } = boot(64 * MiB);
    const buf = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    const gpa = mem.virtToPfn(buf) * PAGE_SIZE;
    expect(() => hv.hostView.read(gpa, new Uint8Array(8))).toThrowError(/host-access-refused/);
    hv.setMemory.decrypted(buf, 1);
    hv.hostView.read(gpa, new Uint8Array(8));
    hv.hostView.read(gpa + mem.vtomPfn * PAGE_SIZE, new Uint8Array(8)); // the shared alias
    expect(() => hv.hostView.write(gpa + PAGE_SIZE - 4, new Uint8Array(8))).toThrowError(HypercallError);
    expect(() => hv.hostView.read(2 ** 60, new Uint8Array(1))).toThrowError(HypercallError);
    expect(hv.hostView.refused).toBe(3);
  });

  it("reads and writes u32 words under the same gate and counters as four-byte accesses (I2)", () => {
    const { mem, hv } = boot(64 * MiB);
    const buf = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    const gpa = mem.virtToPfn(buf) * PAGE_SIZE;
    const view = hv.hostView;
    expect(() => view.readU32(gpa + 8)).toThrowError(/host-access-refused/);
    expect(() => view.writeU32(gpa + 8, 1)).toThrowError(/host-access-refused/);
    expect(view.refused).toBe(2);
    hv.setMemory.decrypted(buf, 1);
    view.writeU32(gpa + 8 + mem.vtomPfn * PAGE_SIZE, 0xcafe_f00d); // the shared alias
    expect(view.readU32(gpa + 8)).toBe(0xcafe_f00d);
    const four = new Uint8Array(4);
    view.read(gpa + 8, four);
    expect([...four]).toEqual([0x0d, 0xf0, 0xfe, 0xca]);
    // the second page is still private: a word crossing into it is refused before a byte moves
    expect(() => view.writeU32(gpa + PAGE_SIZE - 2, 7)).toThrowError(/host-access-refused/);
    expect(view.refused).toBe(3);
    expect([view.bytesRead, view.bytesWritten]).toEqual([8, 4]);
    hv.setMemory.encrypted(buf, 1); // revoked: the word faults exactly as a read does
    expect(() => view.readU32(gpa + 8)).toThrowError(/host-access-refused/);
    expect(view.refused).toBe(4);
  });

  it("serves repeated accesses to a page from where its bytes live, and drops that the moment it changes", () => {
    const { mem, hv } = boot(64 * MiB);
    const buf = mem.vmalloc.vzalloc(2 * PAGE_SIZE, { tag: "buf" })!;
    const pfn = mem.virtToPfn(buf);
    const gpa = pfn * PAGE_SIZE;
    const view = hv.hostView;
    hv.setMemory.decrypted(buf, 2);
    view.write(gpa, new Uint8Array(16).fill(0x44));
    for (let i = 0; i < 3; i++) expect(view.readU32(gpa + 4)).toBe(0x44444444); // kept after the first
    // the guest writes through its shared alias: the host sees it at once
    const alias = mem.vmalloc.vmap([pfn], { tag: "alias", decrypted: true })!;
    mem.mmu.writeU32(alias + 4, 0x01020304);
    expect(view.readU32(gpa + 4)).toBe(0x01020304);
    // the page's bytes are released and their slot reused by another page: the host reads zeros
    mem.phys.zeroPage(pfn);
    mem.phys.write(mem.virtToPfn(buf + PAGE_SIZE) * PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(0xee));
    expect(view.readU32(gpa + 4)).toBe(0);
    const out = new Uint8Array(8);
    view.read(gpa, out);
    expect([...out]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    // revoked: refused and counted, not served from what was kept
    view.write(gpa, Uint8Array.of(9));
    expect(view.readU32(gpa)).toBe(9);
    mem.vmalloc.vunmap(alias);
    hv.setMemory.encrypted(buf, 1);
    const refused = view.refused;
    expect(() => view.readU32(gpa)).toThrowError(/host-access-refused/);
    expect(() => view.read(gpa, out)).toThrowError(/host-access-refused/);
    expect(() => view.write(gpa, out)).toThrowError(/host-access-refused/);
    expect(() => view.writeU32(gpa, 1)).toThrowError(/host-access-refused/);
    expect(view.refused - refused).toBe(4);
    expect(view.privateHits).toBe(0);
    // bytes counted on every access, kept or not
    expect([view.bytesRead, view.bytesWritten]).toEqual([3 * 4 + 4 + 4 + 8 + 4, 16 + 1]);
  });

  it("lets an access through only when every page it touches is visible, through either alias (I2)", () => {
    const { mem, hv } = boot(64 * MiB);
    const buf = mem.vmalloc.vzalloc(8 * PAGE_SIZE, { tag: "buf" })!;
    const pfns = Array.from({ length: 8 }, (_, i) => mem.virtToPfn(buf + i * PAGE_SIZE));
    for (const [i, pfn] of pfns.entries()) if (i % 3 !== 0) hv.hypercalls.markGpaVisibility([pfn], 1);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: PAGE_SIZE - 1 }),
        fc.integer({ min: 1, max: 3 * PAGE_SIZE }),
        fc.boolean(),
        (page, off, len, shared) => {
          const pfn = pfns[page]!;
          const pa = pfn * PAGE_SIZE + off;
          let allVisible = true;
          for (let p = Math.floor(pa / PAGE_SIZE); p * PAGE_SIZE < pa + len; p++)
            if (!mem.phys.hasFlag(p, PageFlag.HostVisible)) allVisible = false;
          const gpa = shared ? pa + mem.vtomPfn * PAGE_SIZE : pa;
          let done = true;
          try {
            hv.hostView.read(gpa, new Uint8Array(len));
          } catch (e) {
            expect(e).toBeInstanceOf(HypercallError);
            done = false;
          }
          expect(done).toBe(allVisible);
        },
      ),
      { numRuns: 300 },
    );
    expect(hv.hostView.privateHits).toBe(0);
  });
});
