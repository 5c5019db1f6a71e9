// The package graph is the trust boundary: these rules are checked on the sources, so a stray import
// fails the suite instead of contradicting a README.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cycles, importsOf, moduleGraph, packageOf, productionModules, ROOT } from "./module-graph.js";

function manifestDeps(pkg: string): string[] {
  const j = JSON.parse(readFileSync(join(ROOT, pkg, "package.json"), "utf8")) as Record<string, unknown>;
  const names = new Set<string>();
  for (const field of ["dependencies", "devDependencies", "peerDependencies", "optionalDependencies"]) {
    for (const n of Object.keys((j[field] as Record<string, string> | undefined) ?? {})) names.add(n);
  }
  return [...names].sort();
}

/** Every import (tests included) of the files of `pkg` whose specifier matches `re`. */
function importsMatching(pkg: string, re: RegExp, withTests = false): string[] {
  const hits: string[] = [];
  const files = withTests ? allFiles(pkg) : productionModules().filter((f) => packageOf(f) === pkg);
  for (const f of files) for (const i of importsOf(f)) if (re.test(i.spec)) hits.push(`${f} -> ${i.spec}`);
  return hits;
}

/** Every .ts file of `pkg`, tests and test helpers included. */
function allFiles(pkg: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(join(ROOT, d))) {
      const rel = `${d}/${n}`;
      if (n === "node_modules" || n === "dist") continue;
      if (statSync(join(ROOT, rel)).isDirectory()) walk(rel);
      else if (n.endsWith(".ts")) out.push(rel);
    }
  };
  walk(pkg);
  return out;
}

describe("the trust boundary is a package boundary", () => {
  it("the guest driver and the host device do not depend on each other (manifests)", () => {
    expect(manifestDeps("packages/netvsc")).not.toContain("@ivm/netvsp");
    expect(manifestDeps("packages/netvsp")).not.toContain("@ivm/netvsc");
    expect(manifestDeps("packages/netvsp")).toEqual(["@ivm/netvsc-protocol", "@ivm/vmbus"]);
  });

  it("nor import each other, not even in their tests", () => {
    expect(importsMatching("packages/netvsc", /^@ivm\/netvsp(\/|$)/, true)).toEqual([]);
    expect(importsMatching("packages/netvsp", /^@ivm\/netvsc(\/|$)/, true)).toEqual([]);
    expect(importsMatching("packages/netvsc-protocol", /^@ivm\/netvs(c|p)(\/|$)/, true)).toEqual([]);
  });

  it("the host reaches guest memory only through the visibility-gated host view, never guest memory", () => {
    // @ivm/memory is the guest's own memory; the host sees it through the ports the vm adapts.
    expect(
      importsMatching("packages/netvsp", /^@ivm\/(memory|swiotlb|shared-buffer|hypercall)(\/|$)/),
    ).toEqual([]);
  });

  it("the guest never imports VMBus's host server", () => {
    expect(importsMatching("packages/netvsc", /^@ivm\/vmbus\/host$/, true)).toEqual([]);
    const guestSide = productionModules().filter(
      (f) =>
        packageOf(f) === "packages/vmbus" &&
        !f.startsWith("packages/vmbus/src/host/") &&
        !f.startsWith("packages/vmbus/src/testing/"),
    );
    expect(guestSide.length).toBeGreaterThan(10);
    const hits = guestSide.flatMap((f) =>
      importsOf(f)
        .filter((i) => i.target?.startsWith("packages/vmbus/src/host/"))
        .map((i) => `${f} -> ${i.spec}`),
    );
    expect(hits).toEqual([]);
  });

  it("the strategy contract depends only on what it names: memory and hypercall", () => {
    expect(manifestDeps("packages/shared-buffer")).toEqual(["@ivm/hypercall", "@ivm/memory"]);
    // every bare specifier of its code (tests included; the build config's tsup aside) is one of the two
    const bare = importsMatching("packages/shared-buffer", /^(?!\.)/, true).filter((hit) =>
      /^packages\/shared-buffer\/(src|test)\//.test(hit),
    );
    expect(bare.length).toBeGreaterThan(0);
    expect(bare.filter((hit) => !/ -> @ivm\/(memory|hypercall)$/.test(hit))).toEqual([]);
  });
});

describe("test worlds are testing entries, never production code", () => {
  it("no production module outside a src/testing/ folder imports one", () => {
    // @ivm/strategy-conformance is itself a test kit (built on @ivm/vmbus/testing's NIC), not production code
    const production = productionModules().filter(
      (f) => !/\/src\/testing\//.test(f) && packageOf(f) !== "packages/strategy-conformance",
    );
    expect(production.length).toBeGreaterThan(150);
    const hits = production.flatMap((f) =>
      importsOf(f)
        .filter((i) => /^@ivm\/[a-z-]+\/testing$/.test(i.spec) || i.target?.includes("/src/testing/"))
        .map((i) => `${f} -> ${i.spec}`),
    );
    expect(hits).toEqual([]);
  });
});

describe("no import cycle among production modules", () => {
  it("finds a cycle when there is one (the checker can fail)", () => {
    const g = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["a"]],
      ["d", ["a"]],
    ]);
    expect(cycles(g)).toEqual([["a", "b", "c"]]);
    expect(
      cycles(
        new Map([
          ["a", ["b"]],
          ["b", []],
        ]),
      ),
    ).toEqual([]);
  });

  it("the workspace's modules form no cycle at run time", () => {
    const g = moduleGraph(true);
    expect(g.size).toBeGreaterThan(150);
    expect(cycles(g)).toEqual([]);
  });
});
