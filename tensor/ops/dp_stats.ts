// The per-row statistics of the paper's attention-dependence metric DP (DESIGN 3.4): for each
// query row, the softmax of scale·q·kᵀ over ALL keys with no mask (only key padding, so a
// batched run equals per-sample runs), reduced to the mass before the diagonal, on it and
// after it. O(L·heads) memory: no L×L matrix.
import { isFloat } from "../dtype.ts";
import { apply1, fail, floats, nonDifferentiable, type OpDef } from "../op.ts";
import { fmtShape, type Tensor } from "../tensor.ts";

/** Attributes of `dpStats`. */
export interface DpStatsAttrs {
  readonly scale: number;
  /** Absolute position of query row 0 (the diagonal is key = queryOffset + row). */
  readonly queryOffset: number;
  readonly hasKeyValid: boolean;
}

function dims(inputs: readonly { shape: readonly number[]; dtype: string }[], attrs: DpStatsAttrs) {
  const [q, k, keyValid] = inputs;
  const shapes = `q ${fmtShape(q!.shape)}, k ${fmtShape(k!.shape)}`;
  if (q!.shape.length !== 4 || k!.shape.length !== 4) {
    fail("dpStats", `q and k must be [B, H, L, D]: ${shapes}`);
  }
  const [b, h, l, d] = q!.shape as [number, number, number, number];
  const [bk, hk, s, dk] = k!.shape as [number, number, number, number];
  if (bk !== b || dk !== d || hk === 0 || h % hk !== 0) {
    fail("dpStats", `incompatible shapes: ${shapes}`);
  }
  if (!isFloat(q!.dtype as "f32") || !isFloat(k!.dtype as "f32")) {
    fail("dpStats", `q and k must be float: ${shapes}`);
  }
  if (
    attrs.hasKeyValid &&
    (keyValid!.dtype !== "i32" || keyValid!.shape[0] !== b || keyValid!.shape[1] !== s)
  ) {
    fail(
      "dpStats",
      `keyValid must be i32 [${b}, ${s}], got ${keyValid!.dtype} ${fmtShape(keyValid!.shape)}`,
    );
  }
  return { b, h, l, d, s, group: h / hk };
}

/**
 * The reference statistics [B, H, L, 4] of q [B, H, L, D] and k [B, Hk, S, D] (row-major
 * values), keyValid [B, S] when given: the spec of both `dpStats` and attention's `dpStats`.
 */
export function dpStatsReference(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  keyValid: ArrayLike<number> | undefined,
  { b, h, l, d, s, group }: ReturnType<typeof dims>,
  attrs: Pick<DpStatsAttrs, "scale" | "queryOffset">,
): Float32Array | Float64Array {
  const out = floats(b * h * l * 4);
  const scores = new Float64Array(s);
  for (let bi = 0; bi < b; bi++) {
    for (let hi = 0; hi < h; hi++) {
      const kvBase = (bi * (h / group) + Math.floor(hi / group)) * s * d;
      for (let i = 0; i < l; i++) {
        const row = (bi * h + hi) * l + i;
        let m = -Infinity;
        for (let j = 0; j < s; j++) {
          if (keyValid && keyValid[bi * s + j] === 0) {
            scores[j] = -Infinity;
            continue;
          }
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[row * d + c]! * k[kvBase + j * d + c]!;
          scores[j] = dot * attrs.scale;
          m = Math.max(m, scores[j]!);
        }
        if (m === -Infinity) {
          out[row * 4 + 3] = -Infinity;
          continue;
        }
        let total = 0, before = 0, diag = 0, after = 0;
        const qi = attrs.queryOffset + i;
        for (let j = 0; j < s; j++) {
          const p = Math.exp(scores[j]! - m);
          total += p;
          if (j < qi) before += p;
          else if (j === qi) diag += p;
          else after += p;
        }
        out.set([before / total, diag / total, after / total, m + Math.log(total)], row * 4);
      }
    }
  }
  return out;
}

/**
 * q [B, H, L, D], k [B, Hk, S, D] (GQA), optional keyValid [B, S] → [B, H, L, 4]:
 * per row (massBefore, massDiagonal, massAfter, logsumexp) of the unmasked softmax.
 */
export const dpStatsOp: OpDef<DpStatsAttrs> = {
  name: "dpStats",
  infer(inputs, attrs) {
    const { b, h, l } = dims(inputs, attrs);
    return [{ shape: [b, h, l, 4], dtype: "f32" }];
  },
  reference(inputs, attrs) {
    const [q, k, keyValid] = inputs;
    return [dpStatsReference(q!.values, k!.values, keyValid?.values, dims(inputs, attrs), attrs)];
  },
  webgpu: (gpu, inputs, attrs, [out]) => [gpu.dpStats(inputs, attrs, out!)],
  vjp: nonDifferentiable,
};

/** DP statistics of one attention layer (see `dpStatsOp`); scale defaults to 1/√D. */
export function dpStats(
  q: Tensor,
  k: Tensor,
  options: { scale?: number; queryOffset?: number; keyValid?: Tensor } = {},
): Tensor {
  const attrs: DpStatsAttrs = {
    scale: options.scale ?? 1 / Math.sqrt(q.shape[3] ?? 1),
    queryOffset: options.queryOffset ?? 0,
    hasKeyValid: options.keyValid !== undefined,
  };
  return apply1(dpStatsOp, options.keyValid ? [q, k, options.keyValid] : [q, k], attrs);
}
