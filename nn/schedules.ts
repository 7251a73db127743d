// Learning-rate schedules: plain functions from the optimizer step (0-based) to a rate.

/** A learning-rate schedule: step (0-based, the step about to be taken) → learning rate. */
export type Schedule = (step: number) => number;

/** Options shared by the warmup schedules. */
export interface WarmupDecayOptions {
  /** Rate reached at the end of warmup. */
  peak: number;
  /** Steps of linear warmup: step s < warmup uses peak·(s+1)/warmup. */
  warmup: number;
  /** Total steps; decay ends at step total−1 (and stays at `min` after). */
  total: number;
  /** Final rate (default 0). */
  min?: number;
}

/** Fraction of the decay phase done at `step`: 0 at the first post-warmup step, 1 at the last. */
function decayProgress(step: number, warmup: number, total: number): number {
  const span = total - warmup - 1;
  if (span <= 0) return step > warmup ? 1 : 0;
  return Math.min(1, Math.max(0, (step - warmup) / span));
}

function checkOptions(name: string, o: WarmupDecayOptions): void {
  if (!(o.peak >= 0) || !(o.warmup >= 0) || !(o.total >= 1) || o.warmup > o.total) {
    throw new Error(
      `${name}: expected peak ≥ 0 and 0 ≤ warmup ≤ total, total ≥ 1; got ${JSON.stringify(o)}`,
    );
  }
}

/**
 * Linear warmup to `peak`, then cosine decay to `min` at the last step.
 * @example
 * const lr = warmupCosine({ peak: 1e-3, warmup: 100, total: 1000 });
 * lr(99); // 1e-3
 */
export function warmupCosine(options: WarmupDecayOptions): Schedule {
  checkOptions("warmupCosine", options);
  const { peak, warmup, total, min = 0 } = options;
  return (step) => {
    if (step < warmup) return (peak * (step + 1)) / warmup;
    const p = decayProgress(step, warmup, total);
    return min + (peak - min) * 0.5 * (1 + Math.cos(Math.PI * p));
  };
}

/** Linear warmup to `peak`, then linear decay to `min` at the last step. */
export function warmupLinear(options: WarmupDecayOptions): Schedule {
  checkOptions("warmupLinear", options);
  const { peak, warmup, total, min = 0 } = options;
  return (step) => {
    if (step < warmup) return (peak * (step + 1)) / warmup;
    return peak + (min - peak) * decayProgress(step, warmup, total);
  };
}

/**
 * transformers' `get_linear_schedule_with_warmup` (the Trainer's default), stepped after each
 * optimizer step: step s uses peak·s/warmup during warmup (so the very first step has rate 0),
 * then peak·(total − s)/(total − warmup), reaching 0 at step `total`.
 */
export function hfLinearWarmup(options: Omit<WarmupDecayOptions, "min">): Schedule {
  checkOptions("hfLinearWarmup", options);
  const { peak, warmup, total } = options;
  return (step) => {
    if (step < warmup) return (peak * step) / Math.max(1, warmup);
    return peak * Math.max(0, (total - step) / Math.max(1, total - warmup));
  };
}

/** A constant rate. */
export function constantSchedule(rate: number): Schedule {
  return () => rate;
}
