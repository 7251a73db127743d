// Reductions over axes: sum and max are primitives; mean and logsumexp are compositions.
import { computeType } from "../dtype.ts";
import {
  apply1,
  fail,
  floatsFrom,
  type Meta,
  type OpDef,
  type RefArray,
  type RefInput,
} from "../op.ts";
import { normAxis, stridesOf } from "../shape.ts";
import { fmtShape, sizeOf, type Tensor } from "../tensor.ts";
import { add, div, eq, exp, log, mul, sub, where } from "./elementwise.ts";
import { full } from "./fill.ts";
import { broadcastTo, reshape } from "./layout.ts";

interface ReduceAttrs {
  /** Sorted, non-negative, distinct axes. */
  axes: readonly number[];
  keepDims: boolean;
}

function reducedShape(shape: readonly number[], { axes, keepDims }: ReduceAttrs): number[] {
  return keepDims
    ? shape.map((n, d) => (axes.includes(d) ? 1 : n))
    : shape.filter((_, d) => !axes.includes(d));
}

/** The reference reduction: fold every input element into its output slot in f64. */
function reduceRef(
  x: RefInput,
  { axes }: ReduceAttrs,
  out: Meta,
  init: number,
  fold: (acc: number, v: number) => number,
): RefArray {
  const n = sizeOf(out.shape);
  const acc = new Float64Array(n).fill(init);
  const rank = x.shape.length;
  const keptStrides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let d = rank - 1; d >= 0; d--) {
    if (!axes.includes(d)) {
      keptStrides[d] = s;
      s *= x.shape[d]!;
    }
  }
  const coord = new Array<number>(rank).fill(0);
  let o = 0;
  for (let i = 0; i < x.values.length; i++) {
    acc[o] = fold(acc[o]!, x.values[i]!);
    for (let d = rank - 1; d >= 0; d--) {
      coord[d]!++;
      o += keptStrides[d]!;
      if (coord[d]! < x.shape[d]!) break;
      o -= keptStrides[d]! * coord[d]!;
      coord[d] = 0;
    }
  }
  return out.dtype === "i32" ? Int32Array.from(acc) : floatsFrom(acc);
}

/**
 * The WebGPU reduction: move the reduced axes last (a copy only when they are not already
 * last), then reduce contiguous rows.
 */
function reduceGpu(kind: "sum" | "max") {
  return (
    gpu: Parameters<OpDef["webgpu"]>[0],
    [x]: readonly Tensor[],
    { axes }: ReduceAttrs,
    [out]: readonly Meta[],
  ) => {
    const rank = x!.rank;
    const kept = [...Array(rank).keys()].filter((d) => !axes.includes(d));
    const order = [...kept, ...axes];
    const cols = axes.reduce((n, d) => n * x!.shape[d]!, 1);
    const rows = sizeOf(out!.shape);
    const inOrder = order.every((d, i) => d === i);
    if (inOrder) return [gpu.reduceRows(kind, x!, rows, cols, out!)];
    const permutedShape = order.map((d) => x!.shape[d]!);
    const s = stridesOf(x!.shape);
    const tmpMeta: Meta = { shape: permutedShape, dtype: computeType(x!.dtype) };
    const tmp = gpu.copy(x!, tmpMeta, {
      stride: order.map((d) => s[d]!),
      shift: order.map(() => 0),
      limit: order.map(() => 2 ** 31 - 1),
    });
    const result = gpu.reduceRows(
      kind,
      { storage: tmp, shape: permutedShape, dtype: tmpMeta.dtype },
      rows,
      cols,
      out!,
    );
    gpu.free(tmp);
    return [result];
  };
}

function reduceInfer(name: string) {
  return ([x]: readonly Meta[], attrs: ReduceAttrs): Meta[] => {
    for (const a of attrs.axes) {
      if (!Number.isInteger(a) || a < 0 || a >= x!.shape.length) {
        fail(name, `axis ${a} out of range for ${fmtShape(x!.shape)}`);
      }
    }
    return [{ shape: reducedShape(x!.shape, attrs), dtype: computeType(x!.dtype) }];
  };
}

/** Restore reduced axes as size-1 dims and broadcast back to `x`'s shape. */
function expandBack(g: Tensor, x: Tensor, attrs: ReduceAttrs): Tensor {
  return broadcastTo(reshape(g, reducedShape(x.shape, { ...attrs, keepDims: true })), x.shape);
}

/** Sum over axes. */
export const sumOp: OpDef<ReduceAttrs> = {
  name: "sum",
  infer: reduceInfer("sum"),
  reference: ([x], attrs, [out]) => [reduceRef(x!, attrs, out!, 0, (a, v) => a + v)],
  webgpu: reduceGpu("sum"),
  vjp: ([g], { inputs: [x], attrs }) => [g && expandBack(g, x!, attrs)],
};

/** Maximum over axes; the cotangent is shared equally among tied maxima (as JAX). */
export const maxOp: OpDef<ReduceAttrs> = {
  name: "max",
  infer: reduceInfer("max"),
  reference: ([x], attrs, [out]) => [reduceRef(x!, attrs, out!, -Infinity, Math.max)],
  webgpu: reduceGpu("max"),
  vjp: ([g], { inputs: [x], outputs: [y], attrs }) => {
    if (!g) return [undefined];
    const isMax = eq(x!, expandBack(y!, x!, attrs));
    const zero = full([], 0, "f32", x!.device);
    const mask = where(isMax, full([], 1, "f32", x!.device), zero);
    const count = expandBack(sum(mask, attrs.axes, attrs.keepDims), x!, attrs);
    return [div(mul(mask, expandBack(g, x!, attrs)), count)];
  },
};

function normAxes(op: string, x: Tensor, axes?: number | readonly number[]): number[] {
  const list = axes === undefined
    ? [...Array(x.rank).keys()]
    : typeof axes === "number"
    ? [axes]
    : axes;
  const norm = [...new Set(list.map((a) => normAxis(op, a, x.rank)))];
  return norm.sort((a, b) => a - b);
}

/** Sum over `axes` (default: all). */
export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return apply1(sumOp, [x], { axes: normAxes("sum", x, axes), keepDims });
}

/** Maximum over `axes` (default: all). */
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  return apply1(maxOp, [x], { axes: normAxes("max", x, axes), keepDims });
}

/** Mean over `axes` (default: all). */
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = normAxes("mean", x, axes);
  const n = ax.reduce((k, d) => k * x.shape[d]!, 1);
  return mul(sum(x, ax, keepDims), 1 / n);
}

/** log Σ exp over `axes`, stabilised by the maximum (whose gradient contributions cancel). */
export function logsumexp(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = normAxes("logsumexp", x, axes);
  const m = max(x, ax, true);
  const shifted = sub(x, m);
  const lse = add(log(sum(exp(shifted), ax, true)), m);
  return keepDims ? lse : reshape(lse, x.shape.filter((_, d) => !ax.includes(d)));
}
