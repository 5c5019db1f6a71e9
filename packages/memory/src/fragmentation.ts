import { MAX_ORDER } from "./constants.js";

/** The free-block census of mm/vmstat.c fill_contig_page_info for one requested order. */
function contigInfo(
  buddyinfo: ArrayLike<number>,
  order: number,
): { freePages: number; freeBlocks: number; suitable: number } {
  let freePages = 0;
  let freeBlocks = 0;
  let suitable = 0;
  for (let o = 0; o < MAX_ORDER; o++) {
    const blocks = buddyinfo[o] ?? 0;
    freeBlocks += blocks;
    freePages += blocks * 2 ** o;
    if (o >= order) suitable += blocks * 2 ** (o - order);
  }
  return { freePages, freeBlocks, suitable };
}

/**
 * __fragmentation_index() in thousandths: −1000 when a suitable block exists; otherwise toward 0 the
 * failure is for lack of memory, toward 1000 for fragmentation. Integer division as the kernel does.
 */
export function extfragIndex(buddyinfo: ArrayLike<number>, order: number): number {
  const { freePages, freeBlocks, suitable } = contigInfo(buddyinfo, order);
  if (freeBlocks === 0) return 0;
  if (suitable > 0) return -1000;
  return 1000 - Math.floor((1000 + Math.floor((freePages * 1000) / 2 ** order)) / freeBlocks);
}

/** unusable_free_index() in thousandths: the share of free memory unusable for an order-`order` request. */
export function unusableIndex(buddyinfo: ArrayLike<number>, order: number): number {
  const { freePages, suitable } = contigInfo(buddyinfo, order);
  if (freePages === 0) return 1000;
  return Math.floor(((freePages - suitable * 2 ** order) * 1000) / freePages);
}
