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

/** Shared tsup settings for the apps: ESM executables for Node 20 with a shebang, no declarations. */
export function appConfig(entry: Record<string, string>): Options {
  return {
    entry,
    format: ["esm"],
    target: "node20",
    platform: "node",
    clean: true,
    sourcemap: true,
    splitting: true,
    banner: { js: "#!/usr/bin/env node" },
  };
}
