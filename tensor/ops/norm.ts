// Model compositions: RMSNorm and SwiGLU. Their gradients come from the primitives.
import type { Tensor } from "../tensor.ts";
import { add, mul, rsqrt, silu } from "./elementwise.ts";
import { mean } from "./reduce.ts";

/**
 * RMSNorm over the last axis (Hugging Face `Qwen2RMSNorm`, DESIGN 3.1):
 * `x · rsqrt(mean(x²) + eps) · weight`, eps inside the square root.
 */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const inv = rsqrt(add(mean(mul(x, x), -1, true), eps));
  return mul(mul(x, inv), weight);
}

/** SwiGLU gating: silu(gate) ⊙ up. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  return mul(silu(gate), up);
}
