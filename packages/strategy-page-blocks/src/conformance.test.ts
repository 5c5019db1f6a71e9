import { describeStrategyConformance } from "@ivm/strategy-conformance/vitest";
import { pageBlocksStrategy } from "./page-blocks.js";

describeStrategyConformance({ name: "page-blocks", create: (env) => pageBlocksStrategy(env) });
describeStrategyConformance({
  name: "page-blocks (graded fallback)",
  create: (env) => pageBlocksStrategy(env, { fallback: "graded" }),
});
