import { describe, expect, it } from "vitest";
import { configFromQuery, configToQuery, DEFAULT_CONFIG, type LabConfig } from "../src/model/config.js";

describe("the URL holds the configuration and the step", () => {
  it("round-trips every field", () => {
    const c: LabConfig = {
      strategy: "page-blocks",
      compare: "shared-pool",
      era: "pte-bit",
      memory: 768 * 2 ** 20,
      rxSections: 1000,
      txSections: 200,
      uptime: "heavy",
      packets: 123,
      seed: 42,
      isolation: false,
      failHypercall: 7,
      failReencrypt: true,
    };
    const back = configFromQuery(configToQuery(c, 321));
    expect(back).toEqual({ config: c, step: 321, problems: [] });
  });

  it("keeps the default for a missing value and names each invalid one", () => {
    const r = configFromQuery("s=no-such&mem=32GiB&uptime=forever&iso=2&step=x&seed=-1");
    expect(r.config).toEqual(DEFAULT_CONFIG);
    expect(r.step).toBe(0);
    expect(r.problems).toEqual([
      "mem=32GiB is not valid (64 MiB to 16 GiB, whole MiB); using the default",
      "s=no-such is not valid; using the default",
      "uptime=forever is not valid; using the default",
      "seed=-1 is not valid; using the default",
      "iso=2 is not valid; using the default",
    ]);
  });
});
