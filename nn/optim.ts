// Pure optimizers (DESIGN 4): `const [params2, state2] = opt.update(grads, state, params)`
// returns new trees and never mutates its inputs; lifetimes are the caller's (scope / keep).
import { add, div, minimum, mul, sqrt, sub } from "../tensor/ops/elementwise.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { full } from "../tensor/create.ts";
import { leaves, mapTensors, type PyTree, unflatten } from "../tensor/pytree.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Schedule } from "./schedules.ts";

/** AdamW's state: steps taken and the first/second moment trees (shaped like the params). */
export interface AdamWState<P extends PyTree = PyTree> {
  step: number;
  m: P;
  v: P;
}

/** AdamW hyper-parameters (defaults as PyTorch's `torch.optim.AdamW`). */
export interface AdamWOptions {
  /** Learning rate, or a schedule of the step. */
  lr: number | Schedule;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay λ: p ← p·(1 − lr·λ) before the Adam step (default 0.01). */
  weightDecay?: number;
  /** Which leaves decay (default: matrices, i.e. rank ≥ 2 — not norms or biases). */
  decay?: (param: Tensor) => boolean;
}

/** An optimizer as a pair of pure functions. */
export interface Optimizer<S> {
  init<P extends PyTree>(params: P): S;
  update<P extends PyTree>(grads: P, state: S, params: P): [P, S];
}

/**
 * AdamW (Loshchilov & Hutter, 2019) with bias correction, as `torch.optim.AdamW`:
 * m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p(1 − lr·λ) − lr·m̂/(√v̂ + ε),
 * m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ).
 * @example
 * const opt = adamw({ lr: warmupCosine({ peak: 1e-3, warmup: 10, total: 100 }) });
 * let state = opt.init(params);
 * [params, state] = opt.update(grads, state, params);
 */
export function adamw(options: AdamWOptions): Optimizer<AdamWState> {
  const { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01 } = options;
  const decays = options.decay ?? ((p: Tensor) => p.rank >= 2);
  const schedule: Schedule = typeof options.lr === "number"
    ? () => options.lr as number
    : options.lr;
  return {
    init(params) {
      const zeros = () => mapTensors(params, (p) => full(p.shape, 0, { device: p.device }));
      return { step: 0, m: zeros(), v: zeros() };
    },
    update(grads, state, params) {
      const lr = schedule(state.step);
      const t = state.step + 1;
      const c1 = 1 - beta1 ** t, c2 = 1 - beta2 ** t;
      const ps = leaves(params), gs = leaves(grads), ms = leaves(state.m), vs = leaves(state.v);
      if (gs.length !== ps.length || ms.length !== ps.length || vs.length !== ps.length) {
        throw new Error(
          `adamw: params have ${ps.length} tensors, grads ${gs.length}, state ${ms.length}/${vs.length}`,
        );
      }
      const newP: Tensor[] = [], newM: Tensor[] = [], newV: Tensor[] = [];
      ps.forEach((p, i) => {
        const g = gs[i]!;
        const m = add(mul(ms[i]!, beta1), mul(g, 1 - beta1));
        const v = add(mul(vs[i]!, beta2), mul(mul(g, g), 1 - beta2));
        // lr·m̂/(√v̂ + ε) written as (lr/c1)·m / (√v/√c2 + ε): two scalars fold into one
        const step = div(mul(m, lr / c1), add(mul(sqrt(v), 1 / Math.sqrt(c2)), eps));
        const decayed = weightDecay !== 0 && decays(p) ? mul(p, 1 - lr * weightDecay) : p;
        newP.push(sub(decayed, step));
        newM.push(m);
        newV.push(v);
      });
      return [
        unflatten(params, newP),
        { step: t, m: unflatten(state.m, newM), v: unflatten(state.v, newV) },
      ];
    },
  };
}

/** The global L2 norm of a gradient tree, as a one-element device tensor. */
export function globalNorm(grads: PyTree): Tensor {
  const squares = leaves(grads).map((g) => sum(mul(g, g)));
  if (squares.length === 0) throw new Error("globalNorm: the tree has no tensors");
  return sqrt(squares.reduce((a, b) => add(a, b)));
}

/**
 * Scale a gradient tree so that its global L2 norm is at most `maxNorm` (as PyTorch's
 * `clip_grad_norm_`: factor min(1, maxNorm/(norm + 1e-6))). Returns the clipped tree and the
 * norm before clipping; both stay on the device (no read-back).
 */
export function clipByGlobalNorm<P extends PyTree>(grads: P, maxNorm: number): [P, Tensor] {
  const norm = globalNorm(grads);
  const factor = minimum(div(maxNorm, add(norm, 1e-6)), 1);
  return [mapTensors(grads, (g) => mul(g, factor)), norm];
}
