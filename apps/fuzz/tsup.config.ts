import { defineConfig } from "tsup";
import { appConfig } from "../../tsup.config.base.ts";

// The worker is its own entry: tinypool loads dist/worker.js beside dist/cli.js in each thread. The
// campaign library (dist/index.js, with declarations) is what apps/bench imports for its throughput case.
export default defineConfig({
  ...appConfig({ cli: "src/cli.ts", worker: "src/worker.ts", index: "src/index.ts" }),
  dts: { entry: { index: "src/index.ts" } },
});
