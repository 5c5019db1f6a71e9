import { defineConfig } from "tsup";

// Two entries: the CLI, and the worker module tinypool loads in each thread (it must be its own file).
export default defineConfig({
  entry: { cli: "src/cli.ts", worker: "src/worker.ts" },
  format: ["esm"],
  target: "node20",
  platform: "node",
  clean: true,
  sourcemap: true,
  banner: { js: "#!/usr/bin/env node" },
});
