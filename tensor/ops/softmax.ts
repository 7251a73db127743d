// Row softmax (last axis), fused: one kernel, f32 statistics. Its VJP is composed.
import { isFloat } from "../dtype.ts";
import { apply1, fail, floats, type OpDef } from "../op.ts";
import { fmtShape, sizeOf, type Tensor } from "../tensor.ts";
import { mul, sub } from "./elementwise.ts";
import { sum } from "./reduce.ts";

/** softmax over the last axis. */
export const softmaxOp: OpDef<Record<never, never>> = {
  name: "softmax",
  infer([x]) {
    if (!isFloat(x!.dtype) || x!.shape.length < 1) {
      fail("softmax", `needs a float tensor of rank ≥ 1, got ${x!.dtype} ${fmtShape(x!.shape)}`);
    }
    return [{ shape: x!.shape, dtype: "f32" }];
  },
  reference([x]) {
    const cols = x!.shape[x!.shape.length - 1]!;
    const rows = cols === 0 ? 0 : sizeOf(x!.shape) / cols;
    const v = x!.values, out = floats(v.length);
    for (let r = 0; r < rows; r++) {
      let m = -Infinity;
      for (let c = 0; c < cols; c++) m = Math.max(m, v[r * cols + c]!);
      let s = 0;
      for (let c = 0; c < cols; c++) s += Math.exp(v[r * cols + c]! - m);
      for (let c = 0; c < cols; c++) out[r * cols + c] = Math.exp(v[r * cols + c]! - m) / s;
    }
    return [out];
  },
  webgpu: (gpu, [x], _attrs, [out]) => [gpu.softmaxRows(x!, out!)],
  // dx = y ⊙ (g − Σ g⊙y)
  vjp: ([g], { outputs: [y] }) => [g && mul(y!, sub(g, sum(mul(g, y!), -1, true)))],
};

/** Softmax over the last axis. */
export function softmax(x: Tensor): Tensor {
  return apply1(softmaxOp, [x], {});
}
