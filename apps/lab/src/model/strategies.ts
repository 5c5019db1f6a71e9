import { formatBytes, STRATEGIES } from "@ivm/catalog";

/** The strategies to choose from: apps/catalog's list, the one place that names them. */
export function strategyChoices(): {
  name: string;
  approach: number;
  summary: string;
  eras: readonly string[];
}[] {
  return STRATEGIES.map((s) => ({ name: s.name, approach: s.approach, summary: s.summary, eras: s.eras }));
}

export { formatBytes };
