import { fail } from "./op.ts";
import { fmtShape, sizeOf } from "./tensor.ts";

/** Row-major strides of a shape, in elements. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}

/** Numpy broadcasting of several shapes; the error names the op and every shape. */
export function broadcastShapes(op: string, shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let i = 0; i < s.length; i++) {
      const d = rank - s.length + i;
      const a = out[d]!, b = s[i]!;
      if (a === b || b === 1) continue;
      if (a === 1) out[d] = b;
      else fail(op, `shapes do not broadcast: ${shapes.map(fmtShape).join(" vs ")}`);
    }
  }
  return out;
}

/**
 * For each output element, the index of the input element it reads when `inShape` is
 * broadcast to `outShape` (the reference backend's broadcasting).
 */
export function broadcastIndex(
  inShape: readonly number[],
  outShape: readonly number[],
): Int32Array {
  const n = sizeOf(outShape);
  const out = new Int32Array(n);
  const rank = outShape.length;
  const inStrides = stridesOf(inShape);
  const strides = new Array<number>(rank).fill(0);
  for (let i = 0; i < inShape.length; i++) {
    const d = rank - inShape.length + i;
    strides[d] = inShape[i] === 1 ? 0 : inStrides[i]!;
  }
  const coord = new Array<number>(rank).fill(0);
  let offset = 0;
  for (let o = 0; o < n; o++) {
    out[o] = offset;
    for (let d = rank - 1; d >= 0; d--) {
      coord[d]!++;
      offset += strides[d]!;
      if (coord[d]! < outShape[d]!) break;
      offset -= strides[d]! * coord[d]!;
      coord[d] = 0;
    }
  }
  return out;
}

/** Normalise a possibly negative axis; the error names the op. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    fail(op, `axis ${axis} out of range for rank ${rank}`);
  }
  return a;
}

/** True when two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Validate a shape given by a user (non-negative integers). */
export function checkShape(op: string, shape: readonly number[]): void {
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    fail(op, `invalid shape ${fmtShape(shape)}`);
  }
}
