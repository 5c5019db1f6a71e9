/**
 * The colour of each page category in the demo's report and the web lab: the Okabe–Ito palette
 * (distinguishable with the common colour-vision deficiencies), one place so a page looks the same in
 * both. Keys are the demo's page categories (apps/demo/src/snapshot.ts); unknown ones draw as kernel.
 */
export const PAGE_PALETTE: Readonly<Record<string, string>> = {
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
