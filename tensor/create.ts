// Creating tensors: from host data, constants, ranges and the seeded PRNG.
import { defaultDevice } from "./backend.ts";
import type { Device, HostArray } from "./device.ts";
import type { DType } from "./dtype.ts";
import { full as fullOn } from "./ops/fill.ts";
import { Rng } from "./random.ts";
import { checkShape } from "./shape.ts";
import { fmtShape, sizeOf, Tensor } from "./tensor.ts";

/** Where and how to create a tensor. */
export interface CreateOptions {
  dtype?: DType;
  device?: Device;
}

type Nested = number | readonly Nested[];

/**
 * A tensor from host values: a flat typed array or number array with a shape, or nested
 * arrays (shape inferred). Default dtype f32 (i32 for an Int32Array).
 * @example
 * const a = tensor([[1, 2], [3, 4]]);
 * const b = tensor(new Float32Array(6), [2, 3]);
 */
export function tensor(
  values: Nested | HostArray,
  shape?: readonly number[],
  options: CreateOptions = {},
): Tensor {
  const device = options.device ?? defaultDevice();
  const dtype = options.dtype ?? (values instanceof Int32Array ? "i32" : "f32");
  let flat: HostArray;
  let inferred: number[];
  if (ArrayBuffer.isView(values)) {
    flat = values;
    inferred = [values.length];
  } else {
    inferred = nestedShape(values);
    const list = typeof values === "number" ? [values] : flatten(values);
    flat = dtype === "i32" ? Int32Array.from(list) : Float32Array.from(list);
  }
  const finalShape = shape ?? inferred;
  checkShape("tensor", finalShape);
  if (sizeOf(finalShape) !== flat.length) {
    throw new Error(`tensor: ${flat.length} values do not fill shape ${fmtShape(finalShape)}`);
  }
  if (flat instanceof Uint16Array && dtype !== "bf16" && dtype !== "f16") {
    throw new Error(`tensor: a Uint16Array holds bf16/f16 bits, not ${dtype}`);
  }
  if (dtype === "i32" && flat instanceof Float32Array) flat = Int32Array.from(flat, Math.trunc);
  if (dtype !== "i32" && flat instanceof Int32Array) flat = Float32Array.from(flat);
  return new Tensor(finalShape, dtype, device, device.upload(flat, dtype));
}

function flatten(values: Nested): number[] {
  const out: number[] = [];
  const walk = (v: Nested) => (typeof v === "number" ? out.push(v) : v.forEach(walk));
  walk(values);
  return out;
}

function nestedShape(values: Nested): number[] {
  const shape: number[] = [];
  let v: Nested = values;
  while (Array.isArray(v)) {
    shape.push(v.length);
    v = v[0] as Nested;
  }
  return shape;
}

/** A tensor filled with `value`. */
export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  return fullOn(shape, value, options.dtype ?? "f32", options.device ?? defaultDevice());
}

/** Zeros. */
export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return full(shape, 0, options);
}

/** Ones. */
export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return full(shape, 1, options);
}

/** [start, start+step, …) below `end`; i32 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  const [lo, hi] = end === undefined ? [0, start] : [start, end];
  const n = Math.max(0, Math.ceil((hi - lo) / step));
  const dtype = options.dtype ?? "i32";
  const values = Array.from({ length: n }, (_, i) => lo + i * step);
  return tensor(dtype === "i32" ? Int32Array.from(values) : Float32Array.from(values), [n], {
    ...options,
    dtype,
  });
}

/** Options of the random creators. */
export interface RandomOptions extends CreateOptions {
  /** PRNG seed (xoshiro128**, see tensor/random.ts). Default 0. */
  seed?: number;
}

/** Normal samples with mean `mean` and standard deviation `std`. */
export function randomNormal(
  shape: readonly number[],
  options: RandomOptions & { mean?: number; std?: number } = {},
): Tensor {
  checkShape("randomNormal", shape);
  const rng = new Rng(options.seed ?? 0);
  const m = options.mean ?? 0, s = options.std ?? 1;
  const values = new Float32Array(sizeOf(shape));
  for (let i = 0; i < values.length; i++) values[i] = m + s * rng.normal();
  return tensor(values, shape, options);
}

/** Uniform samples in [low, high). */
export function randomUniform(
  shape: readonly number[],
  options: RandomOptions & { low?: number; high?: number } = {},
): Tensor {
  checkShape("randomUniform", shape);
  const rng = new Rng(options.seed ?? 0);
  const lo = options.low ?? 0, hi = options.high ?? 1;
  const values = new Float32Array(sizeOf(shape));
  for (let i = 0; i < values.length; i++) values[i] = lo + (hi - lo) * rng.uniform();
  return tensor(values, shape, options);
}
