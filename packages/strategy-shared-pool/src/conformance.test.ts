import { describeStrategyConformance } from "@ivm/shared-buffer/testing";
import { sharedPoolStrategy } from "./shared-pool.js";

describeStrategyConformance({ name: "shared-pool", create: (env) => sharedPoolStrategy(env) });
