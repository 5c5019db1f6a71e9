/**
 * Page categories and their colours: the Okabe–Ito palette (safe for the common colour-vision
 * deficiencies) as the demo's HTML report uses it, so a page looks the same in both.
 */
import { PAGE_PALETTE } from "@ivm/catalog";
// The demo report's page categories, shared rather than copied (apps/demo/src/snapshot.ts).
import { CATEGORIES as DEMO_CATEGORIES, categoryOf as demoCategoryOf } from "../../../demo/src/snapshot.js";

export const CATEGORIES: readonly string[] = DEMO_CATEGORIES;
export type Category = string;
export const categoryOf: (tag: string) => Category = demoCategoryOf;

/** The demo report's colours, from the one palette in @ivm/catalog. */
export const PALETTE: Readonly<Record<string, string>> = PAGE_PALETTE;
