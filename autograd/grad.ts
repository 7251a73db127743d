// Reverse-mode autodiff as functions over pytrees (DESIGN 4). A tape exists only while a
// transformation runs `f`; plain calls record nothing (the inference path). Tapes nest: the
// ops a VJP rule runs are recorded by enclosing tapes, which gives higher derivatives.
import { add } from "../tensor/ops/elementwise.ts";
import { full } from "../tensor/ops/fill.ts";
import {
  apply1,
  changeTracingDepth,
  nonDifferentiable,
  type OpDef,
  setRecordHook,
} from "../tensor/op.ts";
import { leaves, mapTensors, type PyTree, unflatten } from "../tensor/pytree.ts";
import { scope } from "../tensor/scope.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";

interface Entry {
  def: OpDef;
  inputs: readonly Tensor[];
  outputs: readonly Tensor[];
  attrs: unknown;
}

class Tape {
  readonly entries: Entry[] = [];
  readonly tracked = new Set<Tensor>();
  recording = true;
}

const tapes: Tape[] = [];

setRecordHook((def, inputs, outputs, attrs) => {
  for (const tape of tapes) {
    if (!tape.recording || def.vjp === nonDifferentiable) continue;
    if (!inputs.some((t) => tape.tracked.has(t))) continue;
    tape.entries.push({ def, inputs, outputs, attrs });
    for (const o of outputs) tape.tracked.add(o);
  }
});

/** Identity whose output gets no gradient. */
const stopGradientOp: OpDef<Record<never, never>> = {
  name: "stopGradient",
  view: true,
  infer: ([x]) => [{ shape: x!.shape, dtype: x!.dtype }],
  reference: ([x]) => [x!.values],
  webgpu: (_gpu, [x]) => [x!.storage],
  vjp: () => [undefined],
};

/** `x` with its gradient cut: treated as a constant by every transformation. */
export function stopGradient(x: Tensor): Tensor {
  return apply1(stopGradientOp, [x], {});
}

/** Fresh tensors sharing the leaves' storage, so the tape can tell them apart. */
function alias<T>(tree: T): T {
  return mapTensors(tree, (t) => new Tensor(t.shape, t.dtype, t.device, t.storage));
}

/**
 * Run `f(...primals)` and return its output and a function that maps output cotangents
 * (a pytree like the output) to the primals' cotangents (a pytree like `primals`). Call
 * the backward function before the enclosing scope ends: it needs the intermediates.
 * @example
 * const [y, back] = vjp((x) => mul(x, x), x);
 * const [dx] = back(ones(y.shape));
 */
export function vjp<P extends PyTree[], R extends PyTree>(
  f: (...primals: P) => R,
  ...primals: P
): [R, (cotangents: R) => P] {
  const tape = new Tape();
  const inputs = alias(primals);
  for (const t of leaves(inputs)) tape.tracked.add(t);
  tapes.push(tape);
  changeTracingDepth(1);
  let out: R;
  try {
    out = f(...inputs);
  } finally {
    tapes.splice(tapes.indexOf(tape), 1);
    changeTracingDepth(-1);
  }
  const back = (cotangents: R): P => {
    const ct = new Map<Tensor, Tensor>();
    const outLeaves = leaves(out), ctLeaves = leaves(cotangents);
    if (outLeaves.length !== ctLeaves.length) {
      throw new Error(`vjp: output has ${outLeaves.length} tensors, cotangents ${ctLeaves.length}`);
    }
    outLeaves.forEach((o, i) => accumulate(ct, o, ctLeaves[i]!));
    backprop(tape, ct);
    return unflatten(
      inputs,
      leaves(inputs).map((t) => ct.get(t) ?? full(t.shape, 0, "f32", t.device)),
    ) as P;
  };
  return [out, back];
}

function accumulate(ct: Map<Tensor, Tensor>, t: Tensor, g: Tensor): void {
  const prev = ct.get(t);
  ct.set(t, prev ? add(prev, g) : g);
}

function backprop(tape: Tape, ct: Map<Tensor, Tensor>): void {
  tape.recording = false;
  try {
    for (let e = tape.entries.length - 1; e >= 0; e--) {
      const { def, inputs, outputs, attrs } = tape.entries[e]!;
      const gOut = outputs.map((o) => ct.get(o));
      if (gOut.every((g) => g === undefined)) continue;
      if (def.vjp === nonDifferentiable) continue;
      const needsGrad = inputs.map((x) => tape.tracked.has(x));
      const gIn = def.vjp(gOut, { inputs, outputs, attrs, needsGrad });
      inputs.forEach((x, i) => {
        const g = gIn[i];
        if (g === undefined || !tape.tracked.has(x)) return;
        if (g.shape.length !== x.shape.length || g.shape.some((n, d) => n !== x.shape[d])) {
          throw new Error(
            `${def.name}: VJP gave ${fmtShape(g.shape)} for input ${fmtShape(x.shape)}`,
          );
        }
        accumulate(ct, x, g);
      });
    }
  } finally {
    tape.recording = true;
  }
}

/**
 * `valueAndGrad(f)(params, ...rest)` → `[f(params, ...rest), ∂f/∂params]`: f returns a
 * one-element tensor; the gradient is a pytree like `params`. Only `params` is
 * differentiated (freezing = passing frozen weights in `rest`). Intermediates are freed
 * before it returns.
 * @example
 * const [loss, grads] = valueAndGrad(lossFn)(trainable, frozen, batch);
 */
export function valueAndGrad<P extends PyTree, A extends unknown[]>(
  f: (params: P, ...rest: A) => Tensor,
): (params: P, ...rest: A) => [Tensor, P] {
  return (params, ...rest) =>
    scope(() => {
      const [value, back] = vjp((p: P) => f(p, ...rest), params);
      if (!(value instanceof Tensor) || value.size !== 1) {
        throw new Error(`valueAndGrad: f must return a one-element tensor, got ${String(value)}`);
      }
      const [grads] = back(full(value.shape, 1, "f32", value.device) as never);
      return [value, grads] as [Tensor, P];
    });
}

/** `grad(f)(params, ...rest)` → ∂f/∂params (see `valueAndGrad`). */
export function grad<P extends PyTree, A extends unknown[]>(
  f: (params: P, ...rest: A) => Tensor,
): (params: P, ...rest: A) => P {
  const vg = valueAndGrad(f);
  return (params, ...rest) =>
    scope(() => {
      const [, g] = vg(params, ...rest);
      return g;
    });
}
