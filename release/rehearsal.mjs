#!/usr/bin/env node
// Release rehearsal: publish every public package to a local Verdaccio with the project's own release
// command, then install them from it into a fresh npm consumer outside the workspace and check every
// README example there, as a new user would meet them. Exits non-zero on any failure; the registry is
// stopped whatever happens.
//
//   pnpm rehearsal             (CI runs it from .ci/run)
//   pnpm rehearsal --keep      keep the temporary directory (registry storage, consumer) to inspect
//   pnpm rehearsal --debug     print the stack of a failure
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { extractBlocks, installedBy, packageOf } from "./readme-blocks.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const root = resolve(here, "..");
const started = Date.now();
const keep = process.argv.includes("--keep");
const work = mkdtempSync(join(tmpdir(), "ivm-rehearsal-"));
const log = (line = "") => process.stdout.write(`${line}\n`);
const seconds = (since) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** Runs a command to completion; throws with its output on failure. */
function run(cmd, args, { cwd = root, env = process.env, quiet = true, timeout = 600_000 } = {}) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout, maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) {
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.error?.message ?? `exit ${r.status}`})\n${out}`);
  }
  if (!quiet) process.stdout.write(r.stdout);
  return r.stdout;
}

/** fetch, retried: Verdaccio closes idle keep-alive sockets, which undici may reuse once. */
async function get(url, init) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(url, init);
    } catch (err) {
      if (attempt === 3) throw err;
    }
  }
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** The packages `changeset publish` publishes: every non-private package under packages/. */
function publicPackages() {
  return readdirSync(join(root, "packages"), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, "packages", d.name, "package.json")))
    .map((d) => {
      const dir = join(root, "packages", d.name);
      const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      return { dir, folder: d.name, manifest };
    })
    .filter((p) => !p.manifest.private)
    .sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));
}

let registry; // the Verdaccio child process
function stopRegistry() {
  if (registry && registry.exitCode === null) registry.kill("SIGTERM");
}
process.on("exit", () => {
  stopRegistry();
  if (!keep) rmSync(work, { recursive: true, force: true });
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

async function startRegistry() {
  const bin = join(here, "registry/node_modules/verdaccio/bin/verdaccio");
  if (!existsSync(bin)) {
    log("installing Verdaccio (release/registry, npm ci)");
    run("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: join(here, "registry") });
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  // No uplinks: the local registry serves only what the rehearsal publishes, and proxies nothing.
  writeFileSync(
    join(work, "verdaccio.yaml"),
    [
      `storage: ${join(work, "storage")}`,
      "auth:",
      "  htpasswd:",
      `    file: ${join(work, "htpasswd")}`,
      "    max_users: 1",
      "uplinks: {}",
      "packages:",
      "  '**':",
      "    access: $all",
      "    publish: $authenticated",
      "log: { type: stdout, format: pretty, level: warn }",
      "",
    ].join("\n"),
  );
  registry = spawn(
    process.execPath,
    [bin, "--config", join(work, "verdaccio.yaml"), "--listen", `127.0.0.1:${port}`],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  registry.stdout.on("data", (d) => (output += d));
  registry.stderr.on("data", (d) => (output += d));
  for (let i = 0; i < 150; i++) {
    if (registry.exitCode !== null) throw new Error(`Verdaccio exited (${registry.exitCode})\n${output}`);
    try {
      if ((await fetch(`${url}-/ping`)).ok) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
    if (i === 149) throw new Error(`Verdaccio did not answer on ${url}\n${output}`);
  }
  // One throw-away user; its token is what npm/pnpm publish with.
  const res = await get(`${url}-/user/org.couchdb.user:rehearsal`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "rehearsal", password: "rehearsal-only" }),
  });
  const { token } = await res.json();
  if (!token) throw new Error(`Verdaccio gave no token (${res.status})`);
  return { url, port, token };
}

async function main() {
  const packages = publicPackages();
  if (packages.length === 0) throw new Error("no public package under packages/");

  // Everything README-side is read before any work, so a malformed README fails in a second.
  const examples = [];
  for (const p of packages) {
    const readme = join(p.dir, "README.md");
    if (!existsSync(readme)) continue;
    const md = readFileSync(readme, "utf8");
    const { manifest } = p;
    const allowed = new Set([
      manifest.name,
      ...Object.keys(manifest.dependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
      ...installedBy(md),
    ]);
    extractBlocks(md).forEach((b, i) => {
      const deps = [...new Set(b.imports.map(packageOf).filter((x) => x !== null))];
      const stray = deps.filter((d) => !allowed.has(d));
      if (stray.length > 0) {
        throw new Error(
          `packages/${p.folder}/README.md:${b.line}: imports ${stray.join(", ")}, which ${manifest.name} ` +
            "neither depends on nor tells its reader to install",
        );
      }
      const base = `${p.folder}-${i + 1}`;
      examples.push({
        ...b,
        pkg: manifest.name,
        folder: p.folder,
        deps,
        file: b.kind === "vitest" ? `${base}.test.ts` : `${base}.ts`,
      });
    });
  }
  if (examples.length === 0) throw new Error("no ```ts example in any package README");

  const reg = await startRegistry();
  log(`registry: Verdaccio on ${reg.url} (storage in ${work})`);
  if (!/^http:\/\/127\.0\.0\.1:\d+\/$/.test(reg.url)) throw new Error(`refusing to publish to ${reg.url}`);

  // Publish with the project's release command, every npm setting pointed at the local registry.
  const npmrc = join(work, "publish.npmrc");
  writeFileSync(
    npmrc,
    `registry=${reg.url}\n@ivm:registry=${reg.url}\n//127.0.0.1:${reg.port}/:_authToken=${reg.token}\n`,
  );
  const publishEnv = {
    ...process.env,
    TURBO_TELEMETRY_DISABLED: "1",
    DO_NOT_TRACK: "1",
    NPM_CONFIG_USERCONFIG: npmrc,
    npm_config_userconfig: npmrc,
    npm_config_registry: reg.url,
    "npm_config_@ivm:registry": reg.url,
  };
  let t = Date.now();
  // --no-git-tag: a rehearsal leaves the repository's tags alone (the real release tags).
  run("pnpm", ["release", "--no-git-tag"], { env: publishEnv });
  const published = [];
  const integrity = new Map();
  for (const p of packages) {
    const r = await get(`${reg.url}${p.manifest.name.replace("/", "%2f")}`);
    const doc = r.ok ? await r.json() : null;
    if (!doc?.versions?.[p.manifest.version]) {
      throw new Error(
        `${p.manifest.name}@${p.manifest.version} is not in the local registry after \`pnpm release\``,
      );
    }
    const { dist } = doc.versions[p.manifest.version];
    integrity.set(p.manifest.name, dist.integrity);
    // What the tarball really holds: a user gets the licence, the changelog and the README with the code.
    const tgz = join(work, `${p.folder}.tgz`);
    writeFileSync(tgz, Buffer.from(await (await get(dist.tarball)).arrayBuffer()));
    const entries = run("tar", ["-tzf", tgz]).split("\n");
    // A package never versioned yet (0.0.0, e.g. one just split off) has no changelog until its first release.
    const required = ["LICENSE", "README.md", "package.json"];
    if (p.manifest.version !== "0.0.0") required.push("CHANGELOG.md");
    const missing = required.filter((f) => !entries.includes(`package/${f}`));
    if (missing.length > 0) throw new Error(`${p.manifest.name}'s tarball lacks ${missing.join(", ")}`);
    published.push(`${p.manifest.name}@${p.manifest.version} (${entries.filter(Boolean).length} files)`);
  }
  log(
    `published ${published.length} packages with \`pnpm release\` in ${seconds(t)} (each tarball checked for LICENSE, README.md and, once versioned, CHANGELOG.md):`,
  );
  for (const name of published) log(`  ${name}`);

  // The consumer: a fresh npm project outside the workspace; only @ivm comes from the local registry.
  const consumer = join(work, "consumer");
  const versions = new Map(packages.map((p) => [p.manifest.name, p.manifest.version]));
  const needed = new Set(examples.flatMap((e) => e.deps));
  const hasVitest = examples.some((e) => e.kind === "vitest");
  const dependencies = {};
  for (const name of [...needed].sort()) {
    if (name === "vitest") continue;
    dependencies[name] = versions.get(name) ?? "latest";
  }
  const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const devDependencies = {
    typescript: rootManifest.devDependencies.typescript,
    "@types/node": rootManifest.devDependencies["@types/node"],
    ...(hasVitest || needed.has("vitest") ? { vitest: rootManifest.devDependencies.vitest } : {}),
  };
  run("mkdir", ["-p", join(consumer, "examples")]);
  writeFileSync(
    join(consumer, "package.json"),
    `${JSON.stringify({ name: "ivm-consumer", private: true, type: "module", dependencies, devDependencies }, null, 2)}\n`,
  );
  writeFileSync(join(consumer, ".npmrc"), `@ivm:registry=${reg.url}\n`);
  writeFileSync(
    join(consumer, "tsconfig.json"),
    `${JSON.stringify(
      {
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          moduleDetection: "force", // each example compiles alone, even one without imports
          types: ["node"],
          outDir: "dist",
          rootDir: "examples",
          skipLibCheck: false,
        },
        include: ["examples"],
      },
      null,
      2,
    )}\n`,
  );
  for (const e of examples) writeFileSync(join(consumer, "examples", e.file), e.code);
  t = Date.now();
  const consumerEnv = { ...process.env };
  for (const k of Object.keys(consumerEnv)) if (/^npm_config_/i.test(k)) delete consumerEnv[k];
  run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: consumer, env: consumerEnv });
  log(`consumer (${consumer}): npm installed ${Object.keys(dependencies).join(", ")} in ${seconds(t)}`);

  // What npm installed is exactly what the rehearsal published (same tarball integrity).
  const lock = JSON.parse(readFileSync(join(consumer, "package-lock.json"), "utf8"));
  for (const [path, entry] of Object.entries(lock.packages ?? {})) {
    const name = /node_modules\/(@ivm\/[^/]+)$/.exec(path)?.[1];
    if (name && entry.integrity !== integrity.get(name)) {
      throw new Error(`${path}@${entry.version} is not the tarball published to the local registry`);
    }
  }

  // One type-check of every example, NodeNext strict.
  t = Date.now();
  const tsc = spawnSync(
    process.execPath,
    [join(consumer, "node_modules/typescript/bin/tsc"), "-p", consumer],
    {
      cwd: consumer,
      encoding: "utf8",
    },
  );
  const diagnostics = `${tsc.stdout}${tsc.stderr}`;
  const results = examples.map((e) => {
    const errs = diagnostics.split("\n").filter((l) => l.startsWith(`examples/${e.file}(`));
    return { e, checked: errs.length === 0, errs, ran: "—", ok: errs.length === 0 };
  });
  if (tsc.status !== 0 && results.every((r) => r.checked)) throw new Error(`tsc failed:\n${diagnostics}`);
  log(`type-checked ${examples.length} README examples in ${seconds(t)}`);

  // Whole programs run with node; vitest files under vitest.
  for (const r of results) {
    if (!r.checked || r.e.kind === "fragment") continue;
    const t0 = Date.now();
    const p =
      r.e.kind === "program"
        ? spawnSync(process.execPath, [join("dist", r.e.file.replace(/\.ts$/, ".js"))], {
            cwd: consumer,
            encoding: "utf8",
            timeout: 60_000,
          })
        : spawnSync(
            process.execPath,
            [join(consumer, "node_modules/vitest/vitest.mjs"), "run", "--dir", "examples", r.e.file],
            {
              cwd: consumer,
              encoding: "utf8",
              timeout: 240_000,
              env: { ...consumerEnv, CI: "1", NO_COLOR: "1" },
            },
          );
    const out = `${p.stdout}${p.stderr}`;
    r.ok = p.status === 0;
    if (r.e.kind === "vitest") {
      const tests = /Tests\s+(.*)/.exec(out);
      r.ran = `${r.ok ? "passed" : "FAILED"} under vitest (${tests ? tests[1].trim() : "?"}, ${seconds(t0)})`;
    } else {
      r.ran = `${r.ok ? "ran" : "FAILED"} with node (${seconds(t0)})`;
    }
    if (!r.ok) r.errs = out.trim().split("\n").slice(-25);
    else if (r.e.kind === "program") r.output = p.stdout.trim().split("\n").filter(Boolean).slice(0, 4);
  }

  log("");
  log("README examples (package, line, section, kind: type-check, run):");
  for (const r of results) {
    const where = `${r.e.pkg} README:${r.e.line} "${r.e.heading}"`;
    const kind = r.e.kind === "program" ? "program" : r.e.kind;
    const run = r.e.kind === "fragment" ? "type-check only" : r.checked ? r.ran : "not run";
    log(`  ${r.ok ? "ok  " : "FAIL"} ${where} [${kind}]: ${r.checked ? "checked" : "TYPE ERRORS"}, ${run}`);
    if (!r.ok) for (const l of r.errs) log(`         ${l}`);
    for (const l of r.output ?? []) log(`         > ${l.length > 150 ? `${l.slice(0, 150)}…` : l}`);
  }
  const failed = results.filter((r) => !r.ok).length;
  const programs = results.filter((r) => r.e.kind === "program").length;
  const tests = results.filter((r) => r.e.kind === "vitest").length;
  log("");
  log(
    `rehearsal: ${published.length} packages published, ${examples.length} examples type-checked ` +
      `(${programs} programs run, ${tests} vitest files), ${failed} failed, in ${seconds(started)}`,
  );
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => {
    stopRegistry();
    process.exit(code);
  },
  (err) => {
    log(`rehearsal failed: ${err instanceof Error ? err.message : String(err)}`);
    if (err?.cause) log(`  cause: ${err.cause}`);
    if (process.argv.includes("--debug")) log(err?.stack);
    stopRegistry();
    process.exit(1);
  },
);
