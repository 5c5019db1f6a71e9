// Runs the model off the page's thread: one boot and recording per message.
import type { LabConfig } from "./config.js";
import { record } from "./recorder.js";

interface Request {
  readonly config: LabConfig;
  readonly strategy: string;
}

self.onmessage = (e: MessageEvent<Request>) => {
  try {
    const rec = record(e.data.config, e.data.strategy);
    // The big typed arrays move to the page instead of being copied.
    const transfer = [rec.initial.buffer, rec.counters.buffer] as ArrayBuffer[];
    self.postMessage({ ok: true, rec }, { transfer });
  } catch (err) {
    self.postMessage({ ok: false, error: (err as Error).message });
  }
};
