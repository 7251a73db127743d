import { add } from "../tensor/ops/elementwise.ts";
import { gather } from "../tensor/ops/gather.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { type LoraAttachment, loraEmbeddingDelta, loraLinearDelta } from "./lora.ts";

/**
 * torch.nn.Linear: `x · weightᵀ (+ bias)`, weight [out, in] (read transposed, no copy), plus
 * the LoRA term when an adapter is attached (nn/lora.ts).
 */
export function linear(
  x: Tensor,
  p: { weight: Tensor; bias?: Tensor; lora?: LoraAttachment },
): Tensor {
  const y = matmul(x, p.weight, { transB: true });
  const biased = p.bias ? add(y, p.bias) : y;
  return p.lora ? add(biased, loraLinearDelta(x, p.lora)) : biased;
}

/** torch.nn.Embedding: rows of `weight` [V, H] at `ids`, plus the LoRA term when attached. */
export function embedding(ids: Tensor, p: { weight: Tensor; lora?: LoraAttachment }): Tensor {
  const h = gather(p.weight, ids);
  return p.lora ? add(h, loraEmbeddingDelta(ids, p.lora)) : h;
}
