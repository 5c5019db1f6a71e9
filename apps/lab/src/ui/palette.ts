/**
 * Page categories and their colours: the Okabe–Ito palette (safe for the common colour-vision
 * deficiencies) as the demo's HTML report uses it, so a page looks the same in both.
 */
// The demo report's page categories, shared rather than copied (apps/demo/src/snapshot.ts).
import { CATEGORIES as DEMO_CATEGORIES, categoryOf as demoCategoryOf } from "../../../demo/src/snapshot.js";

export const CATEGORIES: readonly string[] = DEMO_CATEGORIES;
export type Category = string;
export const categoryOf: (tag: string) => Category = demoCategoryOf;

/** The demo report's colours (apps/demo/src/report.ts keeps them private, so they are repeated here). */
export const PALETTE: Readonly<Record<string, string>> = {
  free: "#ffffff",
  kernel: "#bbbbbb",
  uptime: "#999999",
  pagetable: "#E69F00",
  swiotlb: "#56B4E9",
  "netvsc-rx": "#009E73",
  "netvsc-tx": "#000000",
  metadata: "#CC79A7",
  ring: "#F0E442",
  leaked: "#D55E00",
  pool: "#7FDBFF",
};
