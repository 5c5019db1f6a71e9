import { describe, expect, it } from "vitest";
import { configFromQuery, configToQuery, DEFAULT_CONFIG, type LabConfig } from "../src/model/config.js";

describe("the URL holds the configuration and the step", () => {
  it("round-trips every field", () => {
    const c: LabConfig = {
      strategy: "page-blocks",
      compare: "shared-pool",
      kernel: "6.6.31",
      hardened: false,
      memory: 768 * 2 ** 20,
      rxSections: 1000,
      txSections: 200,
      uptime: "heavy",
      packets: 123,
      seed: 42,
      isolation: false,
      failHypercall: 7,
      failReencrypt: true,
      cpus: 8,
      queues: 4,
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

  it("maps an old link's era= to the era's representative kernel, and names a bad kernel", () => {
    expect(configFromQuery("era=pte-bit").config).toMatchObject({ kernel: "6.9", hardened: true });
    expect(configFromQuery("era=address-bit").config.kernel).toBe("5.17");
    expect(configFromQuery("era=auto").config).toEqual(DEFAULT_CONFIG);
    // kernel= wins over era= when a link has both.
    expect(configFromQuery("era=pte-bit&kernel=6.1").config.kernel).toBe("6.1");
    const bad = configFromQuery("kernel=4.19&era=bronze");
    expect(bad.config.kernel).toBe(DEFAULT_CONFIG.kernel);
    expect(bad.problems).toEqual([
      "era=bronze is not valid; using the default",
      "kernel=4.19 is not valid (5.17, 6.1, 6.1.91, 6.4, 6.6, 6.6.31, 6.9, 6.12, 6.18); using the default",
    ]);
  });

  it("takes CPUs and queues, and refuses more queues than CPUs", () => {
    expect(configFromQuery("cpus=8&q=8").config).toMatchObject({ cpus: 8, queues: 8 });
    const over = configFromQuery("cpus=4&q=6");
    expect(over.config).toMatchObject({ cpus: 4, queues: 0 });
    expect(over.problems).toEqual(["q=6 is more than the guest's 4 CPUs; using the default"]);
    expect(configFromQuery("q=3").problems).toEqual([
      "q=3 is more than the guest's 2 CPUs; using the default",
    ]);
    expect(configFromQuery("cpus=65").problems).toEqual(["cpus=65 is not valid; using the default"]);
  });
});
