/**
 * A channel's ring pages in guest memory: mirrors vmbus_alloc_ring / vmbus_free_ring
 * (drivers/hv/channel.c) and hv_ringbuffer_init / hv_ringbuffer_cleanup (drivers/hv/ring_buffer.c).
 *
 * vmbus_alloc_ring takes ONE contiguous alloc_pages block of get_order(send + recv), zeroed; the
 * outbound ring is the first send/4096 pages, the inbound ring the rest. hv_ringbuffer_init runs after
 * the ring GPADL exists (5.16 SNP order, because decryption destroys contents) and double-maps each ring.
 */
import { Gfp, type GuestMemory, getOrder, PAGE_SIZE } from "@ivm/memory";
import { err, invariant, ok, type Result } from "../errors.js";
import { type KernelContext, VMBUS_FINDING } from "../profile.js";
import { RING_FEAT_PENDING_SEND_SZ, RING_HEADER } from "../wire/ring-header.js";
import { GuestRingMem } from "./guest-ring-mem.js";

/** Owner tags, so the memory model can report what VMBus holds. */
export const RING_TAGS = {
  pages: "vmbus-ring",
  mapping: "vmbus-ring-map",
  wraparound: "hv-ring-wraparound",
  pktBuffer: "vmbus-pkt-buffer",
} as const;

/** The block vmbus_alloc_ring took (channel->ringbuffer_page, ringbuffer_pagecount, ringbuffer_send_offset). */
export interface RingPages {
  readonly firstPfn: number;
  /** get_order(send + recv): the block may be larger than the rings need. */
  readonly order: number;
  /** ringbuffer_pagecount: (send + recv) >> PAGE_SHIFT. */
  readonly pageCount: number;
  /** ringbuffer_send_offset: send >> PAGE_SHIFT. */
  readonly sendPages: number;
}

/** vmbus_alloc_ring: sizes must be non-zero page multiples (-EINVAL); no block is -ENOMEM. */
export function vmbusAllocRing(memory: GuestMemory, sendSize: number, recvSize: number): Result<RingPages> {
  const u32 = (n: number): boolean => Number.isInteger(n) && n > 0 && n <= 0xffff_ffff;
  if (!u32(sendSize) || !u32(recvSize) || sendSize % PAGE_SIZE !== 0 || recvSize % PAGE_SIZE !== 0) {
    return err("EINVAL", "ring-size", `ring sizes ${sendSize}/${recvSize} must be non-zero page multiples`);
  }
  if (sendSize + recvSize > 0xffff_ffff) return err("EINVAL", "ring-size", "send + recv overflows a u32");
  const order = getOrder(sendSize + recvSize);
  const firstPfn = memory.buddy.allocPages(order, { tag: RING_TAGS.pages, gfp: Gfp.Zero }); // GFP_KERNEL|__GFP_ZERO: reclaim + compaction, no retry (costly)
  if (firstPfn === null) return err("ENOMEM", "ring-pages", `no order-${order} block for the rings`);
  return ok({
    firstPfn,
    order,
    pageCount: (sendSize + recvSize) / PAGE_SIZE,
    sendPages: sendSize / PAGE_SIZE,
  });
}

/** The mapping hv_ringbuffer_init made for one ring (hv_ring_buffer_info). */
export interface GuestRingBuffer {
  readonly mem: GuestRingMem;
  /** ring_info->ring_buffer: the 2n−1 page mapping. */
  readonly va: number;
  readonly pages: number;
  /** ring_info->pkt_buffer (kzalloc'd, inbound ring only), or null. */
  readonly pktBufferVa: number | null;
  readonly pktBufferSize: number;
}

/**
 * hv_ringbuffer_init for the `pages` pages starting at `firstPfn`, in the memory's era:
 * - isolated, address-bit (5.16–6.3): vmap_pfn of the 2n−1 list with pfn + vTOM, then zero all n
 *   pages through it (the visibility change left garbage in them);
 * - isolated, pte-bit (6.4+): vmap with pgprot_decrypted, zero the 4 KiB header only;
 * - not isolated: a plain vmap.
 * The wraparound array is a temporary kcalloc, as in the kernel. Then indices 0, feature_bits = 1.
 */
export function hvRingbufferInit(
  memory: GuestMemory,
  firstPfn: number,
  pages: number,
  maxPktSize: number,
): Result<GuestRingBuffer> {
  invariant(pages >= 2, "a ring needs a header page and at least one data page");
  const count = 2 * pages - 1;
  const arrayVa = memory.kmalloc.kmalloc(count * 8, { tag: RING_TAGS.wraparound, gfp: Gfp.Zero });
  if (arrayVa === null) return err("ENOMEM", "ring-wraparound", "no memory for the wraparound array");
  const list = new Float64Array(count);
  list[0] = firstPfn;
  for (let i = 0; i < 2 * (pages - 1); i++) list[i + 1] = firstPfn + 1 + (i % (pages - 1));

  const addressBit = memory.isolated && memory.vtomMode === "address-bit";
  let va: number | null;
  if (addressBit) {
    for (let i = 0; i < count; i++) list[i]! += memory.vtomPfn;
    va = memory.vmalloc.vmapPfn(list, { tag: RING_TAGS.mapping });
  } else {
    va = memory.vmalloc.vmap(list, { tag: RING_TAGS.mapping, decrypted: memory.isolated });
  }
  memory.kmalloc.kfree(arrayVa);
  if (va === null) return err("ENOMEM", "ring-map", "could not map the ring");

  if (addressBit) memory.mmu.fill(va, pages * PAGE_SIZE, 0);
  else if (memory.vtomMode === "pte-bit") memory.mmu.fill(va, RING_HEADER.SIZE, 0);

  const mem = new GuestRingMem(memory.mmu, va, pages);
  mem.writeHeaderU32(RING_HEADER.READ_INDEX, 0);
  mem.writeHeaderU32(RING_HEADER.WRITE_INDEX, 0);
  mem.writeHeaderU32(RING_HEADER.FEATURE_BITS, RING_FEAT_PENDING_SEND_SZ);

  let pktBufferVa: number | null = null;
  if (maxPktSize > 0) {
    pktBufferVa = memory.kmalloc.kmalloc(maxPktSize, { tag: RING_TAGS.pktBuffer, gfp: Gfp.Zero });
    if (pktBufferVa === null) {
      memory.vmalloc.vunmap(va);
      return err("ENOMEM", "pkt-buffer", "no memory for the packet buffer");
    }
  }
  return ok({ mem, va, pages, pktBufferVa, pktBufferSize: maxPktSize });
}

/** hv_ringbuffer_cleanup: vunmap the ring, kfree the packet buffer. */
export function hvRingbufferCleanup(memory: GuestMemory, ring: GuestRingBuffer): void {
  memory.vmalloc.vunmap(ring.va);
  if (ring.pktBufferVa !== null) memory.kmalloc.kfree(ring.pktBufferVa);
}

/**
 * The page half of vmbus_free_ring: __free_pages only when the ring GPADL's pages were re-encrypted
 * (2024, CVE-2024-36909). Otherwise the block is leaked: marked so it is never handed out again (I4).
 * Returns whether the pages were freed.
 *
 * With `kernel` given and a profile whose vmbus_free_ring does not check (before 30d18df6567b), the
 * kernel frees pages that may still be host-visible: that is reported as a finding and, kernel-exact,
 * the block goes back to the allocator as it is (BuddyAllocator.freeHostVisible: a later allocation may
 * hand out a page the host still sees). A hardened profile keeps them out of the allocator (leaked).
 */
export function vmbusFreeRingPages(
  memory: GuestMemory,
  pages: RingPages,
  decrypted: boolean,
  kernel?: KernelContext,
): boolean {
  if (decrypted) {
    if (kernel !== undefined && !kernel.profile.vmbus.ringFreeChecksDecrypted.value) {
      kernel.report({
        id: VMBUS_FINDING.ringFreedVisible,
        invariant: "I1",
        what: `__free_pages of ${2 ** pages.order} ring pages (pfn 0x${pages.firstPfn.toString(16)}) that may still be host-visible`,
        where: "vmbus_free_ring",
      });
      if (!kernel.profile.hardened) {
        memory.buddy.freeHostVisible(pages.firstPfn, pages.order, "vmbus_free_ring");
        return true;
      }
    }
    memory.buddy.leakPages(pages.firstPfn, 2 ** pages.order);
    return false;
  }
  memory.buddy.freePages(pages.firstPfn, pages.order);
  return true;
}
