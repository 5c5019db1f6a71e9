import { type GuestMemory, PAGE_SIZE } from "@ivm/memory";

/**
 * Marks the RAM pages behind `pages` pages of `va` as leaked: their host visibility is unknown after a
 * failed re-encryption, so they keep their owner, are counted, and never return to the allocator
 * (CVE-2024-36911: "hv_netvsc: Don't free decrypted memory").
 */
export function leakPagesAt(memory: GuestMemory, va: number, pages: number): void {
  for (let i = 0; i < pages; i++) memory.buddy.leakPages(memory.virtToPfn(va + i * PAGE_SIZE), 1);
}
