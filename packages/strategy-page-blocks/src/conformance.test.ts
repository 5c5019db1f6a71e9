import { describeStrategyConformance } from "@ivm/strategy-conformance/vitest";
import { pageBlocks } from "./page-blocks.js";

describeStrategyConformance({ name: "page-blocks", create: (env) => pageBlocks.create(env) });
describeStrategyConformance({
  name: "page-blocks (graded fallback)",
  create: (env) => pageBlocks.create(env, { fallback: "graded" }),
});
