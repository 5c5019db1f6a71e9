import { describeStrategyConformance } from "@ivm/strategy-conformance/vitest";
import { vtomPteStrategy } from "./vtom-pte.js";

describeStrategyConformance({ name: "vtom-pte", create: (env) => vtomPteStrategy(env) });
