import { describeStrategyConformance } from "@ivm/strategy-conformance/vitest";
import { dmaDecrypted, hypervDecryptedDmaOps } from "./dma-decrypted.js";

describeStrategyConformance({
  name: "dma-decrypted",
  create: (env) => {
    const ops = hypervDecryptedDmaOps(env.dmaLayer.ops, env.hyperv);
    const dma = env.dmaLayer.createDevice({ name: "netvsc", minAlignMask: 0xfff, ops });
    return dmaDecrypted.create({ memory: env.memory, hyperv: env.hyperv, dma });
  },
});
