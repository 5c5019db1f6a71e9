import { describeStrategyConformance } from "@ivm/strategy-conformance/vitest";
import { sharedPoolStrategy } from "./shared-pool.js";

describeStrategyConformance({ name: "shared-pool", create: (env) => sharedPoolStrategy(env) });
