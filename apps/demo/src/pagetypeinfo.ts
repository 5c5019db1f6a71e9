import type { StrategyEntry } from "@ivm/catalog";
import type { Era } from "@ivm/hypercall";
import { formatBuddyinfo, formatPagetypeinfo } from "@ivm/memory";
import { bootGuest, type DemoOptions, runKernel } from "./run.js";

/**
 * What `cat /proc/buddyinfo /proc/pagetypeinfo` would print in the aged guest the first run starts from,
 * just before its NIC is added, with the zone's watermarks and the work aging made the allocator do.
 */
export function agedGuestView(entry: StrategyEntry, era: Era, o: DemoOptions): string {
  const vm = bootGuest(entry, runKernel(o, era), o);
  const buddy = vm.memory.buddy;
  const { min, low, high } = buddy.watermarks;
  const w = buddy.work;
  return [
    `# ${entry.name} guest before the NIC is added (uptime "${o.uptime}", seed ${o.seed})`,
    "$ cat /proc/buddyinfo",
    formatBuddyinfo(buddy).trimEnd(),
    "$ cat /proc/pagetypeinfo",
    formatPagetypeinfo(buddy).trimEnd(),
    "",
    `Watermarks (pages): min ${min}, low ${low}, high ${high}; free ${buddy.nrFreePages}, reclaimable ${buddy.reclaimablePages()}.`,
    `Aging cost: ${w.compactionStalls} compaction stalls, ${w.compactionMigrated} pages migrated, ${w.kswapdReclaimed + w.reclaimed} pages reclaimed (${w.allocStalls} direct), ${w.allocFallbacks} migratetype fallbacks (${w.pageblocksStolen} pageblocks claimed).`,
    "",
  ].join("\n");
}
