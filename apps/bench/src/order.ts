import { STRATEGIES } from "@ivm/catalog";
import type { Era } from "@ivm/hypercall";
import type { UptimeLevel } from "@ivm/memory";

export const ERAS: readonly Era[] = ["address-bit", "pte-bit"];
export const UPTIMES: readonly UptimeLevel[] = ["none", "light", "moderate", "heavy"];

/** The position of a value in a fixed list (unknown values last): how sweeps order their cases. */
function orderOf(list: readonly string[], value: unknown): number {
  const i = list.indexOf(String(value));
  return i < 0 ? list.length : i;
}

const NAMES = STRATEGIES.map((s) => s.name);
export const strategyOrder = (name: unknown): number => orderOf(NAMES, name);
export const eraOrder = (era: unknown): number => orderOf(ERAS, era);
export const uptimeOrder = (uptime: unknown): number => orderOf(UPTIMES, uptime);
