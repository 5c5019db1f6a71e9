import { STRATEGIES, type StrategyEntry } from "@ivm/catalog";
import type { Era } from "@ivm/hypercall";
import { getProfile, type ProfileName } from "@ivm/kernel";

/**
 * One strategy in one era, optionally on one named kernel (then the era is that kernel's): what a
 * campaign input runs against. Without `kernel` the VM boots the era's representative kernel, hardened.
 */
export interface Target {
  readonly strategy: string;
  readonly era: Era;
  readonly kernel?: ProfileName;
  /** With `kernel`: run the kernel's own logic for the host values no kernel checks (not hardened). */
  readonly exact?: boolean;
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

/**
 * The targets a `--strategy` / `--era` pair selects ("all" for every one), or with `kernel` every
 * selected strategy written for that kernel (its package's declaration decides; the era must agree).
 */
export function selectTargets(strategy: string, era: string, kernel?: ProfileName, exact = false): Target[] {
  if (strategy !== "all") entryFor(strategy);
  if (kernel !== undefined) {
    const profile = getProfile(kernel);
    if (era !== "all" && era !== profile.era)
      throw new Error(`kernel ${kernel} runs in the ${profile.era} era, not ${era}`);
    const chosen = STRATEGIES.filter((s) => strategy === "all" || s.name === strategy);
    const out = chosen
      .filter((s) => s.unsupportedOn(profile) === null)
      .map((s) => ({ strategy: s.name, era: profile.era, kernel, ...(exact ? { exact } : {}) }));
    if (out.length === 0) throw new Error(chosen[0]!.unsupportedOn(profile)!);
    return out;
  }
  const out = ALL_TARGETS.filter(
    (t) => (strategy === "all" || t.strategy === strategy) && (era === "all" || t.era === era),
  );
  if (out.length === 0) throw new Error(`no strategy "${strategy}" runs in the ${era} era`);
  return out;
}

export function targetName(t: Target): string {
  return t.kernel !== undefined ? `${t.strategy}/${t.kernel}` : `${t.strategy}/${t.era}`;
}
