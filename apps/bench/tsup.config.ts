import { defineConfig } from "tsup";

export default defineConfig({
  // The worker is its own entry: tinypool loads dist/worker.js beside dist/cli.js.
  entry: { cli: "src/cli.ts", worker: "src/worker.ts" },
  format: ["esm"],
  target: "node20",
  platform: "node",
  clean: true,
  sourcemap: true,
  splitting: true,
  banner: { js: "#!/usr/bin/env node" },
});
