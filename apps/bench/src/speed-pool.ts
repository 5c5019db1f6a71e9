import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { MessageChannel } from "node:worker_threads";
import { Tinypool } from "tinypool";
import type { ResultRecord } from "./records.js";
import type { SpeedSection, SpeedSectionOptions } from "./speed.js";
import type { SpeedSectionTask } from "./speed-worker.js";

// The bundled section worker sits beside the bundled CLI; from the sources (tests) there is none.
const WORKER = new URL("./speed-worker.js", import.meta.url);

/**
 * Runs one speed section in a fresh isolate: a one-thread tinypool pool made for it and destroyed after,
 * so no section measures what an earlier one left in V8 (compiled code, type feedback, heap state).
 * Progress labels come back over a MessagePort. Undefined when there is no bundled worker.
 */
export function speedIsolation():
  | ((
      section: SpeedSection,
      o: SpeedSectionOptions,
      step: (label: string) => void,
      run: ResultRecord["run"],
    ) => Promise<ResultRecord[]>)
  | undefined {
  if (!existsSync(fileURLToPath(WORKER))) return undefined;
  return async (section, options, step, run) => {
    const pool = new Tinypool({ filename: WORKER.href, minThreads: 1, maxThreads: 1, isolateWorkers: true });
    const { port1, port2 } = new MessageChannel();
    port1.on("message", (label: string) => step(label));
    try {
      const task: SpeedSectionTask = { section, options, run, port: port2 };
      return (await pool.run(task, { transferList: [port2] })) as ResultRecord[];
    } finally {
      port1.close();
      await pool.destroy();
    }
  };
}
