import { describeStrategyConformance } from "@ivm/shared-buffer/testing";
import { vtomPteStrategy } from "./vtom-pte.js";

describeStrategyConformance({ name: "vtom-pte", create: (env) => vtomPteStrategy(env) });
