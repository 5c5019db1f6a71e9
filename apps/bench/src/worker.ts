// The worker-thread entry of the sweep pool (tinypool): one task in, one result record out.
import { runTask, type Task } from "./tasks.js";

export default function work(task: Task): ReturnType<typeof runTask> {
  return runTask(task);
}
