// The attention-dependence metric DP of the paper (DESIGN 3.4, caculate_dp.py): from the
// per-row unmasked-softmax masses of every layer and head, per sample
//   DP-M = trace(A)/L, DP-B = Σ_{j<i} A[i,j]/L, DP-A = Σ_{j>i} A[i,j]/L,
// with A the L×L unmasked attention averaged over heads and layers. Since A is a mean, each
// DP value is the mean over (layer, head) of that head's own row-mass sums divided by L —
// which is what is computed here, from O(L·heads) numbers per layer.
import { tensor } from "../tensor/create.ts";
import { mul } from "../tensor/ops/elementwise.ts";
import { slice } from "../tensor/ops/layout.ts";
import { sum } from "../tensor/ops/reduce.ts";
import { scopeAsync } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** DP of one sample (or one layer/head), as fractions that sum to 1. */
export interface DpValues {
  /** Mass on the diagonal (DP-M). */
  dpM: number;
  /** Mass on earlier tokens (DP-B). */
  dpB: number;
  /** Mass on later tokens (DP-A): the "subsequent dependency". */
  dpA: number;
}

/** Per-sample DP, and per (layer, head) values of each sample. */
export interface SampleDp {
  length: number;
  values: DpValues;
  /** [layer][head] */
  perHead: DpValues[][];
}

/**
 * DP per sample of a batch from `decoder(…, { dp })`'s per-layer statistics [B, H, L, 4];
 * `lengths[b]` is sample b's number of real tokens (right padding is excluded).
 */
export function dpFromStats(
  stats: readonly Tensor[],
  lengths: readonly number[],
): Promise<SampleDp[]> {
  return scopeAsync(async () => {
    const first = stats[0];
    if (!first) throw new Error("dpFromStats: no layers");
    const [b, h, l] = first.shape as [number, number, number, number];
    if (lengths.length !== b) {
      throw new Error(`dpFromStats: ${lengths.length} lengths for a batch of ${b}`);
    }
    const rowMask = new Float32Array(b * l);
    lengths.forEach((n, bi) => rowMask.fill(1, bi * l, bi * l + n));
    const mask = tensor(rowMask, [b, 1, l, 1], { device: first.device });
    // per layer: Σ over real rows of (before, diagonal, after) → [B, H, 3]
    const sums = await Promise.all(
      stats.map((s) => sum(mul(slice(s, [0, 0, 0, 0], [b, h, l, 3]), mask), 2).data()),
    );
    return lengths.map((n, bi) => {
      const perHead = sums.map((layer) =>
        Array.from({ length: h }, (_, hi) => {
          const o = (bi * h + hi) * 3;
          return { dpB: layer[o]! / n, dpM: layer[o + 1]! / n, dpA: layer[o + 2]! / n };
        })
      );
      const all = perHead.flat();
      const avg = (key: keyof DpValues) => all.reduce((acc, v) => acc + v[key], 0) / all.length;
      return { length: n, values: { dpM: avg("dpM"), dpB: avg("dpB"), dpA: avg("dpA") }, perHead };
    });
  });
}

/** DP of an explicit averaged attention matrix A [L, L] (row-major): the definition itself. */
export function dpFromMatrix(a: ArrayLike<number>, l: number): DpValues {
  let dpM = 0, dpB = 0, dpA = 0;
  for (let i = 0; i < l; i++) {
    for (let j = 0; j < l; j++) {
      const v = a[i * l + j]!;
      if (j < i) dpB += v;
      else if (j === i) dpM += v;
      else dpA += v;
    }
  }
  return { dpM: dpM / l, dpB: dpB / l, dpA: dpA / l };
}
