import { type CompareCase, measureCompare } from "./compare.js";
import { type FragmentationCase, measureFragmentation } from "./fragmentation.js";
import type { ResultRecord } from "./records.js";

/** One unit of a sweep: plain data, so it can cross to a worker thread. */
export type Task =
  | { readonly kind: "compare"; readonly case: CompareCase }
  | { readonly kind: "fragmentation"; readonly case: FragmentationCase };

export function runTask(task: Task): ResultRecord {
  return task.kind === "compare" ? measureCompare(task.case) : measureFragmentation(task.case);
}

export function describeTask(task: Task): string {
  const c = task.case;
  const kernel = "kernel" in c && c.kernel !== undefined ? ` ${c.kernel}` : "";
  const fault = "fault" in c && c.fault !== undefined ? ` ${c.fault}` : "";
  return `${c.strategy} ${c.era}${kernel}${fault} ${c.uptime} seed ${c.seed}`;
}
