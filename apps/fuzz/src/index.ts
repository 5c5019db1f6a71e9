// The campaign as a library (apps/bench times it on one thread): plan a seeded campaign, run its tasks
// in this thread, summarise. The CLI (`ivm-fuzz`) runs the same tasks on a tinypool worker pool.
export {
  type CampaignPlan,
  type CampaignReport,
  type CampaignTask,
  DEFAULT_SESSION_LENGTH,
  type Failure,
  planCampaign,
  runTask,
  SESSIONS_PER_TASK,
  summarise,
  type TaskResult,
} from "./campaign.js";
export { ALL_TARGETS, type Target, targetName } from "./targets.js";
