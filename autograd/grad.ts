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
  const [out, back] = traced(f, primals);
  return [out, (cotangents) => back(cotangents, false)];
}

/**
 * `vjp`, whose backward function can also free memory as it goes (`freeAsYouGo`, for callers
 * that keep nothing but the primals' cotangents: see `backprop`).
 */
function traced<P extends PyTree[], R extends PyTree>(
  f: (...primals: P) => R,
  primals: P,
): [R, (cotangents: R, freeAsYouGo: boolean) => P] {
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
  const back = (cotangents: R, freeAsYouGo: boolean): P => {
    const ct = new Cotangents();
    const outLeaves = leaves(out), ctLeaves = leaves(cotangents);
    if (outLeaves.length !== ctLeaves.length) {
      throw new Error(`vjp: output has ${outLeaves.length} tensors, cotangents ${ctLeaves.length}`);
    }
    outLeaves.forEach((o, i) => ct.accumulate(o, ctLeaves[i]!));
    // freeing is only safe when no enclosing tape may still need these tensors
    const keep = freeAsYouGo && tapes.length === 0
      ? new Set<Tensor>([...outLeaves, ...ctLeaves, ...leaves(inputs)])
      : null;
    backprop(tape, ct, keep);
    return unflatten(
      inputs,
      leaves(inputs).map((t) => ct.get(t) ?? full(t.shape, 0, "f32", t.device)),
    ) as P;
  };
  return [out, back];
}

/** The cotangent of each tensor, counting how many tensors share each cotangent tensor. */
class Cotangents {
  readonly #of = new Map<Tensor, Tensor>();
  readonly #holders = new Map<Tensor, number>();

  get(t: Tensor): Tensor | undefined {
    return this.#of.get(t);
  }

  /** Whether `g` is some tensor's cotangent. */
  holds(g: Tensor): boolean {
    return (this.#holders.get(g) ?? 0) > 0;
  }

  /** Add `g` to t's cotangent; returns the cotangent it replaced, if any. */
  accumulate(t: Tensor, g: Tensor): Tensor | undefined {
    const prev = this.#of.get(t);
    this.#set(t, prev ? add(prev, g) : g);
    return prev;
  }

  /** Forget t's cotangent; returns it. */
  take(t: Tensor): Tensor | undefined {
    const g = this.#of.get(t);
    if (g) {
      this.#of.delete(t);
      this.#release(g);
    }
    return g;
  }

  #set(t: Tensor, g: Tensor): void {
    const prev = this.#of.get(t);
    if (prev) this.#release(prev);
    this.#of.set(t, g);
    this.#holders.set(g, (this.#holders.get(g) ?? 0) + 1);
  }

  #release(g: Tensor): void {
    const n = (this.#holders.get(g) ?? 0) - 1;
    if (n > 0) this.#holders.set(g, n);
    else this.#holders.delete(g);
  }
}

/**
 * Walk the tape backwards. With `keep` (the tensors that must survive: the function's
 * inputs and outputs and the seed cotangents), memory is freed as it goes: a VJP's own
 * temporaries when it returns, an entry's output values and their cotangents once the entry
 * is done (only later entries read a value, and they ran first), and a cotangent replaced by
 * a sum. Then peak memory is the forward's values plus the backward's frontier, not the
 * forward plus every backward temporary.
 */
function backprop(tape: Tape, ct: Cotangents, keep: Set<Tensor> | null): void {
  // every tensor the forward made or read: never freed as a cotangent
  const forward = keep ? new Set(tape.entries.flatMap((e) => [...e.inputs, ...e.outputs])) : null;
  const free = (t: Tensor | undefined) => {
    if (t && !keep!.has(t) && !ct.holds(t) && !forward!.has(t)) t.dispose();
  };
  tape.recording = false;
  try {
    for (let e = tape.entries.length - 1; e >= 0; e--) {
      const { def, inputs, outputs, attrs } = tape.entries[e]!;
      const gOut = outputs.map((o) => ct.get(o));
      const vjpRule = def.vjp;
      if (gOut.every((g) => g === undefined) || vjpRule === nonDifferentiable) {
        if (keep) release(outputs);
        continue;
      }
      const needsGrad = inputs.map((x) => tape.tracked.has(x));
      const run = () => vjpRule(gOut, { inputs, outputs, attrs, needsGrad });
      const gIn = keep ? scope(run) : run();
      const replaced: (Tensor | undefined)[] = [];
      inputs.forEach((x, i) => {
        const g = gIn[i];
        if (g === undefined || !tape.tracked.has(x)) return;
        if (g.shape.length !== x.shape.length || g.shape.some((n, d) => n !== x.shape[d])) {
          throw new Error(
            `${def.name}: VJP gave ${fmtShape(g.shape)} for input ${fmtShape(x.shape)}`,
          );
        }
        replaced.push(ct.accumulate(x, g));
      });
      if (keep) {
        for (const o of outputs) ct.take(o);
        release(outputs);
        for (const g of [...gOut, ...gIn, ...replaced]) free(g);
      }
    }
  } finally {
    tape.recording = true;
  }

  /** Free an entry's output values once the entry is done (unless kept or a cotangent). */
  function release(outputs: readonly Tensor[]): void {
    for (const o of outputs) if (!keep!.has(o) && !ct.holds(o)) o.dispose();
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
      const [value, back] = traced((p: P) => f(p, ...rest), [params]);
      if (!(value instanceof Tensor) || value.size !== 1) {
        throw new Error(`valueAndGrad: f must return a one-element tensor, got ${String(value)}`);
      }
      // nothing but the value and the gradients leaves this scope: free as backprop goes
      const [grads] = back(full(value.shape, 1, "f32", value.device), true);
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
