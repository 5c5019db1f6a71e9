import { PROFILE_NAMES } from "./names.js";
import { type KernelProfile, profiles } from "./profile.js";
import type { Sourced } from "./sourced.js";

/** The layer sections of a profile, in the order the table shows them. */
const SECTIONS = ["hypercall", "swiotlb", "vmbus", "netvsc"] as const;

function cell(s: Sourced<unknown>): string {
  return `\`${String(s.value)}\` ${s.commit}`;
}

function behaviourKeys(section: (typeof SECTIONS)[number]): string[] {
  return Object.keys(profiles["5.17"][section]);
}

function sourcedOf(p: KernelProfile, section: (typeof SECTIONS)[number], key: string): Sourced<unknown> {
  return (p[section] as unknown as Record<string, Sourced<unknown>>)[key]!;
}

/**
 * The profile table as Markdown: one row per behaviour (`section.behaviour`), one column per profile,
 * each cell the value and the commit that introduced it; then every commit with its subject and the
 * first release that shipped it in the profile that has it. The package README embeds this output.
 */
export function profileTable(): string {
  const lines: string[] = [];
  lines.push(`| behaviour | ${PROFILE_NAMES.join(" | ")} |`);
  lines.push(`|---|${PROFILE_NAMES.map(() => "---").join("|")}|`);
  const commits = new Map<string, { title: string; since: Set<string> }>();
  for (const section of SECTIONS) {
    for (const key of behaviourKeys(section)) {
      const cells = PROFILE_NAMES.map((name) => {
        const s = sourcedOf(profiles[name], section, key);
        const entry = commits.get(s.commit) ?? { title: s.title, since: new Set<string>() };
        entry.since.add(s.since);
        commits.set(s.commit, entry);
        return cell(s);
      });
      lines.push(`| ${section}.${key} | ${cells.join(" | ")} |`);
    }
  }
  lines.push("");
  lines.push("| commit | subject | first release (in these profiles) |");
  lines.push("|---|---|---|");
  for (const [commit, { title, since }] of [...commits].sort((a, b) => a[0].localeCompare(b[0]))) {
    lines.push(`| ${commit} | ${title.replaceAll("|", "\\|")} | ${[...since].join(", ")} |`);
  }
  return lines.join("\n");
}
