import type { KernelProfile } from "@ivm/kernel";
import { Gfp, type GuestMemory, PAGE_SIZE } from "@ivm/memory";
import { HypercallError } from "./errors.js";

/**
 * A second mapping of private pages through their shared alias (pfn + vTOM), as hv_map_memory builds it
 * in arch/x86/hyperv/ivm.c (5.17–6.3): a temporary kcalloc'd PFN array, vmap_pfn, and the array freed
 * right after. `fill` writes the private pfns; the vTOM offset is added here. Returns the alias address,
 * or null when the array or the mapping cannot be allocated.
 */
export function vmapSharedAlias(
  memory: GuestMemory,
  pages: number,
  fill: (pfns: Float64Array) => void,
  options: { readonly tag: string; readonly arrayTag?: string },
): number | null {
  const arrayVa = memory.kmalloc.kmalloc(pages * 8, {
    tag: options.arrayTag ?? "hv-map-pfns",
    gfp: Gfp.Zero,
  });
  if (arrayVa === null) return null;
  try {
    const pfns = new Float64Array(pages);
    fill(pfns);
    const vtomPfn = memory.vtomPfn;
    for (let i = 0; i < pages; i++) pfns[i]! += vtomPfn;
    return memory.vmalloc.vmapPfn(pfns, { tag: options.tag });
  } finally {
    memory.kmalloc.kfree(arrayVa);
  }
}

/**
 * hv_map_memory(addr, size): the shared alias of a vmalloc buffer, PFNs found by vmalloc_to_pfn, mapped
 * with vmap_pfn(..., PAGE_KERNEL_IO) (5.17–6.3). A `profile` whose kernel no longer has hv_map_memory
 * (`hypercall.mapMemoryPgprot` is `none`, 6.4 on) is refused with EINVAL before anything is allocated.
 */
export function hvMapMemory(
  memory: GuestMemory,
  va: number,
  size: number,
  tag: string,
  profile?: KernelProfile,
): number | null {
  if (profile !== undefined && profile.hypercall.mapMemoryPgprot.value === "none") {
    const removed = profile.hypercall.mapMemoryPgprot;
    throw new HypercallError(
      "EINVAL",
      "no-hv-map-memory",
      `kernel ${profile.name} has no hv_map_memory (removed by ${removed.commit} "${removed.title}", ${removed.since})`,
    );
  }
  const pages = size / PAGE_SIZE;
  return vmapSharedAlias(
    memory,
    pages,
    // vmalloc_to_pfn page by page, read with one walk per PTE table (the same pfns, walk count and error)
    (pfns) => memory.vmalloc.vmallocToPfns(va, pages, pfns),
    { tag },
  );
}

/** hv_unmap_memory(addr): vunmap of the alias. */
export function hvUnmapMemory(memory: GuestMemory, alias: number): void {
  memory.vmalloc.vunmap(alias);
}
