import { defineConfig } from "vite";

// base "./": every asset URL is relative, so dist/ works from any static host or sub-path.
export default defineConfig({
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: false },
  // The model runs in a module worker (src/model/record-worker.ts).
  worker: { format: "es" },
  server: { host: "127.0.0.1", strictPort: false },
  preview: { host: "127.0.0.1" },
});
