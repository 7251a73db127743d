// Next-token log-probabilities from final hidden states (DESIGN 3.7): the LM head and the
// fused cross-entropy over slices of rows, so a long sample's [L, V] logits never exist whole.
import { linear } from "../nn/linear.ts";
import { tensor } from "../tensor/create.ts";
import { crossEntropy } from "../tensor/ops/cross_entropy.ts";
import { concat, reshape, slice } from "../tensor/ops/layout.ts";
import { scope } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Rows of logits computed at once. */
const logitRows = 256;

/**
 * −log p(ids[t+1] | ids ≤ t) for t < L−1, [L−1], from the final hidden states [1, L, H] of
 * `ids` and the LM head weight [V, H]. Rows go through the head in slices of 256 (the last
 * one 256–511 rows, so no slice takes the matrix-vector kernel); each row's arithmetic is
 * that of the whole [L, V] product.
 */
export function nextTokenLosses(
  lastHidden: Tensor,
  lmHead: Tensor,
  ids: readonly number[],
): Tensor {
  const n = ids.length - 1, hidden = lastHidden.shape[2]!;
  const targets = tensor(Int32Array.from(ids.slice(1)), [n], { device: lastHidden.device });
  const parts: Tensor[] = [];
  for (let at = 0; at < n;) {
    const rows = n - at < 2 * logitRows ? n - at : logitRows;
    parts.push(scope(() => {
      const x = reshape(slice(lastHidden, [0, at, 0], [1, at + rows, hidden]), [rows, hidden]);
      return crossEntropy(linear(x, { weight: lmHead }), slice(targets, [at], [at + rows]));
    }));
    at += rows;
  }
  const out = parts.length === 1 ? parts[0]! : concat(parts, 0);
  targets.dispose();
  return out;
}
