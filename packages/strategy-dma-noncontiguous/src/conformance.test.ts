import { describeStrategyConformance } from "@ivm/strategy-conformance/vitest";
import { dmaNoncontiguous } from "./dma-noncontiguous.js";
import { hypervNoncontiguousDmaOps } from "./hyperv-iommu.js";

describeStrategyConformance({
  name: "dma-noncontiguous",
  create: (env) => {
    const ops = hypervNoncontiguousDmaOps(env.dmaLayer.ops, env.hyperv);
    const dma = env.dmaLayer.createDevice({ name: "netvsc", minAlignMask: 0xfff, ops });
    return dmaNoncontiguous.create({ memory: env.memory, hyperv: env.hyperv, dma });
  },
});
