// One fused AdamW step for one parameter tensor (torch.optim.AdamW; nn/optim.ts applies it
// over a tree): reads p, g, m, v (and optionally a one-element gradient scale, e.g. the
// global-norm clipping factor) and writes the new p, m, v in one pass. Every scalar is an
// attribute passed as a uniform, so the kernel compiles once for all steps and rates.
import { apply, fail, floats, nonDifferentiable, type OpDef } from "../op.ts";
import { sameShape } from "../shape.ts";
import { fmtShape, sizeOf, type Tensor } from "../tensor.ts";

/** Attributes of `adamw`: hyper-parameters as `torch.optim.AdamW`, and the step taken. */
export interface AdamWAttrs {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Decoupled weight decay λ of this tensor (0: no decay). */
  readonly weightDecay: number;
  /** The step being taken, t ≥ 1 (bias corrections 1 − β₁ᵗ, 1 − β₂ᵗ). */
  readonly step: number;
  /** A fifth input, a one-element tensor, multiplies the gradient. */
  readonly hasGradScale: boolean;
}

const names = ["p", "g", "m", "v", "gradScale"];

/**
 * The scalars of the folded update the kernel computes (as nn/optim.ts always did):
 * p' = p·decay − (lrOverC1·m') / (√v'·invSqrtC2 + eps), i.e. lr·m̂/(√v̂ + ε) with the two
 * bias corrections folded into scalars.
 */
export function adamwScalars(a: AdamWAttrs) {
  const c1 = 1 - a.beta1 ** a.step, c2 = 1 - a.beta2 ** a.step;
  return {
    beta1: a.beta1,
    oneMinusBeta1: 1 - a.beta1,
    beta2: a.beta2,
    oneMinusBeta2: 1 - a.beta2,
    lrOverC1: a.lr / c1,
    invSqrtC2: 1 / Math.sqrt(c2),
    eps: a.eps,
    decay: 1 - a.lr * a.weightDecay,
  };
}

/**
 * adamw(p, g, m, v[, gradScale]) → [p', m', v'], all f32 of p's shape (Loshchilov & Hutter,
 * 2019): g ← g·gradScale, m' = β₁m + (1−β₁)g, v' = β₂v + (1−β₂)g²,
 * p' = p·(1 − lr·λ) − lr·m̂/(√v̂ + ε) with m̂ = m'/(1−β₁ᵗ), v̂ = v'/(1−β₂ᵗ).
 */
export const adamwOp: OpDef<AdamWAttrs> = {
  name: "adamw",
  infer(inputs, attrs) {
    const want = attrs.hasGradScale ? 5 : 4;
    if (inputs.length !== want) {
      fail(
        "adamw",
        `expected ${want} inputs (p, g, m, v${
          attrs.hasGradScale ? ", gradScale" : ""
        }), got ${inputs.length}`,
      );
    }
    const p = inputs[0]!;
    inputs.forEach((x, k) => {
      if (x.dtype !== "f32") {
        fail(
          "adamw",
          `${names[k]} must be f32 (trainable parameters and their state are f32), got ${x.dtype} ${
            fmtShape(x.shape)
          }`,
        );
      }
      if (k >= 1 && k <= 3 && !sameShape(x.shape, p.shape)) {
        fail("adamw", `${names[k]} ${fmtShape(x.shape)} differs from p ${fmtShape(p.shape)}`);
      }
    });
    if (attrs.hasGradScale && sizeOf(inputs[4]!.shape) !== 1) {
      fail("adamw", `gradScale must have one element, got ${fmtShape(inputs[4]!.shape)}`);
    }
    if (!Number.isInteger(attrs.step) || attrs.step < 1) {
      fail("adamw", `step must be an integer ≥ 1, got ${attrs.step}`);
    }
    if (!(attrs.beta1 >= 0 && attrs.beta1 < 1 && attrs.beta2 >= 0 && attrs.beta2 < 1)) {
      fail("adamw", `betas must be in [0, 1), got (${attrs.beta1}, ${attrs.beta2})`);
    }
    const out = { shape: p.shape, dtype: "f32" as const };
    return [out, out, out];
  },
  // the textbook form, in f64; the kernel's folded form agrees within f32 rounding
  reference([p, g, m, v, s], a) {
    const n = p!.values.length;
    const newP = floats(n), newM = floats(n), newV = floats(n);
    const scale = s ? s.values[0]! : 1;
    const c1 = 1 - a.beta1 ** a.step, c2 = 1 - a.beta2 ** a.step;
    for (let i = 0; i < n; i++) {
      const gi = g!.values[i]! * scale;
      const mi = a.beta1 * m!.values[i]! + (1 - a.beta1) * gi;
      const vi = a.beta2 * v!.values[i]! + (1 - a.beta2) * gi * gi;
      const mHat = mi / c1, vHat = vi / c2;
      newP[i] = p!.values[i]! * (1 - a.lr * a.weightDecay) -
        (a.lr * mHat) / (Math.sqrt(vHat) + a.eps);
      newM[i] = mi;
      newV[i] = vi;
    }
    return [newP, newM, newV];
  },
  webgpu: (gpu, inputs, attrs, outs) => gpu.adamw(inputs, attrs, outs),
  vjp: nonDifferentiable,
};

/**
 * One AdamW step of one f32 tensor: [p', m', v'] (see `adamwOp`); `gradScale`, a
 * one-element tensor, multiplies g in the same pass (global-norm clipping at no extra cost).
 */
export function adamwStep(
  p: Tensor,
  g: Tensor,
  m: Tensor,
  v: Tensor,
  hyper: Omit<AdamWAttrs, "hasGradScale">,
  gradScale?: Tensor,
): [Tensor, Tensor, Tensor] {
  const inputs = gradScale ? [p, g, m, v, gradScale] : [p, g, m, v];
  const [newP, newM, newV] = apply(adamwOp, inputs, { ...hyper, hasGradScale: !!gradScale });
  return [newP!, newM!, newV!];
}
