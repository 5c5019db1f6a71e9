// The lab's module graph, read from the sources: every production module of packages/* and apps/*
// (tests excluded), its imports, resolved to files. Written in a few lines rather than taken from
// dependency-cruiser because the rules are few and the resolution is the workspace's own: `@ivm/x`
// is packages/x/src/index.ts and `@ivm/x/sub` is packages/x/src/sub/index.ts (as vitest.config.ts maps them).

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT: string = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export interface ModuleImport {
  /** The specifier as written. */
  readonly spec: string;
  /** The file it resolves to (repo-relative), or undefined for a package outside the workspace. */
  readonly target: string | undefined;
  /** `import type` / `export type`: erased at run time. */
  readonly typeOnly: boolean;
}

const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^"';]*?\s+from\s+)?["']([^"']+)["']/gm;

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) walk(full, out);
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts")) out.push(full);
  }
  return out;
}

/** Production modules: src/ of every package and app, without tests. */
export function productionModules(): string[] {
  const files: string[] = [];
  for (const group of ["packages", "apps"]) {
    for (const name of readdirSync(join(ROOT, group))) {
      const src = join(ROOT, group, name, "src");
      if (existsSync(src)) walk(src, files);
    }
  }
  return files.map((f) => relative(ROOT, f)).sort();
}

function resolveSpec(from: string, spec: string): string | undefined {
  if (spec.startsWith(".")) return relative(ROOT, resolve(ROOT, dirname(from), spec.replace(/\.js$/, ".ts")));
  const m = /^@ivm\/([a-z-]+)(?:\/([a-z-]+))?$/.exec(spec);
  if (m === null) return undefined;
  const group = existsSync(join(ROOT, "packages", m[1]!)) ? "packages" : "apps";
  return join(group, m[1]!, "src", m[2] === undefined ? "index.ts" : `${m[2]}/index.ts`);
}

export function importsOf(file: string): ModuleImport[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const out: ModuleImport[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[3]!;
    out.push({ spec, target: resolveSpec(file, spec), typeOnly: m[2] !== undefined });
  }
  return out;
}

/** The package (folder under packages/ or apps/) a repo-relative file belongs to. */
export function packageOf(file: string): string {
  return file.split("/").slice(0, 2).join("/");
}

/**
 * Strongly connected components with more than one module (or a module importing itself): the
 * import cycles. Tarjan's algorithm over the given edges.
 */
export function cycles(edges: ReadonlyMap<string, readonly string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (edges.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of edges.keys()) if (!idx.has(v)) visit(v);
  return found;
}

/** The module graph; `runtimeOnly` drops `import type` edges (erased by the compiler). */
export function moduleGraph(runtimeOnly: boolean): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of productionModules()) {
    g.set(
      f,
      importsOf(f)
        .filter((i) => i.target !== undefined && !(runtimeOnly && i.typeOnly))
        .map((i) => i.target!),
    );
  }
  return g;
}
