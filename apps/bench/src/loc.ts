import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./paths.js";

/**
 * Lines of code in TypeScript source text: lines with something other than whitespace and comments.
 * Strings and template literals are skipped as a whole, so `//` or `/*` inside them is not a comment.
 */
export function countLoc(text: string): number {
  let count = 0;
  let inBlock = false;
  let quote: string | null = null; // a template literal may span lines; ' and " may not
  for (const line of text.split(/\r?\n/)) {
    let code = quote === "`";
    if (quote !== "`") quote = null;
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (inBlock) {
        if (c === "*" && line[i + 1] === "/") {
          inBlock = false;
          i++;
        }
      } else if (quote) {
        if (c === "\\") i++;
        else if (c === quote) quote = null;
      } else if (c === "/" && line[i + 1] === "/") {
        break;
      } else if (c === "/" && line[i + 1] === "*") {
        inBlock = true;
        i++;
      } else if (c === '"' || c === "'" || c === "`") {
        quote = c;
        code = true;
      } else if (c !== " " && c !== "\t") {
        code = true;
      }
    }
    if (code) count++;
  }
  return count;
}

function isTest(name: string): boolean {
  return /\.(test|spec)\.ts$/.test(name) || /\.test-d\.ts$/.test(name);
}

/** Every non-test .ts file below `dir`, skipping `test`/`__tests__` folders; sorted, relative paths. */
export function sourceFiles(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      if (entry.name !== "test" && entry.name !== "__tests__") out.push(...sourceFiles(dir, rel));
    } else if (entry.name.endsWith(".ts") && !isTest(entry.name)) {
      out.push(rel);
    }
  }
  return out.sort();
}

export interface LocCount {
  readonly files: number;
  readonly loc: number;
}

/** Lines of code of a directory of sources (non-blank, non-comment, tests excluded). */
export function directoryLoc(dir: string): LocCount {
  const files = sourceFiles(dir);
  const loc = files.reduce((sum, f) => sum + countLoc(readFileSync(join(dir, f), "utf8")), 0);
  return { files: files.length, loc };
}

/**
 * Lines of code of a workspace package (`@ivm/strategy-x` → packages/strategy-x/src), read from the
 * repository this app sits in, at run time.
 */
export function packageLoc(packageName: string, root: string = REPO_ROOT): LocCount {
  const dir = packageName.replace(/^@ivm\//, "");
  return directoryLoc(join(root, "packages", dir, "src"));
}
