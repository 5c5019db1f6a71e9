import { STRATEGIES, type StrategyEntry } from "@ivm/catalog";
import type { Era } from "@ivm/hypercall";

/** One strategy in one era: what a campaign input runs against. */
export interface Target {
  readonly strategy: string;
  readonly era: Era;
}

/** Every (strategy, era) pair the catalog declares, in catalog order. */
export const ALL_TARGETS: readonly Target[] = STRATEGIES.flatMap((s) =>
  s.eras.map((era) => ({ strategy: s.name, era })),
);

export function entryFor(name: string): StrategyEntry {
  const e = STRATEGIES.find((s) => s.name === name);
  if (e === undefined)
    throw new Error(`unknown strategy "${name}" (try ${STRATEGIES.map((s) => s.name).join(", ")})`);
  return e;
}

/** The targets a `--strategy` / `--era` pair selects ("all" for every one). */
export function selectTargets(strategy: string, era: string): Target[] {
  const out = ALL_TARGETS.filter(
    (t) => (strategy === "all" || t.strategy === strategy) && (era === "all" || t.era === era),
  );
  if (strategy !== "all") entryFor(strategy);
  if (out.length === 0) throw new Error(`no strategy "${strategy}" runs in the ${era} era`);
  return out;
}

export function targetName(t: Target): string {
  return `${t.strategy}/${t.era}`;
}
