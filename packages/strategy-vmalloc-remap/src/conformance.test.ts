import { describeStrategyConformance } from "@ivm/strategy-conformance/vitest";
import { vmallocRemapStrategy } from "./vmalloc-remap.js";

describeStrategyConformance({ name: "vmalloc-remap", create: (env) => vmallocRemapStrategy(env) });
