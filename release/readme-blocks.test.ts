import { describe, expect, it } from "vitest";
import { extractBlocks, importsOf, installedBy, packageOf } from "./readme-blocks.mjs";

const fence = "```";

describe("extractBlocks", () => {
  it("finds ts blocks by kind, with their line, section and imports, and skips other languages", () => {
    const md = [
      "# @ivm/x",
      `${fence}sh`,
      "npm install @ivm/x",
      fence,
      "## Usage",
      `${fence}ts`,
      'import { a } from "@ivm/x";',
      "a();",
      fence,
      `${fence}ts fragment`,
      "declare const b: number;",
      fence,
      "### Kit",
      `${fence}ts vitest`,
      'import { kit } from "@ivm/x/testing";',
      fence,
      `${fence}js`,
      'import "ignored";',
      fence,
    ].join("\n");
    const blocks = extractBlocks(md);
    expect(blocks.map((b) => [b.kind, b.line, b.heading])).toEqual([
      ["program", 6, "Usage"],
      ["fragment", 10, "Usage"],
      ["vitest", 14, "Kit"],
    ]);
    expect(blocks[0]!.code).toBe('import { a } from "@ivm/x";\na();\n');
    expect(blocks[2]!.imports).toEqual(["@ivm/x/testing"]);
  });

  it("keeps a longer fence open across an inner ``` line", () => {
    const md = ["````ts", "const s = `", fence, "`;", "````"].join("\n");
    expect(extractBlocks(md)[0]!.code).toBe(`const s = \`\n${fence}\n\`;\n`);
  });

  it("refuses a misspelt kind and an unterminated block rather than skipping them", () => {
    expect(() => extractBlocks(`${fence}ts fragmnet\nx\n${fence}`)).toThrow(/line 1: unknown block kind/);
    expect(() => extractBlocks(`text\n${fence}ts\nconst x = 1;\n`)).toThrow(/line 2: unterminated/);
  });
});

describe("imports and installs", () => {
  it("lists static imports, type imports and re-exports once each", () => {
    const code = [
      'import { a, type B } from "@ivm/a";',
      'import type { C } from "@ivm/c/testing";',
      'import "side-effect";',
      'export { d } from "./d.js";',
      'import { again } from "@ivm/a";',
      "const s = \"import x from 'not-code'\";",
    ].join("\n");
    expect(importsOf(code).sort()).toEqual(["./d.js", "@ivm/a", "@ivm/c/testing", "side-effect"]);
  });

  it("maps specifiers to packages", () => {
    expect(packageOf("@ivm/shared-buffer/testing")).toBe("@ivm/shared-buffer");
    expect(packageOf("vitest/config")).toBe("vitest");
    expect(packageOf("./local.js")).toBeNull();
    expect(packageOf("node:fs")).toBeNull();
  });

  it("reads what a README tells its reader to install, flags and comments aside", () => {
    const md = "npm install @ivm/x @ivm/vm   # for the example\nnpm i -D vitest@^4.1\npnpm add @ivm/y";
    expect(installedBy(md).sort()).toEqual(["@ivm/vm", "@ivm/x", "@ivm/y", "vitest"]);
  });
});
