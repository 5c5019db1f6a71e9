import type { LabConfig } from "./config.js";
import { PageDiff } from "./page-state.js";
import { type Recording, record } from "./recorder.js";

/** Structured clone keeps the diffs' arrays but not their class: give them their methods back. */
function revive(rec: Recording): Recording {
  return { ...rec, diffs: rec.diffs.map((d) => new PageDiff(d.index, d.before, d.after)) };
}

/**
 * Boots and records in a Web Worker, so the page stays responsive and two strategies boot in parallel;
 * where a worker cannot start, records on the page's thread instead (same code, same result).
 */
export function recordOffThread(config: LabConfig, strategy: string): Promise<Recording> {
  let worker: Worker;
  try {
    worker = new Worker(new URL("./record-worker.ts", import.meta.url), { type: "module" });
  } catch {
    return Promise.resolve().then(() => record(config, strategy));
  }
  return new Promise<Recording>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<{ ok: true; rec: Recording } | { ok: false; error: string }>) => {
      worker.terminate();
      if (e.data.ok) resolve(revive(e.data.rec));
      else reject(new Error(e.data.error));
    };
    worker.onerror = (e) => {
      worker.terminate();
      e.preventDefault();
      // A worker that failed to load (not a model error): run here instead.
      try {
        resolve(record(config, strategy));
      } catch (err) {
        reject(err);
      }
    };
    worker.postMessage({ config, strategy });
  });
}
