// The worker-thread entry of `speed`: one section, in a fresh isolate, its records out.
import type { MessagePort } from "node:worker_threads";
import type { ResultRecord } from "./records.js";
import { runSpeedSection, type SpeedSection, type SpeedSectionOptions } from "./speed.js";

export interface SpeedSectionTask {
  readonly section: SpeedSection;
  readonly options: SpeedSectionOptions;
  readonly run: ResultRecord["run"];
  /** Receives each step's label, for the CLI's progress bar. */
  readonly port: MessagePort;
}

export default async function work(t: SpeedSectionTask): Promise<ResultRecord[]> {
  try {
    return await runSpeedSection(t.section, t.options, (label) => t.port.postMessage(label), t.run);
  } finally {
    t.port.close();
  }
}
