import { describe, expect, it } from "vitest";
import { replaceSection } from "../src/readme.js";

describe("README sections", () => {
  it("replaces what stands between the markers and keeps the rest", () => {
    const text = "# t\n<!-- bench:compare:start -->\nold\n<!-- bench:compare:end -->\ntail\n";
    expect(replaceSection(text, "compare", "new")).toBe(
      "# t\n<!-- bench:compare:start -->\nnew\n<!-- bench:compare:end -->\ntail\n",
    );
  });

  it("appends a section that is not there yet", () => {
    expect(replaceSection("# t\n", "speed", "x")).toBe(
      "# t\n\n<!-- bench:speed:start -->\nx\n<!-- bench:speed:end -->\n",
    );
  });
});
