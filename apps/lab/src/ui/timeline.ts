import { PHASES, type Recording } from "../model/index.js";

/**
 * Lockstep for two recordings: joint steps walk both through the same phase together; a side whose
 * phase has fewer events waits at its phase's last step until the other finishes that phase. With one
 * recording a joint step is its own step.
 */
export interface Timeline {
  /** Joint steps, step 0 (booted) included. */
  readonly length: number;
  /** sideStep[i][j]: the step side i shows at joint step j. */
  readonly sideStep: readonly Int32Array[];
  /** First joint step of each phase. */
  readonly phaseStart: readonly number[];
}

function phaseRange(rec: Recording, p: number): { first: number; count: number } {
  const starts = PHASES.map((ph) => rec.phaseStart[ph]);
  const first = starts[p]!;
  const next = p + 1 < starts.length ? starts[p + 1]! : rec.events.length + 1;
  return { first, count: Math.max(0, next - first) };
}

export function buildTimeline(recs: readonly Recording[]): Timeline {
  const lengths = PHASES.map((_, p) => Math.max(0, ...recs.map((r) => phaseRange(r, p).count)));
  const total = 1 + lengths.reduce((a, b) => a + b, 0);
  const sideStep = recs.map(() => new Int32Array(total));
  const phaseStart: number[] = [];
  let j = 1;
  PHASES.forEach((_, p) => {
    phaseStart.push(j);
    for (let i = 0; i < lengths[p]!; i++, j++) {
      recs.forEach((r, side) => {
        const { first, count } = phaseRange(r, p);
        sideStep[side]![j] = i < count ? first + i : first + count - 1;
      });
    }
  });
  return { length: total, sideStep, phaseStart };
}
