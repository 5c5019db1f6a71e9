import { describeStrategyConformance } from "@ivm/strategy-conformance/vitest";
import { vmallocRemap } from "./vmalloc-remap.js";

describeStrategyConformance({ name: "vmalloc-remap", create: (env) => vmallocRemap.create(env) });
