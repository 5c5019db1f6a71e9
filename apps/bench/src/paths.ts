import { fileURLToPath } from "node:url";

// Both the sources (src/*.ts under vitest) and the bundle (dist/*.js) sit one level below the app, so
// the same relative URLs work from either.

/** apps/bench/, with a trailing slash. */
export const APP_DIR: string = fileURLToPath(new URL("../", import.meta.url));

/** The monorepo root: the strategy packages' sources are read from here at run time. */
export const REPO_ROOT: string = fileURLToPath(new URL("../../../", import.meta.url));

/** Where runs append their JSON lines unless --out says otherwise. */
export function defaultOutFile(bench: string): string {
  return `${APP_DIR}results/${bench}.jsonl`;
}

// Where the fragmentation chart goes: docs/bench/ at the repository root, whose SVG files Biome leaves
// alone (a generated chart is not source to lint).
export const CHART_FILE: string = `${REPO_ROOT}docs/bench/fragmentation.svg`;
