// RMSNorm (fused: a row reduction and one elementwise pass; its VJP is composed) and SwiGLU
// (a composition whose gradient comes from the primitives).
import { isFloat } from "../dtype.ts";
import { apply1, fail, floats, type OpDef } from "../op.ts";
import { fmtShape, sizeOf, type Tensor } from "../tensor.ts";
import { add, mul, rsqrt, silu, sub } from "./elementwise.ts";
import { reshape } from "./layout.ts";
import { mean, sum } from "./reduce.ts";

/**
 * RMSNorm over the last axis (Hugging Face `Qwen2RMSNorm`, DESIGN 3.1):
 * `x · rsqrt(mean(x²) + eps) · weight`, eps inside the square root, statistics in f32.
 */
export const rmsNormOp: OpDef<{ eps: number }> = {
  name: "rmsNorm",
  infer([x, w]) {
    const cols = x!.shape[x!.shape.length - 1];
    if (!isFloat(x!.dtype) || !isFloat(w!.dtype) || cols === undefined) {
      fail(
        "rmsNorm",
        `needs float x of rank ≥ 1 and a float weight, got ${x!.dtype} ${fmtShape(x!.shape)}`,
      );
    }
    if (w!.shape.length !== 1 || w!.shape[0] !== cols) {
      fail(
        "rmsNorm",
        `weight ${fmtShape(w!.shape)} does not match the last axis of ${fmtShape(x!.shape)}`,
      );
    }
    return [{ shape: x!.shape, dtype: "f32" }];
  },
  reference([x, w], { eps }) {
    const cols = x!.shape[x!.shape.length - 1]!;
    const rows = cols === 0 ? 0 : sizeOf(x!.shape) / cols;
    const v = x!.values, out = floats(v.length);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let c = 0; c < cols; c++) ss += v[r * cols + c]! ** 2;
      const inv = 1 / Math.sqrt(ss / cols + eps);
      for (let c = 0; c < cols; c++) out[r * cols + c] = v[r * cols + c]! * inv * w!.values[c]!;
    }
    return [out];
  },
  webgpu: (gpu, [x, w], { eps }, [out]) => [gpu.rmsNorm(x!, w!, eps, out!)],
  // x̂ = x·r, r = (mean(x²) + eps)^−½:  dx = r·(g⊙w − x̂·mean(g⊙w⊙x̂)),  dw = Σ_rows g⊙x̂
  vjp: ([g], { inputs: [x, w], attrs: { eps }, needsGrad: [needX, needW] }) => {
    if (!g) return [undefined, undefined];
    const r = rsqrt(add(mean(mul(x!, x!), -1, true), eps));
    const xhat = mul(x!, r);
    const gw = mul(g, w!);
    const dx = needX ? mul(r, sub(gw, mul(xhat, mean(mul(gw, xhat), -1, true)))) : undefined;
    const cols = x!.shape[x!.shape.length - 1]!;
    const dw = needW ? sum(reshape(mul(g, xhat), [-1, cols]), 0) : undefined;
    return [dx, dw];
  },
};

/** RMSNorm over the last axis (Hugging Face `Qwen2RMSNorm`), weight [H]. */
export function rmsNorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  return apply1(rmsNormOp, [x, weight], { eps });
}

/** SwiGLU gating: silu(gate) ⊙ up. */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  return mul(silu(gate), up);
}
