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
import { scope, scopeAsync } from "../tensor/scope.ts";
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
    const sums = await Promise.all(stats.map((s) => dpRowSums(s, lengths).data()));
    return dpFromRowSums(sums, lengths, first.shape[1]!);
  });
}

/**
 * One layer's DP statistics [B, H, L, 4] summed over each sample's real rows: [B, H, 3] of
 * (before, diagonal, after). Layer streaming keeps only these between layers.
 */
export function dpRowSums(stats: Tensor, lengths: readonly number[]): Tensor {
  const [b, h, l] = stats.shape as [number, number, number, number];
  if (lengths.length !== b) {
    throw new Error(`dpFromStats: ${lengths.length} lengths for a batch of ${b}`);
  }
  return scope(() => {
    const rowMask = new Float32Array(b * l);
    lengths.forEach((n, bi) => rowMask.fill(1, bi * l, bi * l + n));
    const mask = tensor(rowMask, [b, 1, l, 1], { device: stats.device });
    return sum(mul(slice(stats, [0, 0, 0, 0], [b, h, l, 3]), mask), 2);
  });
}

/** DP per sample from every layer's `dpRowSums` values (layer order), `heads` per layer. */
export function dpFromRowSums(
  sums: readonly ArrayLike<number>[],
  lengths: readonly number[],
  heads: number,
): SampleDp[] {
  return lengths.map((n, bi) => {
    const perHead = sums.map((layer) =>
      Array.from({ length: heads }, (_, hi) => {
        const o = (bi * heads + hi) * 3;
        return { dpB: layer[o]! / n, dpM: layer[o + 1]! / n, dpA: layer[o + 2]! / n };
      })
    );
    const all = perHead.flat();
    const avg = (key: keyof DpValues) => all.reduce((acc, v) => acc + v[key], 0) / all.length;
    return { length: n, values: { dpM: avg("dpM"), dpB: avg("dpB"), dpA: avg("dpA") }, perHead };
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
