import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../../..");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return /\.(ts|mts|js|mjs)$/.test(e.name) ? [p] : [];
  });
}

// A static import, a re-export, a dynamic import or a require of a Node built-in (node:fs, bare "fs" too).
const BUILTINS = [
  "fs",
  "path",
  "os",
  "url",
  "crypto",
  "util",
  "child_process",
  "worker_threads",
  "process",
  "buffer",
  "events",
  "stream",
  "http",
  "net",
];
const NODE_IMPORT = new RegExp(
  `(?:from\\s*|import\\s*\\(\\s*|require\\s*\\(\\s*|import\\s+)["'](?:node:[^"']+|(?:${BUILTINS.join("|")})(?:/[^"']*)?)["']`,
);

describe("library packages are platform neutral", () => {
  it("no packages/*/src file imports a Node built-in (the lab bundles them for the browser)", () => {
    const packages = readdirSync(join(ROOT, "packages"), { withFileTypes: true }).filter((d) =>
      d.isDirectory(),
    );
    const offenders: string[] = [];
    let files = 0;
    for (const pkg of packages) {
      let list: string[] = [];
      try {
        list = sources(join(ROOT, "packages", pkg.name, "src"));
      } catch {
        continue;
      }
      for (const file of list) {
        files++;
        readFileSync(file, "utf8")
          .split("\n")
          .forEach((line, i) => {
            if (NODE_IMPORT.test(line)) offenders.push(`${relative(ROOT, file)}:${i + 1}: ${line.trim()}`);
          });
      }
    }
    expect(files).toBeGreaterThan(50);
    expect(offenders).toEqual([]);
  });

  it("the check itself catches each form of import", () => {
    for (const line of [
      'import { readFileSync } from "node:fs";',
      "import fs from 'fs';",
      'export * from "node:path";',
      'const m = await import("node:crypto");',
      'const x = require("os");',
      'import "node:process";',
    ])
      expect(NODE_IMPORT.test(line), line).toBe(true);
    expect(NODE_IMPORT.test('import { x } from "./fs.js";')).toBe(false);
    expect(NODE_IMPORT.test('import { Vm } from "@ivm/vm";')).toBe(false);
  });
});
