import Table from "cli-table3";

/** A table before it is printed: the terminal, Markdown and the README all render the same rows. */
export interface TableData {
  readonly title: string;
  readonly head: readonly string[];
  readonly rows: readonly (readonly (string | number)[])[];
  /** Lines printed under the table (units, what was measured). */
  readonly notes?: readonly string[];
}

export function toTerminal(t: TableData): string {
  const table = new Table({ head: [...t.head], style: { head: [], border: [] } });
  for (const row of t.rows) table.push(row.map(String));
  const notes = t.notes?.length ? `\n${t.notes.join("\n")}` : "";
  return `${t.title}\n${table.toString()}${notes}`;
}

function cell(v: string | number): string {
  return String(v).replaceAll("|", "\\|").replaceAll("\n", " ");
}

export function toMarkdown(t: TableData, heading = "###"): string {
  const lines = [
    `${heading} ${t.title}`,
    "",
    `| ${t.head.map(cell).join(" | ")} |`,
    `|${t.head.map((_, i) => (i === 0 ? "---" : "--:")).join("|")}|`,
    ...t.rows.map((r) => `| ${r.map(cell).join(" | ")} |`),
  ];
  if (t.notes?.length) lines.push("", ...t.notes);
  return lines.join("\n");
}

/** Rounds for display: integers as they are, other numbers to `digits` significant decimals. */
export function num(value: number | null | undefined, digits = 1): string {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}
