import type { Options } from "tsup";

/** Shared tsup settings: ESM only, declarations, one entry per public subpath. */
export function packageConfig(entry: Record<string, string>): Options {
  return {
    entry,
    format: ["esm"],
    dts: true,
    sourcemap: true,
    clean: true,
    target: "node20",
    platform: "node",
    splitting: true,
    treeshake: true,
  };
}
