// Losses (DESIGN 3.5, 3.7), composed from fused primitives.
import { tensor } from "../tensor/create.ts";
import { cast, div, maximum, mul, ne, sqrt, sub, where } from "../tensor/ops/elementwise.ts";
import { crossEntropy } from "../tensor/ops/cross_entropy.ts";
import { concat, reshape, slice } from "../tensor/ops/layout.ts";
import { full } from "../tensor/ops/fill.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { mean, sum } from "../tensor/ops/reduce.ts";
import { fmtShape, type Tensor } from "../tensor/tensor.ts";

/** The ignore index of Hugging Face losses. */
export const ignoreIndex = -100;

/**
 * Causal LM loss (HF ForCausalLMLoss): position t predicts token t+1; a target counts iff
 * it is a real token (`attentionMask[b, t+1] = 1`); the mean is over every counted target
 * of the batch. `labels`, if given, replaces the targets (−100 = ignored, e.g. prompt tokens).
 */
export function causalLmLoss(
  logits: Tensor,
  inputIds: Tensor,
  attentionMask?: Tensor,
  labels?: Tensor,
): Tensor {
  const [b, t, v] = logits.shape as [number, number, number];
  if (inputIds.shape[0] !== b || inputIds.shape[1] !== t) {
    throw new Error(
      `causalLmLoss: logits ${fmtShape(logits.shape)} do not match ids ${fmtShape(inputIds.shape)}`,
    );
  }
  // position t's target is token t+1; the last position has none. Shifting the small
  // targets (not the [B, T, V] logits) keeps the logits uncopied in both passes.
  const source = labels ?? inputIds;
  let next = slice(source, [0, 1]);
  if (attentionMask && !labels) {
    next = where(ne(slice(attentionMask, [0, 1]), 0), next, ignoreIndex);
  }
  const targets = concat([next, full([b, 1], ignoreIndex, "i32", next.device)], 1);
  const flatTargets = reshape(targets, [b * t]);
  const losses = crossEntropy(reshape(logits, [b * t, v]), flatTargets, ignoreIndex);
  const count = sum(cast(ne(flatTargets, ignoreIndex), "f32"));
  return div(sum(losses), maximum(count, 1));
}

/** Masked mean over tokens: [B, T, H] with mask [B, T] → [B, H] (AnglE / the paper's pooling). */
export function meanPool(hidden: Tensor, attentionMask: Tensor): Tensor {
  const m = reshape(cast(attentionMask, "f32"), [...attentionMask.shape, 1]);
  return div(sum(mul(hidden, m), 1), sum(m, 1));
}

/**
 * AnglE's in-batch-negative loss (ibn_w = 1): rows are interleaved pairs [a0, p0, a1, p1, …];
 * y = e/max(‖e‖, 1e−12); S = (y·yᵀ − 10¹²·I)·τ; cross-entropy of each row against its
 * partner (2k ↔ 2k+1), mean over rows.
 */
export function inBatchNegativeLoss(embeddings: Tensor, tau = 20): Tensor {
  const [n] = embeddings.shape as [number, number];
  if (n % 2 !== 0) throw new Error(`inBatchNegativeLoss: needs an even number of rows, got ${n}`);
  const y = l2Normalize(embeddings);
  const eye = new Float32Array(n * n);
  for (let i = 0; i < n; i++) eye[i * n + i] = 1e12;
  const scores = mul(
    sub(matmul(y, y, { transB: true }), tensor(eye, [n, n], { device: embeddings.device })),
    tau,
  );
  const partner = Int32Array.from({ length: n }, (_, i) => i ^ 1);
  return mean(crossEntropy(scores, tensor(partner, [n], { device: embeddings.device })));
}

/** Rows divided by max(‖row‖₂, 1e−12), as torch.nn.functional.normalize. */
export function l2Normalize(x: Tensor): Tensor {
  return div(x, maximum(sqrt(sum(mul(x, x), -1, true)), 1e-12));
}

/**
 * AnglE's format-B/C loss (`contrastive_with_negative_loss` with no negatives): rows are
 * interleaved pairs [a0, p0, a1, p1, …]; cross-entropy of normalize(a)·normalize(p)ᵀ·τ
 * against the diagonal — one direction, the diagonal not masked.
 */
export function infoNceLoss(embeddings: Tensor, tau = 20): Tensor {
  const [n, h] = embeddings.shape as [number, number];
  if (n % 2 !== 0) throw new Error(`infoNceLoss: needs an even number of rows, got ${n}`);
  const pairs = reshape(embeddings, [n / 2, 2, h]);
  const anchors = l2Normalize(reshape(slice(pairs, [0, 0, 0], [n / 2, 1, h]), [n / 2, h]));
  const positives = l2Normalize(reshape(slice(pairs, [0, 1, 0], [n / 2, 2, h]), [n / 2, h]));
  const scores = mul(matmul(anchors, positives, { transB: true }), tau);
  const diagonal = Int32Array.from({ length: n / 2 }, (_, i) => i);
  return mean(crossEntropy(scores, tensor(diagonal, [n / 2], { device: embeddings.device })));
}
