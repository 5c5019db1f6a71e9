import { profiles } from "@ivm/kernel";
import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { parseFault, parseKernel, parseKernelList } from "../src/cli.js";
import { kernelsOf, STRATEGIES, strategyByName } from "../src/index.js";

describe("the catalog's kernels", () => {
  it("lists the kernels each strategy's package declares it was written for", () => {
    const of = (name: string) => kernelsOf(strategyByName(name)!);
    expect(of("vmalloc-remap")).toEqual(["5.17", "6.1", "6.1.91"]);
    for (const name of ["dma-decrypted", "dma-noncontiguous", "page-blocks"])
      expect(of(name)).toEqual(["5.17"]);
    expect(of("vtom-pte")).toEqual(["6.4", "6.6", "6.6.31", "6.9", "6.12", "6.18"]);
    expect(of("shared-pool")).toHaveLength(Object.keys(profiles).length);
  });

  it("says in one sentence why a strategy does not run on a kernel, and nothing when it does", () => {
    const remap = strategyByName("vmalloc-remap")!;
    expect(remap.unsupportedOn(profiles["6.12"])).toMatch(
      /^vmalloc-remap was written for Linux 5\.17–6\.3 .*not 6\.12$/,
    );
    expect(remap.unsupportedOn(profiles["5.17"])).toBeNull();
    // each entry's era list agrees with its kernels' eras
    for (const s of STRATEGIES) {
      const eras = new Set(kernelsOf(s).map((k) => profiles[k].era));
      expect([...eras].sort()).toEqual([...s.eras].sort());
    }
  });

  it("parses --kernel, a --kernel list and --fault, refusing anything else with the choices", () => {
    expect(parseKernel(" 6.12 ")).toBe("6.12");
    expect(() => parseKernel("6.13")).toThrow(InvalidArgumentError);
    expect(() => parseKernel("6.13")).toThrow(/unknown kernel "6\.13"; choose 5\.17, 6\.1, 6\.1\.91, 6\.4/);
    expect(parseKernelList("5.17,6.12,5.17")).toEqual(["5.17", "6.12"]);
    expect(parseKernelList("all")).toEqual(Object.keys(profiles));
    expect(parseFault("reencrypt-fail")).toBe("reencrypt-fail");
    expect(() => parseFault("oops")).toThrow(
      /unknown fault "oops"; choose decrypt-fail, reencrypt-fail, gpadl-msginfo-nomem/,
    );
  });
});
