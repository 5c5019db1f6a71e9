import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL(".", import.meta.url));
const dirs = ["packages", "apps"].flatMap((group) =>
  readdirSync(`${root}${group}`, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(`${root}${group}/${d.name}/package.json`))
    .map((d) => `${group}/${d.name}`),
);

// Tests run against sources: `@ivm/x` and `@ivm/x/sub` resolve to packages/x/src, so no build is needed first.
const alias = [
  // Two apps are imported by other apps: catalog (the strategy list) and fuzz (bench's throughput case).
  // They live under apps/, not packages/.
  { find: /^@ivm\/(catalog|fuzz)$/, replacement: `${root}apps/$1/src/index.ts` },
  { find: /^@ivm\/catalog\/cli$/, replacement: `${root}apps/catalog/src/cli.ts` },
  { find: /^@ivm\/([a-z-]+)\/([a-z-]+)$/, replacement: `${root}packages/$1/src/$2/index.ts` },
  { find: /^@ivm\/([a-z-]+)$/, replacement: `${root}packages/$1/src/index.ts` },
];

export default defineConfig({
  resolve: { alias },
  test: {
    // The model's end-to-end and 100k-packet tests are CPU-bound; on a loaded 2-core machine they can
    // pass 5 s. A timeout is not an assertion: give them room so a busy CI box does not fail them.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      ...dirs.map((dir) => ({
        extends: true,
        test: {
          name: dir.split("/")[1]!,
          include: [`${dir}/{src,test}/**/*.test.ts`],
        },
      })),
      // The release rehearsal's own helpers (README block extraction).
      { extends: true, test: { name: "release", include: ["release/*.test.ts"] } },
    ],
  },
});
