// Evaluation statistics: correlations for STS (DESIGN 3.5: Spearman × 100 between cosine
// similarity and human scores) and multiple-choice scores as lm-evaluation-harness computes
// them (DESIGN 3.6). Plain numbers on the host, in f64.

function checkPair(op: string, x: readonly number[], y: readonly number[]): void {
  if (x.length !== y.length) {
    throw new Error(`${op}: x has ${x.length} values, y has ${y.length}`);
  }
}

function mean(x: readonly number[]): number {
  let s = 0;
  for (const v of x) s += v;
  return s / x.length;
}

/**
 * Pearson's correlation coefficient; NaN when either side is constant (or has < 2 values),
 * as scipy.stats.pearsonr.
 * @example
 * pearson([1, 2, 3], [2, 4, 7]); // 0.9933…
 */
export function pearson(x: readonly number[], y: readonly number[]): number {
  checkPair("pearson", x, y);
  if (x.length < 2 || x.every((v) => v === x[0]) || y.every((v) => v === y[0])) return NaN;
  const mx = mean(x), my = mean(y);
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < x.length; i++) {
    const dx = x[i]! - mx, dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  // Rounding can push |r| a hair past 1 for exactly linear data; scipy clips too
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/**
 * 1-based ranks with ties given the mean of the ranks they span (scipy.stats.rankdata
 * "average").
 * @example
 * ranks([10, 20, 20, 30]); // [1, 2.5, 2.5, 4]
 */
export function ranks(x: readonly number[]): number[] {
  const order = x.map((_, i) => i).sort((a, b) => x[a]! - x[b]!);
  const out = new Array<number>(x.length);
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && x[order[end]!] === x[order[start]!]) end++;
    // positions start..end-1 hold ranks start+1..end: their mean is (start + 1 + end) / 2
    const rank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) out[order[k]!] = rank;
    start = end;
  }
  return out;
}

/**
 * Spearman's rank correlation: Pearson on average ranks (scipy.stats.spearmanr); NaN when
 * either side is constant.
 * @example
 * spearman([1, 2, 3, 4], [1, 4, 9, 16]); // 1
 */
export function spearman(x: readonly number[], y: readonly number[]): number {
  checkPair("spearman", x, y);
  if (x.some(Number.isNaN) || y.some(Number.isNaN)) return NaN; // scipy's nan_policy "propagate"
  return pearson(ranks(x), ranks(y));
}

/** Index of the largest value, the first on ties (numpy.argmax). */
function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

function checkChoices(op: string, loglikelihoods: readonly number[], label: number): void {
  if (loglikelihoods.length === 0) throw new Error(`${op}: no choices`);
  if (!Number.isInteger(label) || label < 0 || label >= loglikelihoods.length) {
    throw new Error(`${op}: label ${label} is not one of the ${loglikelihoods.length} choices`);
  }
}

/**
 * Multiple-choice `acc`: 1 when the choice with the largest summed continuation
 * log-likelihood is `label`, else 0.
 * @example
 * mcAccuracy([-4.2, -1.3, -7.0], 1); // 1
 */
export function mcAccuracy(loglikelihoods: readonly number[], label: number): number {
  checkChoices("mcAccuracy", loglikelihoods, label);
  return argmax(loglikelihoods) === label ? 1 : 0;
}

/**
 * Multiple-choice accuracy on length-normalised log-likelihoods (ll / length). The harness's
 * `acc_norm` divides by `choiceLength(choice)` (Python `len`, code points) and its
 * `acc_bytes` by `utf8ByteLength(choice)`; both are the same for ASCII choices.
 * @example
 * mcAccuracyNorm([-6, -4], [12, 4], 0); // 1: -0.5 per unit beats -1
 */
export function mcAccuracyNorm(
  loglikelihoods: readonly number[],
  continuationLengths: readonly number[],
  label: number,
): number {
  checkChoices("mcAccuracyNorm", loglikelihoods, label);
  if (continuationLengths.length !== loglikelihoods.length) {
    throw new Error(
      `mcAccuracyNorm: ${loglikelihoods.length} log-likelihoods, ${continuationLengths.length} lengths`,
    );
  }
  return argmax(loglikelihoods.map((ll, i) => ll / continuationLengths[i]!)) === label ? 1 : 0;
}

/** A choice's length as the harness's `acc_norm` counts it: Python's `len`, code points. */
export function choiceLength(choice: string): number {
  return [...choice].length;
}

/** A choice's UTF-8 byte length (the harness's `acc_bytes`). */
export function utf8ByteLength(choice: string): number {
  return new TextEncoder().encode(choice).length;
}

/**
 * TruthfulQA MC2: the probability mass of the true answers, exp(ll) normalised over all
 * choices and summed over the choices labelled 1. (The harness splits at the first 0 label,
 * which is the same for TruthfulQA, whose true answers come first.)
 * @example
 * mc2([Math.log(0.2), Math.log(0.6)], [1, 0]); // 0.25
 */
export function mc2(loglikelihoods: readonly number[], labels01: readonly number[]): number {
  if (labels01.length !== loglikelihoods.length || loglikelihoods.length === 0) {
    throw new Error(
      `mc2: ${loglikelihoods.length} log-likelihoods, ${labels01.length} labels`,
    );
  }
  if (!labels01.every((l) => l === 0 || l === 1)) {
    throw new Error(`mc2: labels must be 0 or 1, got ${JSON.stringify(labels01)}`);
  }
  // Shifting by the max leaves the ratio unchanged and keeps exp from underflowing to 0/0
  const top = Math.max(...loglikelihoods);
  let total = 0, truth = 0;
  loglikelihoods.forEach((ll, i) => {
    const p = Math.exp(ll - top);
    total += p;
    if (labels01[i] === 1) truth += p;
  });
  return truth / total;
}
