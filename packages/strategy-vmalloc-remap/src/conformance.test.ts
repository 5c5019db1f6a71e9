import { describeStrategyConformance } from "@ivm/shared-buffer/testing";
import { vmallocRemapStrategy } from "./vmalloc-remap.js";

describeStrategyConformance({ name: "vmalloc-remap", create: (env) => vmallocRemapStrategy(env) });
