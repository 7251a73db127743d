import type { Device, Storage } from "./device.ts";
import type { DType } from "./dtype.ts";
import { fmtShape, Tensor } from "./tensor.ts";
import type { Gpu } from "./webgpu/gpu.ts";

/** Shape and dtype of a tensor, as shape rules see it. */
export interface Meta {
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** Values as reference kernels see them: floats in f32 (or f64 on the f64 reference), or i32. */
export type RefArray = Float32Array | Float64Array | Int32Array;

/** What a reference kernel receives: the values upcast to f32/f64 (floats) or i32. */
export interface RefInput {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly values: RefArray;
}

// The reference backend's float precision for the op running now: f32 normally, f64 on the
// f64 reference device that the finite-difference checks use.
let wide = false;

/** Run `fn` with reference kernels producing f64 floats. */
export function withF64<T>(fn: () => T): T {
  const prev = wide;
  wide = true;
  try {
    return fn();
  } finally {
    wide = prev;
  }
}

/** A zeroed float array for a reference kernel's output (f32, or f64 on the f64 reference). */
export function floats(n: number): Float32Array | Float64Array {
  return wide ? new Float64Array(n) : new Float32Array(n);
}

/** A float output array from values (f32, or f64 on the f64 reference). */
export function floatsFrom(values: ArrayLike<number>): Float32Array | Float64Array {
  return wide ? Float64Array.from(values) : Float32Array.from(values);
}

/** What a VJP rule sees of the forward call. */
export interface VjpContext<A> {
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly attrs: A;
  /** Which inputs want a cotangent: a rule may skip the work for the others (frozen weights). */
  readonly needsGrad: readonly boolean[];
}

/**
 * A VJP rule: from the cotangents of the outputs (undefined where an output got none), the
 * cotangent of each input (undefined where it gets none). Written with ops, so it runs on
 * either backend.
 */
export type VjpRule<A> = (
  cotangents: readonly (Tensor | undefined)[],
  ctx: VjpContext<A>,
) => readonly (Tensor | undefined)[];

/** Marks an op without a derivative on purpose (comparisons, integer ops). */
export const nonDifferentiable = "nonDifferentiable" as const;

/**
 * One op, defined once (DESIGN 2.2): shape/dtype rule, reference loops (the spec), WebGPU
 * lowering and VJP rule side by side.
 */
export interface OpDef<A = any> {
  readonly name: string;
  /** Validate inputs and give the outputs' shapes and dtypes; errors name the op and shapes. */
  infer(inputs: readonly Meta[], attrs: A): Meta[];
  /** Plain-TypeScript kernel with f64 accumulation: the executable specification. */
  reference(inputs: readonly RefInput[], attrs: A, outs: readonly Meta[]): RefArray[];
  /** WebGPU lowering: encodes dispatches and returns the output storages. */
  webgpu(gpu: Gpu, inputs: readonly Tensor[], attrs: A, outs: readonly Meta[]): Storage[];
  /** Cotangent rule, or `nonDifferentiable`. */
  readonly vjp: VjpRule<A> | typeof nonDifferentiable;
  /** The output is a view of input 0's storage (reshape): no kernel runs. */
  readonly view?: true;
}

let tracingDepth = 0;

/** Called by autograd when a tape starts (+1) or ends (−1) recording. */
export function changeTracingDepth(delta: number): void {
  tracingDepth += delta;
}

/**
 * True while a transformation records ops: intermediates must then live until its backward
 * pass, so code that frees them early (per-layer scopes in inference) must not.
 */
export function isTracing(): boolean {
  return tracingDepth > 0;
}

type Hook = (
  def: OpDef,
  inputs: readonly Tensor[],
  outputs: readonly Tensor[],
  attrs: unknown,
) => void;
let recordHook: Hook | null = null;

/** Installs the autograd recorder (autograd/ calls this; one recorder at a time). */
export function setRecordHook(hook: Hook | null): Hook | null {
  const previous = recordHook;
  recordHook = hook;
  return previous;
}

/** Run an op: check its inputs, dispatch to their device, record it for autograd if tracing. */
export function apply<A>(
  def: OpDef<A>,
  inputs: readonly Tensor[],
  attrs: A,
  device: Device = commonDevice(def.name, inputs),
): Tensor[] {
  if (inputs.length) commonDevice(def.name, inputs);
  const outs = def.infer(inputs, attrs);
  const storages = def.view ? [inputs[0]!.storage] : device.run(def, inputs, attrs, outs);
  const outputs = storages.map((s, i) => new Tensor(outs[i]!.shape, outs[i]!.dtype, device, s));
  recordHook?.(def, inputs, outputs, attrs);
  return outputs;
}

/** `apply` for single-output ops. */
export function apply1<A>(
  def: OpDef<A>,
  inputs: readonly Tensor[],
  attrs: A,
  device?: Device,
): Tensor {
  return apply(def, inputs, attrs, device)[0]!;
}

function commonDevice(op: string, inputs: readonly Tensor[]): Device {
  const first = inputs[0];
  if (first === undefined) throw new Error(`${op}: no inputs`);
  for (const t of inputs) {
    if (!t.alive) throw new Error(`${op}: input ${fmtShape(t.shape)} ${t.dtype} was disposed`);
    if (t.device !== first.device) {
      throw new Error(
        `${op}: inputs on different devices: ${first.device.name} ${
          fmtShape(first.shape)
        } vs ${t.device.name} ${fmtShape(t.shape)}`,
      );
    }
  }
  return first.device;
}

/** Throw `op: message` (the one error format of shape rules). */
export function fail(op: string, message: string): never {
  throw new Error(`${op}: ${message}`);
}
