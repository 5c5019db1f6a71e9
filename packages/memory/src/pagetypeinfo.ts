import type { BuddyAllocator } from "./buddy.js";
import { MAX_ORDER, PAGEBLOCK_ORDER } from "./constants.js";
import { MIGRATE_TYPES, MIGRATETYPE_NAMES, type Migratetype } from "./migratetype.js";

const ZONE = "Normal";

/**
 * /proc/pagetypeinfo for the one zone, in mm/vmstat.c's layout (pagetypeinfo_showfree and
 * pagetypeinfo_showblockcount with their printf widths): the pageblock size, free blocks per order for
 * each migratetype, and pageblocks per migratetype. Only the modelled types are printed.
 */
export function formatPagetypeinfo(buddy: BuddyAllocator): string {
  const lines: string[] = [];
  lines.push(`Page block order: ${PAGEBLOCK_ORDER}`);
  lines.push(`Pages per block:  ${1 << PAGEBLOCK_ORDER}`);
  lines.push("");
  let header = `${"Free pages count per migrate type at order".padEnd(43)} `;
  for (let o = 0; o < MAX_ORDER; o++) header += `${String(o).padStart(6)} `;
  lines.push(header);
  for (let t = 0; t < MIGRATE_TYPES; t++) {
    let line = `Node    0, zone ${ZONE.padStart(8)}, type ${MIGRATETYPE_NAMES[t]!.padStart(12)} `;
    for (const n of buddy.pagetypeinfo(t as Migratetype)) line += `${String(n).padStart(6)} `;
    lines.push(line);
  }
  lines.push("");
  let blocks = `${"Number of blocks type ".padEnd(23)}`;
  for (let t = 0; t < MIGRATE_TYPES; t++) blocks += `${MIGRATETYPE_NAMES[t]!.padStart(12)} `;
  lines.push(blocks);
  let counts = `Node 0, zone ${ZONE.padStart(8)} `;
  for (const n of buddy.pageblockCounts()) counts += `${String(n).padStart(12)} `;
  lines.push(counts);
  return `${lines.join("\n")}\n`;
}

/** /proc/buddyinfo's line for the zone (frag_show_print). */
export function formatBuddyinfo(buddy: BuddyAllocator): string {
  let line = `Node 0, zone ${ZONE.padStart(8)} `;
  for (const n of buddy.buddyinfo()) line += `${String(n).padStart(6)} `;
  return `${line}\n`;
}
