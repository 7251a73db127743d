// Approximate equality of value arrays, reporting the worst element so a failure says where.

/** |actual − expected| ≤ atol + rtol·|expected| per element. */
export interface Tolerance {
  readonly atol: number;
  readonly rtol: number;
}

/** The element that exceeds its tolerance by the most (or null when all are close). */
export interface Mismatch {
  readonly index: number;
  readonly actual: number;
  readonly expected: number;
  /** |actual − expected| − allowed. */
  readonly excess: number;
  readonly allowed: number;
}

/** The worst mismatch of `actual` against `expected`; NaN matches only NaN, ±∞ only itself. */
export function worstMismatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
): Mismatch | null {
  if (actual.length !== expected.length) {
    return {
      index: -1,
      actual: actual.length,
      expected: expected.length,
      excess: Infinity,
      allowed: 0,
    };
  }
  let worst: Mismatch | null = null;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)) || a === e) continue;
    const allowed = tol.atol + tol.rtol * Math.abs(e);
    const diff = Math.abs(a - e);
    // NaN against a number, or ∞ against anything else, is never close
    const excess = Number.isNaN(diff) || !Number.isFinite(diff) ? Infinity : diff - allowed;
    if (excess > 0 && (worst === null || excess > worst.excess)) {
      worst = { index: i, actual: a, expected: e, excess, allowed };
    }
  }
  return worst;
}

/** True when every element is within tolerance. */
export function allClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
): boolean {
  return worstMismatch(actual, expected, tol) === null;
}

/** The coordinates of flat index `i` in `shape`: `[1,0,2]`. */
function coords(i: number, shape: readonly number[]): string {
  const out: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    out.unshift(i % shape[d]!);
    i = Math.floor(i / shape[d]!);
  }
  return `[${out.join(",")}]`;
}

/**
 * Throw unless `actual` ≈ `expected`; the message names `label`, the worst index (with its
 * coordinates when `shape` is given), both values and the tolerance.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label = "values",
  shape?: readonly number[],
): void {
  const m = worstMismatch(actual, expected, tol);
  if (m === null) return;
  if (m.index === -1) {
    throw new Error(`${label}: length ${m.actual} vs expected length ${m.expected}`);
  }
  const where = shape ? ` ${coords(m.index, shape)}` : "";
  throw new Error(
    `${label}: worst at index ${m.index}${where}: got ${m.actual}, expected ${m.expected} ` +
      `(|diff| ${
        Math.abs(m.actual - m.expected)
      } > atol ${tol.atol} + rtol ${tol.rtol}·|expected| ` +
      `= ${m.allowed})`,
  );
}
