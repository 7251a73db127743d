// Rotary position embedding, rotate-half form (Hugging Face Qwen2 / Llama; DESIGN 3.1).
import { isFloat } from "../dtype.ts";
import { apply1, fail, floats, type OpDef } from "../op.ts";
import { broadcastIndex, broadcastShapes } from "../shape.ts";
import { fmtShape, type Tensor } from "../tensor.ts";
import { neg } from "./elementwise.ts";

/**
 * rope(x [..., D], cos [..., D], sin [..., D]) = x ⊙ cos + rotateHalf(x) ⊙ sin, with
 * rotateHalf([x₁, x₂]) = [−x₂, x₁]; cos and sin broadcast against x. Its transpose is rope
 * with −sin, so the VJP is one more rope. That transpose, and hence the VJP, holds for tables
 * whose two halves are equal (as RoPE tables are: see nn/rope.ts); cos and sin get no gradient.
 */
export const ropeOp: OpDef<Record<never, never>> = {
  name: "rope",
  infer([x, c, s]) {
    const d = x!.shape[x!.shape.length - 1] ?? 0;
    if (!isFloat(x!.dtype) || d % 2 !== 0) {
      fail(
        "rope",
        `needs a float tensor with an even last axis, got ${x!.dtype} ${fmtShape(x!.shape)}`,
      );
    }
    const shape = broadcastShapes("rope", [x!.shape, c!.shape, s!.shape]);
    if (shape.length !== x!.shape.length || !shape.every((n, i) => n === x!.shape[i])) {
      fail(
        "rope",
        `cos ${fmtShape(c!.shape)} / sin ${fmtShape(s!.shape)} do not broadcast to x ${
          fmtShape(x!.shape)
        }`,
      );
    }
    return [{ shape: x!.shape, dtype: "f32" }];
  },
  reference([x, c, s], _attrs, [out]) {
    const d = x!.shape[x!.shape.length - 1]!, half = d / 2;
    const ic = broadcastIndex(c!.shape, out!.shape), is = broadcastIndex(s!.shape, out!.shape);
    const v = x!.values, res = floats(v.length);
    for (let i = 0; i < v.length; i++) {
      const j = i % d;
      const rotated = j < half ? -v[i + half]! : v[i - half]!;
      res[i] = v[i]! * c!.values[ic[i]!]! + rotated * s!.values[is[i]!]!;
    }
    return [res];
  },
  webgpu: (gpu, [x, c, s], _attrs, [out]) => [gpu.rope(x!, c!, s!, out!)],
  vjp: ([g], { inputs: [, c, s] }) => [g && rope(g, c!, neg(s!)), undefined, undefined],
};

/** Apply rotary embeddings given per-position cos/sin tables (see `ropeTables`). */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return apply1(ropeOp, [x, cos, sin], {});
}
