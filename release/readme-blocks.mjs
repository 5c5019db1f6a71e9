// Extracts the TypeScript examples of a package README, per the convention in the root README:
//   ```ts          a whole program: type-checked, then run with node
//   ```ts fragment type-checked only (it declares what it assumes)
//   ```ts vitest   a vitest test file, run in the consumer
// and what each example imports, so the release rehearsal installs only what the examples need.

/** @typedef {"program" | "fragment" | "vitest"} BlockKind */
/**
 * @typedef {{ kind: BlockKind, code: string, line: number, heading: string, imports: string[] }} ReadmeBlock
 */

const KINDS = { "": "program", fragment: "fragment", vitest: "vitest" };

/**
 * Every ```ts / ```typescript block of a Markdown document, in order. A modifier other than `fragment` or
 * `vitest` is an error, so a misspelt block is never skipped silently.
 * @param {string} markdown
 * @returns {ReadmeBlock[]}
 */
export function extractBlocks(markdown) {
  const lines = markdown.split(/\r?\n/);
  /** @type {ReadmeBlock[]} */
  const blocks = [];
  let heading = "";
  let open = null; // { fence, lang, modifier, line, body: string[] }
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i];
    if (open) {
      const t = text.trim();
      if (t.length >= open.fence.length && t === open.fence[0].repeat(t.length)) {
        if (open.lang) {
          const code = `${open.body.join("\n")}\n`;
          blocks.push({
            kind: open.kind,
            code,
            line: open.line,
            heading: open.heading,
            imports: importsOf(code),
          });
        }
        open = null;
      } else {
        open.body.push(text);
      }
      continue;
    }
    const fence = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)\s*(.*)$/.exec(text);
    if (fence) {
      const [, marks, info, rest] = fence;
      const lang = info === "ts" || info === "typescript";
      const modifier = rest.trim();
      if (lang && !(modifier in KINDS)) {
        throw new Error(
          `line ${i + 1}: unknown block kind "${info} ${modifier}" (use ts, ts fragment or ts vitest)`,
        );
      }
      open = { fence: marks, lang, kind: lang ? KINDS[modifier] : undefined, line: i + 1, heading, body: [] };
      continue;
    }
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (h) heading = h[1];
  }
  if (open?.lang) throw new Error(`line ${open.line}: unterminated code block`);
  return blocks;
}

/**
 * The module specifiers a block imports (static imports and re-exports, `import type` included).
 * @param {string} code
 * @returns {string[]}
 */
export function importsOf(code) {
  const found = new Set();
  const re = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/g;
  for (const m of code.matchAll(re)) found.add(m[1]);
  return [...found];
}

/**
 * The npm package a specifier belongs to (`@ivm/x/testing` → `@ivm/x`), or null for a relative or node: one.
 * @param {string} specifier
 * @returns {string | null}
 */
export function packageOf(specifier) {
  if (specifier.startsWith(".") || specifier.startsWith("node:") || specifier.startsWith("/")) return null;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

/**
 * Packages a README tells its reader to install (`npm i[nstall] [-D] a b`, `pnpm add a`), versions stripped.
 * @param {string} markdown
 * @returns {string[]}
 */
export function installedBy(markdown) {
  const found = new Set();
  const re = /\b(?:npm\s+(?:i|install|add)|pnpm\s+(?:add|i|install)|yarn\s+add)\s+([^\n`]*)/g;
  for (const m of markdown.matchAll(re)) {
    for (const word of m[1].split(/\s+/)) {
      if (!word || word.startsWith("-")) continue;
      if (/[#;&|]/.test(word)) break;
      const name = packageOf(word.replace(/(.)@[^/]*$/, "$1"));
      if (name) found.add(name);
    }
  }
  return [...found];
}
