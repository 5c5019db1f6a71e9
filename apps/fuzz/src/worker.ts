// The module tinypool loads in each worker thread: one campaign task per call.
import { type CampaignTask, runTask, type TaskResult } from "./campaign.js";

export default function work(task: CampaignTask): TaskResult {
  return runTask(task);
}
