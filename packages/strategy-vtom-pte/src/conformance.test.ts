import { describeStrategyConformance } from "@ivm/strategy-conformance/vitest";
import { vtomPte } from "./vtom-pte.js";

describeStrategyConformance({ name: "vtom-pte", create: (env) => vtomPte.create(env) });
