import { readFileSync, writeFileSync } from "node:fs";

const start = (name: string) => `<!-- bench:${name}:start -->`;
const end = (name: string) => `<!-- bench:${name}:end -->`;

/**
 * Replaces what stands between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`; appends the
 * pair with the content when the text has no such section yet.
 */
export function replaceSection(text: string, name: string, content: string): string {
  const block = `${start(name)}\n${content.trim()}\n${end(name)}`;
  const from = text.indexOf(start(name));
  const to = text.indexOf(end(name));
  if (from < 0 || to < from) return `${text.trimEnd()}\n\n${block}\n`;
  return text.slice(0, from) + block + text.slice(to + end(name).length);
}

export function updateReadme(file: string, sections: Readonly<Record<string, string>>): void {
  let text = readFileSync(file, "utf8");
  for (const [name, content] of Object.entries(sections)) text = replaceSection(text, name, content);
  writeFileSync(file, text);
}
