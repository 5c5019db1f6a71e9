import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { countLoc, directoryLoc, packageLoc, sourceFiles } from "../src/loc.js";

const fixture = fileURLToPath(new URL("./fixtures/loc/src", import.meta.url));

describe("lines of code", () => {
  it("counts non-blank, non-comment lines; comment markers inside strings are code", () => {
    expect(countLoc("")).toBe(0);
    expect(countLoc("// only\n\n/* block\n */\n")).toBe(0);
    expect(countLoc('const a = "/* x */ // y";\nconst b = 2; // c')).toBe(2);
    expect(countLoc("/* a */ const c = 1;")).toBe(1);
    expect(countLoc("const s = `\n// in template\n`;")).toBe(3);
  });

  it("counts a fixture package's sources without its tests", () => {
    expect(sourceFiles(fixture)).toEqual(["a.ts", "sub/b.ts"]);
    expect(directoryLoc(fixture)).toEqual({ files: 2, loc: 9 });
  });

  it("reads a strategy package from the repository at run time", () => {
    expect(packageLoc("@ivm/strategy-vmalloc-remap").loc).toBeGreaterThan(10);
  });
});
