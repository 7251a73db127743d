// Pure optimizers (DESIGN 4): `const [params2, state2] = opt.update(grads, state, params)`
// returns new trees and never mutates its inputs; lifetimes are the caller's (scope / keep).
import { adamwStep } from "../tensor/ops/adamw.ts";
import { add, div, minimum, mul, sqrt } from "../tensor/ops/elementwise.ts";
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

/** Options of one `update` call. */
export interface UpdateOptions {
  /**
   * A one-element device tensor every gradient is multiplied by before the step, e.g. the
   * factor of `clipFactor`: clipping then costs no pass over the gradients of its own.
   */
  gradScale?: Tensor;
}

/** An optimizer as a pair of pure functions. */
export interface Optimizer<S> {
  init<P extends PyTree>(params: P): S;
  update<P extends PyTree>(grads: P, state: S, params: P, options?: UpdateOptions): [P, S];
}

/**
 * AdamW (Loshchilov & Hutter, 2019) with bias correction, as `torch.optim.AdamW`:
 * m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p(1 − lr·λ) − lr·m̂/(√v̂ + ε),
 * m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ). Each tensor is updated by one fused op (`adamwStep`:
 * one dispatch reads p, g, m, v and writes p, m, v); params and state must be f32.
 * @example
 * const opt = adamw({ lr: warmupCosine({ peak: 1e-3, warmup: 10, total: 100 }) });
 * let state = opt.init(params);
 * [params, state] = opt.update(grads, state, params);
 * // with gradient clipping folded into the update:
 * const [factor, norm] = clipFactor(grads, 1.0);
 * [params, state] = opt.update(grads, state, params, { gradScale: factor });
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
    update(grads, state, params, { gradScale } = {}) {
      const lr = schedule(state.step);
      const t = state.step + 1;
      const ps = leaves(params), gs = leaves(grads), ms = leaves(state.m), vs = leaves(state.v);
      if (gs.length !== ps.length || ms.length !== ps.length || vs.length !== ps.length) {
        throw new Error(
          `adamw: params have ${ps.length} tensors, grads ${gs.length}, state ${ms.length}/${vs.length}`,
        );
      }
      const newP: Tensor[] = [], newM: Tensor[] = [], newV: Tensor[] = [];
      ps.forEach((p, i) => {
        const hyper = { lr, beta1, beta2, eps, weightDecay: decays(p) ? weightDecay : 0, step: t };
        const [p2, m2, v2] = adamwStep(p, gs[i]!, ms[i]!, vs[i]!, hyper, gradScale);
        newP.push(p2);
        newM.push(m2);
        newV.push(v2);
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
 * The factor that clips a gradient tree to global L2 norm `maxNorm` (as PyTorch's
 * `clip_grad_norm_`: min(1, maxNorm/(norm + 1e-6))) and the norm, both one-element device
 * tensors (no read-back). Pass the factor as `update`'s `gradScale` to clip inside the update.
 */
export function clipFactor(grads: PyTree, maxNorm: number): [Tensor, Tensor] {
  const norm = globalNorm(grads);
  return [minimum(div(maxNorm, add(norm, 1e-6)), 1), norm];
}

/**
 * Scale a gradient tree so that its global L2 norm is at most `maxNorm` (see `clipFactor`).
 * Returns the clipped tree and the norm before clipping; both stay on the device.
 */
export function clipByGlobalNorm<P extends PyTree>(grads: P, maxNorm: number): [P, Tensor] {
  const [factor, norm] = clipFactor(grads, maxNorm);
  return [mapTensors(grads, (g) => mul(g, factor)), norm];
}
