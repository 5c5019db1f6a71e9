/** x86-64 page geometry (4 KiB base pages). */
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
/** Orders 0..10: MAX_ORDER of Linux 5.15 is 11, so the largest buddy block is 1024 pages (4 MiB). */
export const MAX_ORDER = 11;
export const PAGEBLOCK_ORDER = 9;
/** Orders above this are "costly" (mmzone.h PAGE_ALLOC_COSTLY_ORDER). */
export const PAGE_ALLOC_COSTLY_ORDER = 3;
/** 512 eight-byte entries per page-table page. */
export const PTRS_PER_TABLE = 512;

/**
 * Kernel virtual addresses are kept as their low 48 bits (4-level paging translates only those), so they
 * stay exact JS numbers; `formatKernelVa` prints the canonical sign-extended form.
 */
export const PAGE_OFFSET = 0x8880_0000_0000; // direct map, 0xffff888000000000
export const VMALLOC_START = 0xc900_0000_0000; // 0xffffc90000000000
export const VMALLOC_END = 0xe900_0000_0000; // exclusive; 32 TiB of vmalloc space
/** PUD_SHIFT: VM_IOREMAP areas are aligned to at most 1 GiB (IOREMAP_MAX_ORDER). */
export const IOREMAP_MAX_ORDER = 30;

/** Prints a 48-bit kernel address in its canonical 64-bit form, as /proc/vmallocinfo does. */
export function formatKernelVa(va: number): string {
  return `0xffff${va.toString(16).padStart(12, "0")}`;
}

/** get_order(): the smallest order whose block holds `bytes`. */
export function getOrder(bytes: number): number {
  let order = 0;
  while (PAGE_SIZE * 2 ** order < bytes) order++;
  return order;
}

/** Number of pages that hold `bytes` (PFN_UP). */
export function pfnUp(bytes: number): number {
  return Math.ceil(bytes / PAGE_SIZE);
}
