import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import cliProgress from "cli-progress";
import { Tinypool } from "tinypool";
import type { ResultRecord } from "./records.js";
import { describeTask, runTask, type Task } from "./tasks.js";

export const DEFAULT_JOBS: number = availableParallelism();

/** A progress bar on stderr (drawn only when stderr is a terminal, so pipes and CI logs stay clean). */
export function progressBar(label: string, total: number): cliProgress.SingleBar {
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {value}/{total} {eta_formatted} {task}`,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { task: "" });
  return bar;
}

// The bundled worker sits beside the bundled CLI; from the sources (tests) there is none, and the tasks
// run in this thread.
const WORKER = new URL("./worker.js", import.meta.url);

/**
 * Runs the tasks on a pool of `jobs` worker threads (all cores by default), or in this thread when
 * jobs is 1. Results come back in task order, whatever order they finish in.
 */
export async function runTasks(tasks: readonly Task[], jobs: number, label: string): Promise<ResultRecord[]> {
  const bar = progressBar(label, tasks.length);
  try {
    if (jobs <= 1 || tasks.length <= 1 || !existsSync(fileURLToPath(WORKER))) {
      const out: ResultRecord[] = [];
      for (const task of tasks) {
        bar.update({ task: describeTask(task) });
        out.push(runTask(task));
        bar.increment();
        await new Promise((resolve) => setImmediate(resolve)); // let the bar draw
      }
      return out;
    }
    const pool = new Tinypool({
      filename: WORKER.href,
      minThreads: 1,
      maxThreads: Math.min(jobs, tasks.length),
    });
    try {
      return await Promise.all(
        tasks.map(async (task) => {
          const record = (await pool.run(task)) as ResultRecord;
          bar.increment({ task: describeTask(task) });
          return record;
        }),
      );
    } finally {
      await pool.destroy();
    }
  } finally {
    bar.stop();
  }
}
