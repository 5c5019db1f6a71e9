import { getProfile, isProfileName } from "@ivm/kernel";
import { isFaultName } from "@ivm/vm";
import { type Action, fromJson, type SessionInput } from "./actions.js";
import { ALL_TARGETS, entryFor, targetName } from "./targets.js";

/** Every action kind a session input may hold (checked against the Action union below). */
const ACTION_KINDS = [
  "traffic",
  "chan-mutate",
  "chan-raw",
  "chan-forge",
  "pkt-mutate",
  "pkt-raw",
  "ring",
  "rewrite",
  "forge-completion",
  "send-table",
  "knobs",
  "rescind",
  "subchannel",
  "honest",
  "lifecycle",
  "remove-fault",
] as const satisfies readonly Action["k"][];
// A new action kind that is not listed above fails to compile here.
const _everyKind: Exclude<Action["k"], (typeof ACTION_KINDS)[number]> extends never ? true : never = true;
void _everyKind;

const isInt = (v: unknown, min: number, max: number): boolean =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;

/**
 * Reads a `--replay` input: the JSON a failing campaign printed, or `@file` holding it. Checks the
 * session's machine and the action kinds so that a mistyped reproducer is a usage error (exit 2), not
 * a "violation" of a guest that never booted. Throws an Error naming what is wrong.
 */
export function parseSessionInput(text: string): SessionInput {
  let value: unknown;
  try {
    value = fromJson<unknown>(text);
  } catch (e) {
    throw new Error(`not JSON (${(e as Error).message})`);
  }
  const s = value as Partial<SessionInput> | null;
  if (typeof s !== "object" || s === null || Array.isArray(s)) throw new Error("not a session input object");
  if (s.kernel !== undefined) {
    if (typeof s.kernel !== "string" || !isProfileName(s.kernel))
      throw new Error(`unknown kernel ${JSON.stringify(s.kernel)}`);
    const profile = getProfile(s.kernel);
    if (s.era !== profile.era)
      throw new Error(`kernel ${s.kernel} runs in the ${profile.era} era, not ${String(s.era)}`);
    const why = entryFor(String(s.strategy)).unsupportedOn(profile);
    if (why !== null) throw new Error(why);
  } else if (!ALL_TARGETS.some((t) => t.strategy === s.strategy && t.era === s.era))
    throw new Error(
      `strategy/era ${String(s.strategy)}/${String(s.era)} is not one of ${ALL_TARGETS.map(targetName).join(", ")}`,
    );
  for (const [field, min, max] of [
    ["memoryMiB", 32, 4096],
    ["rxSections", 1, 18811],
    ["txSections", 1, 2560],
    ["ringPages", 1, 512],
  ] as const)
    if (!isInt(s[field], min, max)) throw new Error(`${field} must be an integer from ${min} to ${max}`);
  if (s.exact !== undefined && (typeof s.exact !== "boolean" || s.kernel === undefined))
    throw new Error("exact must be a boolean, and only with a kernel");
  if (s.fault !== undefined && (typeof s.fault !== "string" || !isFaultName(s.fault)))
    throw new Error(`unknown fault ${JSON.stringify(s.fault)}`);
  if (!Array.isArray(s.actions)) throw new Error("actions must be an array");
  s.actions.forEach((a: unknown, i) => {
    const k = (a as { k?: unknown } | null)?.k;
    if (!(ACTION_KINDS as readonly unknown[]).includes(k))
      throw new Error(
        `action ${i} has unknown kind ${JSON.stringify(k)} (one of ${ACTION_KINDS.join(", ")})`,
      );
  });
  return s as SessionInput;
}
