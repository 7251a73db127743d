// Random inputs for every op of the registry, keyed by op name: the WebGPU conformance suite
// and the VJP finite-difference suite (tests/tensor/registry_test.ts) both draw from here.
// The table is typed by the registry's keys, so an op added without cases is a type error,
// and registry_test.ts also checks it at run time.
import fc from "fast-check";
import {
  bidirectional,
  causal,
  document,
  type MaskVariant,
  prefix,
  sliding,
} from "../../nn/masks.ts";
import type { DType } from "../../tensor/dtype.ts";
import type { AttentionAttrs } from "../../tensor/ops/attention.ts";
import type { opRegistry } from "../../tensor/registry.ts";
import {
  broadcastablePair,
  broadcastableShapes,
  broadcastsTo,
  dim,
  seededValues,
  shape,
} from "../arbitraries.ts";

/** An op's name in the registry. */
export type OpName = keyof typeof opRegistry;

/** Conformance cases may use bf16 and i32; gradcheck cases use f32 only. */
export type CaseMode = "conformance" | "gradcheck";

/** One input: host values, stored as `dtype`. */
export interface CaseInput {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly values: readonly number[];
}

/** One call of an op. */
export interface OpCase {
  readonly inputs: readonly CaseInput[];
  readonly attrs: unknown;
  /** The longest sum an output element is made of (the tolerance grows with it). */
  readonly reduce: number;
  /** Inputs to differentiate (default: every float input). */
  readonly wrt?: readonly number[];
  /** Outputs that carry cotangents (default: every float output). */
  readonly outputs?: readonly number[];
}

/** Random calls of an op. */
export type CaseGen = (mode: CaseMode) => fc.Arbitrary<OpCase>;

/** An op's cases, or where its WebGPU conformance is tested instead. */
export type OpCases =
  | { readonly cases: CaseGen; readonly webgpuTestedIn?: string }
  | { readonly cases?: undefined; readonly webgpuTestedIn: string };

/**
 * Where values come from: `any` [-2, 2], `positive` [0.25, 2], `nonzero` ±[0.5, 2], `grid`
 * {-1, -0.5, 0, 0.5, 1} (ties for comparisons), `wide` [-8, 8]. Integers: [-5, 5], [1, 5],
 * ±[1, 5], [-2, 2], [-5, 5].
 */
type Domain = "any" | "positive" | "nonzero" | "grid" | "wide";

const sizeOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function input(
  shape: readonly number[],
  dtype: DType,
  seed: number,
  domain: Domain = "any",
): CaseInput {
  const n = sizeOf(shape);
  const int = dtype === "i32";
  let values: number[];
  switch (domain) {
    case "any":
    case "wide": {
      const r = int ? 5 : domain === "wide" ? 8 : 2;
      values = seededValues(n, seed, -r, r, int);
      break;
    }
    case "positive":
      values = int ? seededValues(n, seed, 1, 5, true) : seededValues(n, seed, 0.25, 2);
      break;
    case "nonzero": {
      const mag = int ? seededValues(n, seed, 1, 5, true) : seededValues(n, seed, 0.5, 2);
      const sign = seededValues(n, seed + 1, 0, 1);
      values = mag.map((m, i) => (sign[i]! < 0.5 ? -m : m));
      break;
    }
    case "grid":
      values = seededValues(n, seed, -2, 2, true).map((v) => (int ? v : v / 2));
      break;
    default:
      return domain satisfies never;
  }
  return { shape, dtype, values };
}

function ints(shape: readonly number[], seed: number, lo: number, hi: number): CaseInput {
  return { shape, dtype: "i32", values: seededValues(sizeOf(shape), seed, lo, hi, true) };
}

const seed = fc.nat();
const floatDtype = (mode: CaseMode): fc.Arbitrary<DType> =>
  mode === "gradcheck" ? fc.constant("f32") : fc.constantFrom("f32", "bf16");
/** Both operands float (each f32 or bf16) or both i32. */
const dtypePair = (mode: CaseMode, int: boolean): fc.Arbitrary<[DType, DType]> =>
  mode === "gradcheck" || !int ? fc.tuple(floatDtype(mode), floatDtype(mode)) : fc.oneof(
    fc.tuple(floatDtype(mode), floatDtype(mode)),
    fc.constant<[DType, DType]>(["i32", "i32"]),
  );
const anyDtype = (mode: CaseMode): fc.Arbitrary<DType> =>
  mode === "gradcheck" ? fc.constant("f32") : fc.constantFrom("f32", "bf16", "i32");

function unary(domain: Domain, int = false): CaseGen {
  return (mode) =>
    fc.record({ shape: shape(), dtype: int ? anyDtype(mode) : floatDtype(mode), seed })
      .map(({ shape, dtype, seed }) => ({
        inputs: [input(shape, dtype, seed, domain)],
        attrs: {},
        reduce: 1,
      }));
}

function binary(a: Domain, b: Domain, int: boolean, conformanceDomain?: Domain): CaseGen {
  return (mode) =>
    fc.record({ shapes: broadcastablePair(), dtypes: dtypePair(mode, int), seed }).map(
      ({ shapes: [sa, sb], dtypes: [da, db], seed }) => {
        const grid = mode === "conformance" ? conformanceDomain : undefined;
        return {
          inputs: [input(sa, da, seed, grid ?? a), input(sb, db, seed + 7, grid ?? b)],
          attrs: {},
          reduce: 1,
        };
      },
    );
}

/** Comparisons: values on a grid so that ties (and eq = 1) occur. */
const compare: CaseGen = binary("grid", "grid", true);

const where: CaseGen = (mode) =>
  fc.record({ shapes: broadcastableShapes(3), dtypes: dtypePair(mode, true), seed }).map(
    ({ shapes: [sc, sa, sb], dtypes: [da, db], seed }) => ({
      inputs: [ints(sc!, seed, -1, 2), input(sa!, da, seed + 1), input(sb!, db, seed + 2)],
      attrs: {},
      reduce: 1,
    }),
  );

const cast: CaseGen = (mode) =>
  fc.record({
    shape: shape(),
    from: anyDtype(mode),
    to: mode === "gradcheck"
      ? fc.constant<DType>("f32")
      : fc.constantFrom<DType>("f32", "bf16", "f16", "i32"),
    seed,
  }).map(({ shape, from, to, seed }) => ({
    inputs: [input(shape, from, seed, "wide")],
    attrs: { dtype: to },
    reduce: 1,
  }));

const full: CaseGen = () =>
  fc.record({
    shape: shape(),
    dtype: fc.constantFrom<DType>("f32", "bf16", "f16", "i32"),
    value: fc.double({ min: -100, max: 100, noNaN: true }),
  }).map(({ shape, dtype, value }) => ({
    inputs: [],
    attrs: { shape, dtype, value: dtype === "i32" ? Math.trunc(value) : value },
    reduce: 1,
  }));

const reshape: CaseGen = (mode) =>
  fc.record({ shape: shape(), dtype: anyDtype(mode), seed }).chain(({ shape, dtype, seed }) =>
    fc.tuple(
      fc.shuffledSubarray(shape, { minLength: shape.length, maxLength: shape.length }),
      fc.array(fc.nat(4), { maxLength: 2 }),
      fc.option(fc.nat(4)),
    ).map(([dims, ones, hole]) => {
      const target = [...dims];
      for (const at of ones) target.splice(Math.min(at, target.length), 0, 1);
      if (hole !== null && target.length > 0) target[hole % target.length] = -1;
      return { inputs: [input(shape, dtype, seed)], attrs: { shape: target }, reduce: 1 };
    })
  );

const permute: CaseGen = (mode) =>
  fc.record({ shape: shape(), dtype: anyDtype(mode), seed }).chain(({ shape, dtype, seed }) => {
    const axes = [...shape.keys()];
    return fc.shuffledSubarray(axes, { minLength: axes.length, maxLength: axes.length })
      .map((perm) => ({ inputs: [input(shape, dtype, seed)], attrs: { axes: perm }, reduce: 1 }));
  });

const slice: CaseGen = (mode) =>
  fc.record({ shape: shape(), dtype: anyDtype(mode), seed }).chain(({ shape, dtype, seed }) =>
    fc.tuple(
      ...shape.map((n) =>
        fc.integer({ min: 0, max: n }).chain((s) =>
          fc.tuple(fc.constant(s), fc.integer({ min: s, max: n }))
        )
      ),
    ).map((ranges) => ({
      inputs: [input(shape, dtype, seed)],
      attrs: { start: ranges.map(([s]) => s), end: ranges.map(([, e]) => e) },
      reduce: 1,
    }))
  );

const pad: CaseGen = (mode) =>
  fc.record({ shape: shape({ maxSize: 64 }), dtype: anyDtype(mode), seed }).chain(
    ({ shape, dtype, seed }) => {
      const widths = fc.array(fc.nat(2), { minLength: shape.length, maxLength: shape.length });
      return fc.tuple(widths, widths).map(([before, after]) => ({
        inputs: [input(shape, dtype, seed)],
        attrs: { before, after },
        reduce: 1,
      }));
    },
  );

const broadcastTo: CaseGen = (mode) =>
  fc.record({ full: shape(), dtype: anyDtype(mode), seed }).chain(({ full, dtype, seed }) =>
    broadcastsTo(full).map((from) => ({
      inputs: [input(from, dtype, seed)],
      attrs: { shape: full },
      reduce: 1,
    }))
  );

function reduction(domain: Domain): CaseGen {
  return (mode) =>
    fc.record({ shape: shape(), dtype: anyDtype(mode), seed, keepDims: fc.boolean() }).chain(
      ({ shape, dtype, seed, keepDims }) =>
        fc.subarray([...shape.keys()]).map((axes) => ({
          inputs: [input(shape, dtype, seed, domain)],
          attrs: { axes, keepDims },
          reduce: sizeOf(axes.map((d) => shape[d]!)),
        })),
    );
}

const matmul: CaseGen = (mode) =>
  fc.record({
    batch: broadcastablePair({ maxRank: 2, maxSize: 6, maxDim: 3 }),
    m: dim(5),
    k: dim(5),
    n: dim(5),
    transA: fc.boolean(),
    transB: fc.boolean(),
    dtypes: dtypePair(mode, false),
    seed,
  }).filter(({ m, k, n }) => m * k * n <= 4096).map((
    { batch: [ba, bb], m, k, n, transA, transB, dtypes: [da, db], seed },
  ) => ({
    inputs: [
      input([...ba, ...(transA ? [k, m] : [m, k])], da, seed),
      input([...bb, ...(transB ? [n, k] : [k, n])], db, seed + 1),
    ],
    attrs: { transA, transB },
    reduce: k,
  }));

/** A table [V, ...R] and ids (some out of range: −1 and V). */
const gather: CaseGen = (mode) =>
  fc.record({
    rows: fc.integer({ min: 1, max: 6 }),
    row: shape({ maxRank: 2, maxSize: 16 }),
    ids: shape({ maxRank: 2, maxSize: 16 }),
    dtype: anyDtype(mode),
    seed,
  }).map(({ rows, row, ids, dtype, seed }) => ({
    inputs: [input([rows, ...row], dtype, seed), ints(ids, seed + 1, -1, rows)],
    attrs: {},
    reduce: 1,
  }));

const scatterAdd: CaseGen = (mode) =>
  fc.record({
    rows: fc.integer({ min: 1, max: 6 }),
    row: shape({ maxRank: 2, maxSize: 16 }),
    ids: shape({ maxRank: 2, maxSize: 16 }),
    dtype: floatDtype(mode),
    seed,
  }).map(({ rows, row, ids, dtype, seed }) => ({
    inputs: [input([...ids, ...row], dtype, seed), ints(ids, seed + 1, -1, rows)],
    attrs: { rows },
    reduce: sizeOf(ids),
  }));

const softmax: CaseGen = (mode) =>
  fc.record({ shape: shape({ minRank: 1 }), dtype: floatDtype(mode), seed }).map((
    { shape, dtype, seed },
  ) => ({
    inputs: [input(shape, dtype, seed, mode === "conformance" ? "wide" : "any")],
    attrs: {},
    reduce: shape[shape.length - 1]!,
  }));

const rmsNorm: CaseGen = (mode) =>
  fc.record({
    shape: shape({ minRank: 1 }),
    dtype: floatDtype(mode),
    seed,
    eps: fc.constantFrom(1e-6, 0.1),
  })
    .map(({ shape, dtype, seed, eps }) => ({
      inputs: [
        // away from zero rows, where rsqrt(mean(x²) + eps) is steep for tiny eps
        input(shape, dtype, seed, "nonzero"),
        input([shape[shape.length - 1]!], dtype, seed + 7, "any"),
      ],
      attrs: { eps },
      reduce: shape[shape.length - 1]!,
    }));

/**
 * A cos or sin table: its two halves of the last axis are equal, as for real angles (the
 * rope VJP relies on it: the transpose of rotate-half is rotate-half with −sin).
 */
function table(shape: readonly number[], dtype: DType, seed: number): CaseInput {
  const d = shape[shape.length - 1] ?? 1;
  if (d === 1) return input(shape, dtype, seed);
  const halves = input([...shape.slice(0, -1), d / 2], dtype, seed).values;
  const values = Array.from(
    { length: sizeOf(shape) },
    (_, i) => halves[Math.floor(i / d) * (d / 2) + (i % d) % (d / 2)]!,
  );
  return { shape, dtype, values };
}

/** x [..., D] with D even; cos and sin broadcast to x. Only x is differentiated (the tables are constants). */
const rope: CaseGen = (mode) =>
  fc.record({
    lead: shape({ maxRank: 3, maxSize: 24, maxDim: 5 }),
    half: fc.integer({ min: 1, max: 5 }),
    dtypes: fc.tuple(floatDtype(mode), floatDtype(mode), floatDtype(mode)),
    seed,
  }).chain(({ lead, half, dtypes: [dx, dc, ds], seed }) => {
    const x = [...lead, 2 * half];
    return fc.tuple(broadcastsTo(x), broadcastsTo(x)).map(([c, s]) => ({
      inputs: [input(x, dx, seed), table(c, dc, seed + 1), table(s, ds, seed + 2)],
      attrs: {},
      reduce: 2,
      wrt: [0],
    }));
  });

/** Logits [N, V]; targets include the ignore index and out-of-range values (−1, V). */
function crossEntropyCase(withG: boolean): CaseGen {
  return (mode) =>
    fc.record({
      n: fc.integer({ min: 1, max: 6 }),
      v: fc.oneof(fc.integer({ min: 1, max: 9 }), fc.constantFrom(63, 64, 65)),
      ignoreIndex: fc.constantFrom(-100, 1),
      dtype: floatDtype(mode),
      seed,
    }).map(({ n, v, ignoreIndex, dtype, seed }) => {
      const targets = seededValues(n, seed + 1, -2, v, true).map((
        t,
      ) => (t === -2 ? ignoreIndex : t));
      const inputs = [input([n, v], dtype, seed, "wide"), {
        shape: [n],
        dtype: "i32" as DType,
        values: targets,
      }];
      if (withG) inputs.push(input([n], dtype, seed + 2));
      return { inputs, attrs: { ignoreIndex }, reduce: v, wrt: [0] };
    });
}

const masks: readonly MaskVariant[] = [causal, bidirectional, prefix(2), sliding(2), document];

/** q [B, H, L, D], k and v [B, Hk, S, D] (GQA when H > Hk), every mask kind, key padding. */
const attention: CaseGen = (mode) =>
  fc.record({
    b: fc.integer({ min: 1, max: 2 }),
    hk: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 2 }),
    l: fc.integer({ min: 1, max: 4 }),
    s: fc.integer({ min: 1, max: 5 }),
    d: fc.integer({ min: 1, max: 4 }),
    mask: fc.constantFrom(...masks),
    keyValid: fc.boolean(),
    offset: fc.boolean(),
    dtypes: fc.tuple(floatDtype(mode), floatDtype(mode), floatDtype(mode)),
    seed,
  }).map(({ b, hk, group, l, s, d, mask, keyValid, offset, dtypes: [dq, dk, dv], seed }) => {
    const h = hk * group;
    const inputs: CaseInput[] = [
      input([b, h, l, d], dq, seed),
      input([b, hk, s, d], dk, seed + 1),
      input([b, hk, s, d], dv, seed + 2),
    ];
    // keys mostly valid, a few padded (whole rows may end up masked: their output is 0)
    if (keyValid) {
      inputs.push({
        shape: [b, s],
        dtype: "i32",
        values: seededValues(b * s, seed + 3, 0, 1).map((u) => (u < 0.75 ? 1 : 0)),
      });
    }
    // document ids: sorted, so documents are contiguous runs
    for (const _ of mask.tokenArrays) {
      const ids = seededValues(b * s, seed + 4, 0, 1).map((u) => (u < 0.4 ? 1 : 0));
      const values: number[] = [];
      for (let r = 0; r < b; r++) {
        let doc = 0;
        for (let j = 0; j < s; j++) values.push(doc += ids[r * s + j]!);
      }
      inputs.push({ shape: [b, s], dtype: "i32", values });
    }
    const attrs: AttentionAttrs = {
      mask: mask.mask,
      scale: 1 / Math.sqrt(d),
      queryOffset: offset && s > l ? s - l : 0,
      hasKeyValid: keyValid,
      tokenArrays: mask.tokenArrays.length,
      // half the calls also return the DP statistics, an output the VJP ignores
      dpStats: seed % 2 === 1,
    };
    return { inputs, attrs, reduce: s * d, wrt: [0, 1, 2], outputs: [0] };
  });

const attentionElsewhere = "tests/tensor/attention_webgpu_test.ts";

/** DP statistics: q [B, H, L, D], k [B, Hk, S, D], optional key padding. */
const dpStats: CaseGen = (mode) =>
  fc.record({
    b: fc.integer({ min: 1, max: 2 }),
    hk: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 3 }),
    l: fc.integer({ min: 1, max: 9 }),
    d: fc.integer({ min: 1, max: 8 }),
    keyValid: fc.boolean(),
    offset: fc.integer({ min: 0, max: 3 }),
    dtypes: fc.tuple(floatDtype(mode), floatDtype(mode)),
    seed,
  }).map(({ b, hk, group, l, d, keyValid, offset, dtypes: [dq, dk], seed }) => {
    const s = l + offset;
    const inputs: CaseInput[] = [
      input([b, hk * group, l, d], dq, seed),
      input([b, hk, s, d], dk, seed + 1),
    ];
    if (keyValid) {
      inputs.push({
        shape: [b, s],
        dtype: "i32",
        values: seededValues(b * s, seed + 3, 0, 1).map((u) => (u < 0.8 ? 1 : 0)),
      });
    }
    return {
      inputs,
      attrs: { scale: 1 / Math.sqrt(d), queryOffset: offset, hasKeyValid: keyValid },
      reduce: s * d,
    };
  });

/**
 * x nonzero, so a mask that differs between backends shows as a value error far beyond the
 * tolerance; seeds over the whole u32 range.
 */
const dropout: CaseGen = (mode) =>
  fc.record({
    shape: shape(),
    dtype: floatDtype(mode),
    p: fc.constantFrom(0, 0.1, 0.5, 0.9),
    maskSeed: fc.integer({ min: 0, max: 0xffffffff }),
    seed,
  }).map(({ shape, dtype, p, maskSeed, seed }) => ({
    inputs: [input(shape, dtype, seed, "nonzero")],
    attrs: { p, seed: maskSeed },
    reduce: 1,
  }));

/** p, g, m and v ≥ 0 (f32 only: the op rejects other dtypes), with and without a grad scale. */
const adamw: CaseGen = () =>
  fc.record({
    shape: shape(),
    lr: fc.constantFrom(1e-3, 0.1),
    beta1: fc.constantFrom(0, 0.9),
    beta2: fc.constantFrom(0.95, 0.999),
    eps: fc.constantFrom(1e-8, 1e-3),
    weightDecay: fc.constantFrom(0, 0.01, 0.5),
    step: fc.integer({ min: 1, max: 1000 }),
    scaleShape: fc.constantFrom(null, [], [1]),
    seed,
  }).map(({ shape, scaleShape, seed, ...hyper }) => {
    const inputs = [
      input(shape, "f32", seed),
      input(shape, "f32", seed + 1),
      input(shape, "f32", seed + 2),
      input(shape, "f32", seed + 3, "positive"),
    ];
    if (scaleShape) inputs.push(input(scaleShape, "f32", seed + 4, "positive"));
    return { inputs, attrs: { ...hyper, hasGradScale: scaleShape !== null }, reduce: 1 };
  });

/** Every op of the registry: its random calls, or where its WebGPU conformance lives. */
export const opCases = {
  neg: { cases: unary("any", true) },
  abs: { cases: unary("nonzero", true) },
  exp: { cases: unary("any") },
  log: { cases: unary("positive") },
  sqrt: { cases: unary("positive") },
  rsqrt: { cases: unary("positive") },
  tanh: { cases: unary("any") },
  sigmoid: { cases: unary("wide") },
  silu: { cases: unary("wide") },
  sin: { cases: unary("any") },
  cos: { cases: unary("any") },
  add: { cases: binary("any", "any", true) },
  sub: { cases: binary("any", "any", true) },
  mul: { cases: binary("any", "any", true) },
  div: { cases: binary("any", "nonzero", false) },
  pow: { cases: binary("positive", "any", false) },
  // ties (grid values) only where no derivative is taken: the VJP splits a tie one way
  maximum: { cases: binary("any", "any", true, "grid") },
  minimum: { cases: binary("any", "any", true, "grid") },
  lt: { cases: compare },
  le: { cases: compare },
  gt: { cases: compare },
  ge: { cases: compare },
  eq: { cases: compare },
  ne: { cases: compare },
  where: { cases: where },
  cast: { cases: cast },
  full: { cases: full },
  reshape: { cases: reshape },
  permute: { cases: permute },
  slice: { cases: slice },
  pad: { cases: pad },
  broadcastTo: { cases: broadcastTo },
  sum: { cases: reduction("any") },
  max: { cases: reduction("any") },
  matmul: { cases: matmul, webgpuTestedIn: "tests/tensor/matmul_webgpu_test.ts" },
  gather: { cases: gather },
  scatterAdd: { cases: scatterAdd },
  softmax: { cases: softmax },
  rmsNorm: { cases: rmsNorm },
  rope: { cases: rope },
  crossEntropy: { cases: crossEntropyCase(false) },
  crossEntropyGrad: { cases: crossEntropyCase(true) },
  attention: { cases: attention, webgpuTestedIn: attentionElsewhere },
  attentionBackward: { webgpuTestedIn: attentionElsewhere },
  dpStats: { cases: dpStats },
  dropout: { cases: dropout },
  adamw: { cases: adamw },
} satisfies Record<OpName, OpCases>;
