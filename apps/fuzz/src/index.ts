// The campaign as a library (apps/bench times it on one thread): plan a seeded campaign, run its tasks
// in this thread, summarise. The CLI (`ivm-fuzz`) runs the same tasks on a tinypool worker pool.
export * from "./campaign.js";
export { ALL_TARGETS, type Target, targetName } from "./targets.js";
