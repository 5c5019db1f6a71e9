#!/usr/bin/env node
// `pnpm lab`: serve the lab on 127.0.0.1 and print its URL. `pnpm lab build`: write the static site to
// apps/lab/dist (relative paths: it works from any static host or a sub-path).
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build, createServer } from "vite";

const root = fileURLToPath(new URL("..", import.meta.url));
const args = process.argv.slice(2).filter((a) => a !== "--");
const command = args[0] && !args[0].startsWith("-") ? args[0] : "serve";
const rest = command === args[0] ? args.slice(1) : args;

function size(dir) {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? size(p) : statSync(p).size;
  }
  return total;
}

if (command === "build") {
  await build({ root, logLevel: "warn" });
  const dist = join(root, "dist");
  console.log(`wrote ${join(dist, "index.html")} (${(size(dist) / 1024).toFixed(0)} KiB in all)`);
} else if (command === "serve") {
  const portArg = rest.indexOf("--port");
  const port = portArg >= 0 ? Number(rest[portArg + 1]) : 5173;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`lab: --port needs a port number, got ${rest[portArg + 1]}`);
    process.exit(2);
  }
  const server = await createServer({ root, server: { host: "127.0.0.1", port }, logLevel: "warn" });
  await server.listen();
  const url = server.resolvedUrls?.local[0] ?? `http://127.0.0.1:${port}/`;
  console.log(`ivm-lab: ${url}  (Ctrl-C to stop)`);
} else {
  console.error(`lab: unknown command "${command}" (use "pnpm lab" to serve or "pnpm lab build")`);
  process.exit(2);
}
