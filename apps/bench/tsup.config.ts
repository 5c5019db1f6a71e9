import { defineConfig } from "tsup";
import { appConfig } from "../../tsup.config.base.ts";

// The workers are their own entries: tinypool loads dist/worker.js and dist/speed-worker.js beside dist/cli.js.
export default defineConfig(
  appConfig({ cli: "src/cli.ts", worker: "src/worker.ts", "speed-worker": "src/speed-worker.ts" }),
);
