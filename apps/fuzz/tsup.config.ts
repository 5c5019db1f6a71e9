import { defineConfig } from "tsup";
import { appConfig } from "../../tsup.config.base.ts";

// The worker is its own entry: tinypool loads dist/worker.js beside dist/cli.js in each thread.
export default defineConfig(appConfig({ cli: "src/cli.ts", worker: "src/worker.ts" }));
