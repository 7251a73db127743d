// fast-check generators shared by the suites: shapes (sizes that are not multiples of 4, 8 or
// 64, size-1 dims, rank 0–4), broadcastable shapes, values, pytrees and mask expressions.
import fc from "fast-check";
import { always, type MaskBool, MaskInt, maskVars } from "../tensor/mask.ts";
import { Rng } from "../tensor/random.ts";

/** A dimension: mostly small and odd-sized, sometimes 1, sometimes just off a power of two. */
export function dim(max = 9): fc.Arbitrary<number> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.integer({ min: 1, max }) },
    { weight: 1, arbitrary: fc.constant(1) },
    { weight: 1, arbitrary: fc.constantFrom(63, 65, 67) },
  );
}

/** Options of `shape`. */
export interface ShapeOptions {
  minRank?: number;
  maxRank?: number;
  /** Largest number of elements. */
  maxSize?: number;
  /** Largest small dimension (see `dim`). */
  maxDim?: number;
}

const sizeOfShape = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** A shape of rank minRank…maxRank (default 0…4) with at most maxSize (default 256) elements. */
export function shape(opts: ShapeOptions = {}): fc.Arbitrary<number[]> {
  const { minRank = 0, maxRank = 4, maxSize = 256, maxDim = 9 } = opts;
  return fc.array(dim(maxDim), { minLength: minRank, maxLength: maxRank })
    .filter((s) => sizeOfShape(s) <= maxSize);
}

/**
 * `count` shapes that broadcast together (numpy rules): each is a suffix of a common shape
 * with some dims set to 1. The first is not always the largest.
 */
export function broadcastableShapes(
  count: number,
  opts: ShapeOptions = {},
): fc.Arbitrary<number[][]> {
  return shape(opts).chain((full) => {
    const one = broadcastsTo(full);
    // one operand keeps the full shape so the broadcast result is `full`
    return fc.tuple(
      fc.array(one, { minLength: count - 1, maxLength: count - 1 }),
      fc.nat(count - 1),
    )
      .map(([others, at]) => {
        const shapes = [...others];
        shapes.splice(at, 0, full);
        return shapes;
      });
  });
}

/** A shape that broadcasts to `full`: a suffix of it with some dims set to 1. */
export function broadcastsTo(full: readonly number[]): fc.Arbitrary<number[]> {
  return fc.tuple(
    fc.integer({ min: 0, max: full.length }),
    fc.array(fc.boolean(), { minLength: full.length, maxLength: full.length }),
  ).map(([rank, ones]) => full.slice(full.length - rank).map((n, i) => (ones[i] ? 1 : n)));
}

/** Two shapes that broadcast together. */
export function broadcastablePair(opts: ShapeOptions = {}): fc.Arbitrary<[number[], number[]]> {
  return broadcastableShapes(2, opts).map(([a, b]) => [a!, b!]);
}

/** `n` float values in [min, max] (fast-check picks them, edge values included). */
export function floatValues(n: number, min = -2, max = 2): fc.Arbitrary<number[]> {
  return fc.array(
    fc.double({ min, max, noNaN: true, noDefaultInfinity: true }).map(Math.fround),
    { minLength: n, maxLength: n },
  );
}

/** A shape with values for it. */
export function shapedValues(
  opts: ShapeOptions = {},
  min = -2,
  max = 2,
): fc.Arbitrary<{ shape: number[]; values: number[] }> {
  return shape(opts).chain((s) =>
    floatValues(sizeOfShape(s), min, max).map((values) => ({ shape: s, values }))
  );
}

/**
 * `n` values drawn from a seed: uniform in [min, max] (no ties, no edge values: what
 * finite-difference checks need), or integers when `integers` is set.
 */
export function seededValues(
  n: number,
  seed: number,
  min = -2,
  max = 2,
  integers = false,
): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const x = min + (max - min) * rng.uniform();
    return integers ? Math.round(x) : x;
  });
}

/** A pytree: nested arrays and plain objects (depth ≤ 3) with leaves from `leaf`. */
export function pytree<T>(leaf: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  const key = fc.constantFrom("w", "bias", "layers", "norm", "router", "a", "b");
  const { tree } = fc.letrec((tie) => ({
    tree: fc.oneof(
      { maxDepth: 3, depthIdentifier: "pytree" },
      leaf,
      fc.array(tie("tree"), { minLength: 1, maxLength: 3 }),
      fc.dictionary(key, tie("tree"), { minKeys: 1, maxKeys: 3 }),
    ),
  }));
  return tree;
}

const cmpOps = ["lt", "le", "gt", "ge", "eq", "ne"] as const;
const intOps = ["add", "sub", "mul"] as const;

/**
 * A mask expression over q, k, n, small constants and token array 0 (read at q, k or an
 * offset of them, possibly out of range), with comparisons, and / or / not.
 */
export function maskExpression(): fc.Arbitrary<MaskBool> {
  const { q, k, n, token } = maskVars;
  const arbs = fc.letrec((tie) => {
    const int = tie("int") as fc.Arbitrary<MaskInt>;
    const bool = tie("bool") as fc.Arbitrary<MaskBool>;
    return {
      int: fc.oneof(
        { maxDepth: 3, depthIdentifier: "mask" },
        fc.constantFrom(q, k, n),
        fc.integer({ min: -3, max: 6 }).map((c) => new MaskInt({ op: "const", value: c })),
        fc.tuple(fc.constantFrom(q, k), fc.integer({ min: -2, max: 2 }))
          .map(([at, d]) => token(0, at.add(d))),
        fc.tuple(int, int, fc.constantFrom(...intOps)).map(([a, b, op]) => a[op](b)),
      ),
      bool: fc.oneof(
        { maxDepth: 3, depthIdentifier: "mask" },
        fc.tuple(int, int, fc.constantFrom(...cmpOps)).map(([a, b, op]) => a[op](b)),
        fc.constant(always),
        fc.tuple(bool, bool).map(([a, b]) => a.and(b)),
        fc.tuple(bool, bool).map(([a, b]) => a.or(b)),
        bool.map((a) => a.not()),
      ),
    };
  });
  return arbs.bool as fc.Arbitrary<MaskBool>;
}
