// Evaluation statistics: Spearman against a brute-force reference on data with ties, its
// laws (monotone invariance), hand-computed values, and the multiple-choice scores of
// lm-evaluation-harness on toy cases.
import fc from "fast-check";
import {
  choiceLength,
  mc2,
  mcAccuracy,
  mcAccuracyNorm,
  pearson,
  ranks,
  spearman,
  utf8ByteLength,
} from "../../nn/metrics.ts";
import { assert, assertDeepEqual, assertEquals, assertThrows } from "../assert.ts";
import { assertProperty } from "../fc.ts";

/** Mean ranks by counting: L values below and E equal (self included) span ranks L+1..L+E. */
function bruteRanks(x: readonly number[]): number[] {
  return x.map((v) => {
    const less = x.filter((w) => w < v).length, equal = x.filter((w) => w === v).length;
    return less + (equal + 1) / 2;
  });
}

/** Pearson by the one-pass sums formula (a different computation from the library's). */
function brutePearson(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  let sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  for (let i = 0; i < n; i++) {
    sx += x[i]!, sy += y[i]!, sxx += x[i]! ** 2, syy += y[i]! ** 2, sxy += x[i]! * y[i]!;
  }
  const den = (n * sxx - sx * sx) * (n * syy - sy * sy);
  return den === 0 ? NaN : (n * sxy - sx * sy) / Math.sqrt(den);
}

function close(got: number, want: number, tol = 1e-12): boolean {
  return (Number.isNaN(got) && Number.isNaN(want)) || Math.abs(got - want) <= tol;
}

/** Two equally long arrays of small integers: many ties, sometimes a constant side. */
const tiedPairs = fc.integer({ min: 2, max: 40 }).chain((n) =>
  fc.tuple(
    fc.array(fc.integer({ min: 0, max: 5 }), { minLength: n, maxLength: n }),
    fc.array(fc.integer({ min: -3, max: 3 }), { minLength: n, maxLength: n }),
  )
);

Deno.test("ranks() gives ties their mean rank (brute force by counting)", async () => {
  assertDeepEqual(ranks([10, 20, 20, 30]), [1, 2.5, 2.5, 4]);
  assertDeepEqual(ranks([3, 1, 3, 3, 2]), [4, 1, 4, 4, 2]);
  await assertProperty(
    fc.property(tiedPairs, ([x]) => {
      assertDeepEqual(ranks(x), bruteRanks(x));
    }),
    200,
  );
});

Deno.test("spearman() equals Pearson of counted mean ranks on data with ties", async () => {
  await assertProperty(
    fc.property(tiedPairs, ([x, y]) => {
      const got = spearman(x, y), want = brutePearson(bruteRanks(x), bruteRanks(y));
      assert(close(got, want, 1e-9), `spearman ${got} vs reference ${want}`);
    }),
    300,
  );
});

Deno.test("spearman() of hand-computed examples", () => {
  // x = [1,2,2,3] → ranks [1,2.5,2.5,4]; y = [1,3,2,4] → ranks [1,3,2,4]; both means 2.5.
  // deviations dx = [-1.5,0,0,1.5], dy = [-1.5,0.5,-0.5,1.5]:
  // Σdxdy = 4.5, Σdx² = 4.5, Σdy² = 5 → ρ = 4.5/√22.5 = √0.9 = 3/√10 ≈ 0.9486833
  assert(close(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 3 / Math.sqrt(10)));
  // scipy.stats.spearmanr's own example: y ranks [1,2,3.5,5,3.5] → 8/√95 = 0.8207826816681233
  assert(close(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 8 / Math.sqrt(95)));
  assertEquals(spearman([1, 2, 3], [30, 20, 10]), -1);
  assert(Number.isNaN(spearman([1, 2, 3], [4, 4, 4])));
  assert(Number.isNaN(spearman([NaN, 2, 3], [1, 2, 3])));
});

Deno.test("spearman() is invariant under increasing maps and flips under decreasing ones", async () => {
  await assertProperty(
    fc.property(tiedPairs, ([x, y]) => {
      const rho = spearman(x, y);
      const up = spearman(x.map((v) => Math.exp(v / 3)), y.map((v) => v ** 3 + 2 * v));
      const down = spearman(x.map((v) => -7 * v + 1), y);
      assert(close(up, rho, 1e-12), `increasing: ${up} vs ${rho}`);
      assert(close(down, -rho, 1e-12), `decreasing: ${down} vs ${-rho}`);
    }),
    200,
  );
});

Deno.test("pearson() of a linear map is ±1, and NaN for a constant side", async () => {
  await assertProperty(
    fc.property(
      fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 2, maxLength: 50 }),
      fc.double({ min: 0.01, max: 100, noNaN: true }),
      fc.boolean(),
      fc.double({ min: -1e3, max: 1e3, noNaN: true }),
      (x, scale, negative, shift) => {
        fc.pre(new Set(x).size > 1 && Math.max(...x) - Math.min(...x) > 1e-6);
        const a = negative ? -scale : scale;
        const r = pearson(x, x.map((v) => a * v + shift));
        assert(close(r, negative ? -1 : 1, 1e-9), `r = ${r}`);
      },
    ),
    300,
  );
  assert(close(pearson([1, 2, 3], [2, 4, 7]), 5 / Math.sqrt(2 * 12.666666666666666)));
  assert(Number.isNaN(pearson([5, 5, 5], [1, 2, 3])));
  assertThrows(() => pearson([1, 2], [1, 2, 3]), /pearson: x has 2 values, y has 3/);
});

Deno.test("mcAccuracy() and mcAccuracyNorm() disagree when lengths differ", () => {
  // " cat" vs " elephant" style: raw sums prefer choice 0, per-character choice 1
  const lls = [-6, -8], lengths = [5, 8]; // -1.2 vs -1.0 per character
  assertEquals(mcAccuracy(lls, 0), 1);
  assertEquals(mcAccuracy(lls, 1), 0);
  assertEquals(mcAccuracyNorm(lls, lengths, 0), 0);
  assertEquals(mcAccuracyNorm(lls, lengths, 1), 1);
  // ties go to the first index, as numpy.argmax
  assertEquals(mcAccuracy([-2, -1, -1], 1), 1);
  assertEquals(mcAccuracy([-2, -1, -1], 2), 0);
  assertEquals(mcAccuracyNorm([-2, -4], [1, 2], 0), 1);
  assertThrows(() => mcAccuracy([-1, -2], 2), /label 2 is not one of the 2 choices/);
});

Deno.test("choiceLength() counts code points like Python's len; utf8ByteLength() bytes", () => {
  assertEquals(choiceLength("café"), 4);
  assertEquals(utf8ByteLength("café"), 5);
  assertEquals(choiceLength("😀"), 1); // JavaScript's "😀".length is 2
  assertEquals(utf8ByteLength("😀"), 4);
  // acc_norm (characters) and acc_bytes (bytes) can disagree: -4.5/4 < -4/4 but -4.5/5 > -4/4
  const lls = [-4.5, -4], choices = ["café", "abcd"];
  assertEquals(mcAccuracyNorm(lls, choices.map(choiceLength), 1), 1);
  assertEquals(mcAccuracyNorm(lls, choices.map(utf8ByteLength), 0), 1);
});

Deno.test("mc2() is the normalised probability of the true answers", () => {
  // p = [0.2, 0.1, 0.3, 0.4] sums to 1: the true mass is 0.2 + 0.1
  const lls = [0.2, 0.1, 0.3, 0.4].map(Math.log);
  assert(close(mc2(lls, [1, 1, 0, 0]), 0.3));
  assert(close(mc2(lls, [0, 0, 1, 0]), 0.3));
  // unnormalised: p ∝ [1, 3] → 0.25
  assert(close(mc2([Math.log(0.2), Math.log(0.6)], [1, 0]), 0.25));
  // far below exp's range: still 1/(1+e⁻¹), not 0/0
  assert(close(mc2([-1000, -1001], [1, 0]), 1 / (1 + Math.exp(-1))));
  assertThrows(() => mc2([-1, -2], [1, 2]), /labels must be 0 or 1/);
});
