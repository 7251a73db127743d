import { add } from "../tensor/ops/elementwise.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** torch.nn.Linear: `x · weightᵀ (+ bias)`, weight [out, in] (read transposed, no copy). */
export function linear(x: Tensor, p: { weight: Tensor; bias?: Tensor }): Tensor {
  const y = matmul(x, p.weight, { transB: true });
  return p.bias ? add(y, p.bias) : y;
}
