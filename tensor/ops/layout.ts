// Layout ops: reshape (a view: shares storage), and the copies permute / slice / pad /
// broadcastTo / concat. permute, slice, pad and broadcastTo are all one strided copy (see
// `StridedCopy`), so each backend needs a single kernel for them.
import {
  apply1,
  fail,
  floats,
  type Meta,
  type OpDef,
  type RefArray,
  type RefInput,
} from "../op.ts";
import { normAxis, stridesOf } from "../shape.ts";
import { fmtShape, sizeOf, type Tensor } from "../tensor.ts";
import { add } from "./elementwise.ts";
import { sum } from "./reduce.ts";

/**
 * out[c] = inside ? in[offset + Σ_d (c_d + shift_d)·stride_d] : 0, where
 * inside = every 0 ≤ c_d + shift_d < limit_d. One rule for permute (strides reordered),
 * slice (shift = start), pad (shift = −before, limit = input size) and broadcast (stride 0).
 */
export interface StridedCopy {
  readonly stride: readonly number[];
  readonly shift: readonly number[];
  readonly limit: readonly number[];
}

const noLimit = 2 ** 31 - 1;

/** The reference strided copy. */
export function stridedCopyRef(x: RefInput, out: Meta, copy: StridedCopy): RefArray {
  const n = sizeOf(out.shape);
  const res = x.dtype === "i32" ? new Int32Array(n) : floats(n);
  const rank = out.shape.length;
  const coord = new Array<number>(rank).fill(0);
  for (let o = 0; o < n; o++) {
    let src = 0;
    let inside = true;
    for (let d = 0; d < rank; d++) {
      const t = coord[d]! + copy.shift[d]!;
      if (t < 0 || t >= copy.limit[d]!) inside = false;
      src += t * copy.stride[d]!;
    }
    res[o] = inside ? x.values[src]! : 0;
    for (let d = rank - 1; d >= 0; d--) {
      if (++coord[d]! < out.shape[d]!) break;
      coord[d] = 0;
    }
  }
  return res;
}

function copyOp<A>(
  name: string,
  infer: (x: Meta, attrs: A) => number[],
  plan: (x: Meta, attrs: A, out: Meta) => StridedCopy,
  vjp: (g: Tensor, x: Tensor, attrs: A) => Tensor,
): OpDef<A> {
  return {
    name,
    infer: ([x], attrs) => [{ shape: infer(x!, attrs), dtype: x!.dtype === "i32" ? "i32" : "f32" }],
    reference: ([x], attrs, [out]) => [stridedCopyRef(x!, out!, plan(x!, attrs, out!))],
    webgpu: (gpu, [x], attrs, [out]) => [gpu.copy(x!, out!, plan(x!, attrs, out!))],
    vjp: ([g], { inputs: [x], attrs }) => [g && vjp(g, x!, attrs)],
  };
}

// ---------------------------------------------------------------- reshape

/** Same elements, new shape; shares storage (no copy). One dimension may be -1. */
export const reshapeOp: OpDef<{ shape: readonly number[] }> & { view: true } = {
  name: "reshape",
  view: true,
  infer([x], { shape }) {
    return [{ shape: resolveShape(x!, shape), dtype: x!.dtype }];
  },
  reference: ([x]) => [x!.values],
  webgpu: (_gpu, [x]) => [x!.storage],
  vjp: ([g], { inputs: [x] }) => [g && reshape(g, x!.shape)],
};

function resolveShape(x: Meta, shape: readonly number[]): number[] {
  const n = sizeOf(x.shape);
  const known = shape.filter((d) => d !== -1);
  const holes = shape.length - known.length;
  const bad = () => fail("reshape", `cannot reshape ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  if (holes > 1 || !known.every((d) => Number.isInteger(d) && d >= 0)) bad();
  const k = sizeOf(known);
  if (holes === 1) {
    if (k === 0 || n % k !== 0) bad();
    return shape.map((d) => (d === -1 ? n / k : d));
  }
  if (k !== n) bad();
  return [...shape];
}

/** View `x` with a new shape of the same size (one entry may be -1). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  return apply1(reshapeOp, [x], { shape });
}

// ---------------------------------------------------------------- permute

/** Reorder axes: output axis d is input axis `axes[d]`. */
export const permuteOp = copyOp<{ axes: readonly number[] }>(
  "permute",
  (x, { axes }) => {
    const r = x.shape.length;
    const seen = new Set(axes);
    if (
      axes.length !== r || seen.size !== r ||
      !axes.every((a) => Number.isInteger(a) && a >= 0 && a < r)
    ) {
      fail(
        "permute",
        `axes [${axes.join(",")}] are not a permutation of rank ${r} ${fmtShape(x.shape)}`,
      );
    }
    return axes.map((a) => x.shape[a]!);
  },
  (x, { axes }) => {
    const s = stridesOf(x.shape);
    return {
      stride: axes.map((a) => s[a]!),
      shift: axes.map(() => 0),
      limit: axes.map(() => noLimit),
    };
  },
  (g, _x, { axes }) => {
    const inverse = new Array<number>(axes.length);
    axes.forEach((a, d) => (inverse[a] = d));
    return permute(g, inverse);
  },
);

/** Reorder axes (`axes[d]` is the input axis that becomes axis d). */
export function permute(x: Tensor, axes: readonly number[]): Tensor {
  return apply1(permuteOp, [x], { axes });
}

/** Swap two axes (default: the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const r = x.rank;
  const ia = normAxis("transpose", a, r), ib = normAxis("transpose", b, r);
  const axes = [...Array(r).keys()];
  axes[ia] = ib;
  axes[ib] = ia;
  return permute(x, axes);
}

// ---------------------------------------------------------------- slice and pad

interface SliceAttrs {
  start: readonly number[];
  end: readonly number[];
}

/** x[start:end] per axis (step 1). */
export const sliceOp = copyOp<SliceAttrs>(
  "slice",
  (x, { start, end }) => {
    const r = x.shape.length;
    if (start.length !== r || end.length !== r) {
      fail("slice", `start/end need ${r} entries for ${fmtShape(x.shape)}`);
    }
    return x.shape.map((n, d) => {
      const s = start[d]!, e = end[d]!;
      if (!(Number.isInteger(s) && Number.isInteger(e) && 0 <= s && s <= e && e <= n)) {
        fail("slice", `range [${s}, ${e}) out of bounds for axis ${d} of ${fmtShape(x.shape)}`);
      }
      return e - s;
    });
  },
  (x, { start }) => ({
    stride: stridesOf(x.shape),
    shift: [...start],
    limit: x.shape.map(() => noLimit),
  }),
  (g, x, { start, end }) => pad(g, start, x.shape.map((n, d) => n - end[d]!)),
);

/**
 * Take `x[start:end]` along each axis; `end` entries may be omitted (to the end) and
 * negative values count from the end.
 */
export function slice(
  x: Tensor,
  start: readonly number[],
  end?: readonly (number | undefined)[],
): Tensor {
  const norm = (v: number, n: number) => (v < 0 ? v + n : v);
  const s = x.shape.map((n, d) => norm(start[d] ?? 0, n));
  const e = x.shape.map((n, d) => norm(end?.[d] ?? n, n));
  return apply1(sliceOp, [x], { start: s, end: e });
}

interface PadAttrs {
  before: readonly number[];
  after: readonly number[];
}

/** Zero padding. */
export const padOp = copyOp<PadAttrs>(
  "pad",
  (x, { before, after }) => {
    const r = x.shape.length;
    if (
      before.length !== r || after.length !== r ||
      ![...before, ...after].every((p) => Number.isInteger(p) && p >= 0)
    ) {
      fail("pad", `before/after need ${r} non-negative entries for ${fmtShape(x.shape)}`);
    }
    return x.shape.map((n, d) => before[d]! + n + after[d]!);
  },
  (x, { before }) => ({
    stride: stridesOf(x.shape),
    shift: before.map((b) => -b),
    limit: [...x.shape],
  }),
  (g, x, { before }) => slice(g, before, x.shape.map((n, d) => before[d]! + n)),
);

/** Pad with zeros: `before[d]` in front of and `after[d]` behind axis d. */
export function pad(x: Tensor, before: readonly number[], after: readonly number[]): Tensor {
  return apply1(padOp, [x], { before, after });
}

// ---------------------------------------------------------------- broadcast and concat

/** Broadcast to a larger shape (numpy rules). */
export const broadcastToOp = copyOp<{ shape: readonly number[] }>(
  "broadcastTo",
  (x, { shape }) => {
    const lead = shape.length - x.shape.length;
    const ok = lead >= 0 && x.shape.every((n, i) => n === 1 || n === shape[lead + i]);
    if (!ok) fail("broadcastTo", `cannot broadcast ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
    return [...shape];
  },
  (x, { shape }) => {
    const lead = shape.length - x.shape.length;
    const s = stridesOf(x.shape);
    return {
      stride: shape.map((_, d) => (d < lead || x.shape[d - lead] === 1 ? 0 : s[d - lead]!)),
      shift: shape.map(() => 0),
      limit: shape.map(() => noLimit),
    };
  },
  (g, x) => {
    const lead = g.rank - x.rank;
    const axes = g.shape.map((_, d) => d).filter((d) =>
      d < lead || (x.shape[d - lead] === 1 && g.shape[d] !== 1)
    );
    return reshape(axes.length ? sum(g, axes) : g, x.shape);
  },
);

/** Broadcast `x` to `shape`. */
export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  return apply1(broadcastToOp, [x], { shape });
}

/** Join tensors along an axis (a sum of zero-padded copies, so it needs no kernel of its own). */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  const first = xs[0];
  if (!first) throw new Error("concat: no tensors");
  const ax = normAxis("concat", axis, first.rank);
  for (const x of xs) {
    const ok = x.rank === first.rank && x.dtype === first.dtype &&
      x.shape.every((n, d) => d === ax || n === first.shape[d]);
    if (!ok) {
      fail(
        "concat",
        `shapes differ off axis ${ax}: ${fmtShape(first.shape)} ${first.dtype} vs ${
          fmtShape(x.shape)
        } ${x.dtype}`,
      );
    }
  }
  if (xs.length === 1) return first;
  const total = xs.reduce((n, x) => n + x.shape[ax]!, 0);
  let offset = 0;
  let out: Tensor | undefined;
  for (const x of xs) {
    const before = x.shape.map((_, d) => (d === ax ? offset : 0));
    const after = x.shape.map((_, d) => (d === ax ? total - offset - x.shape[ax]! : 0));
    offset += x.shape[ax]!;
    const piece = pad(x, before, after);
    out = out ? add(out, piece) : piece;
  }
  return out!;
}
