import { formatKernelVa, type GuestMemory, PageFlag, VMALLOC_START } from "@ivm/memory";
import type { MappingView, MemoryPicture } from "./report-model.js";

export const CATEGORIES: readonly string[] = [
  "free",
  "kernel",
  "uptime",
  "pagetable",
  "swiotlb",
  "netvsc-rx",
  "netvsc-tx",
  "metadata",
  "ring",
  "leaked",
  "pool",
];

/** Which picture category an owner tag belongs to. */
export function categoryOf(tag: string): string {
  if (tag === "free") return "free";
  if (tag.startsWith("uptime")) return "uptime";
  if (tag === "pagetable") return "pagetable";
  if (tag.startsWith("swiotlb")) return "swiotlb";
  if (tag.startsWith("netvsc-rx")) return "netvsc-rx";
  if (tag.startsWith("netvsc-tx")) return "netvsc-tx";
  if (tag.startsWith("shared-pool")) return "pool";
  if (tag.includes("ring")) return "ring";
  if (tag === "reserved" || tag === "none") return "kernel";
  return "metadata";
}

/** Summarises guest physical memory into at most `maxCells` cells. O(pages). */
export function memoryPicture(memory: GuestMemory, maxCells = 2048): MemoryPicture {
  const pages = memory.phys.pages;
  const pagesPerCell = Math.max(1, Math.ceil(pages / maxCells));
  const cells = Math.ceil(pages / pagesPerCell);
  const counts = new Uint32Array(cells * CATEGORIES.length);
  const index = new Map(CATEGORIES.map((c, i) => [c, i]));
  memory.buddy.forEachBlock((head, order, _free, owner) => {
    const cat = index.get(categoryOf(owner))!;
    for (let p = head; p < head + 2 ** order; p++) {
      const c = memory.phys.hasFlag(p, PageFlag.Leaked) ? index.get("leaked")! : cat;
      counts[Math.floor(p / pagesPerCell) * CATEGORIES.length + c]!++;
    }
  });
  const cellOwner: number[] = [];
  const cellVisible: number[] = new Array(cells).fill(0);
  for (let cell = 0; cell < cells; cell++) {
    let best = 0;
    for (let c = 1; c < CATEGORIES.length; c++) {
      // Anything allocated wins over "free" in a mixed cell, so small buffers stay visible.
      const n = counts[cell * CATEGORIES.length + c]!;
      if (n > 0 && (best === 0 || n > counts[cell * CATEGORIES.length + best]!)) best = c;
    }
    cellOwner.push(best);
  }
  for (let p = 0; p < pages; p++)
    if (memory.phys.hasFlag(p, PageFlag.HostVisible)) cellVisible[Math.floor(p / pagesPerCell)]!++;
  return { pages, pagesPerCell, cellOwner, cellVisible, categories: CATEGORIES, vtom: memory.vtomPfn * 4096 };
}

/** The vmalloc-range areas whose tag matches, with the alias their PTEs reach. */
export function mappingViews(memory: GuestMemory, match: (tag: string) => boolean): MappingView[] {
  return memory.vmalloc
    .areas()
    .filter((a) => a.start >= VMALLOC_START && match(a.tag))
    .map((a) => {
      let shared = 0;
      for (let i = 0; i < a.frames.length; i++)
        if (memory.vtomPfn > 0 && memory.isSharedMapping(a.start + i * 4096)) shared++;
      const alias: MappingView["alias"] =
        shared === 0 ? "private" : shared === a.frames.length ? "shared" : "mixed";
      return {
        start: formatKernelVa(a.start),
        bytes: a.size,
        tag: a.tag,
        kind: a.kind,
        alias,
        firstPfn: memory.virtToPfn(a.start),
      };
    });
}
