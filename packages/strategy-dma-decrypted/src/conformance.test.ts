import { describeStrategyConformance } from "@ivm/strategy-conformance/vitest";
import { dmaDecryptedStrategy, hypervDecryptedDmaOps } from "./dma-decrypted.js";

describeStrategyConformance({
  name: "dma-decrypted",
  create: (env) => {
    const ops = hypervDecryptedDmaOps(env.dmaLayer.ops, env.hyperv);
    const dma = env.dmaLayer.createDevice({ name: "netvsc", minAlignMask: 0xfff, ops });
    return dmaDecryptedStrategy({ memory: env.memory, hyperv: env.hyperv, dma });
  },
});
