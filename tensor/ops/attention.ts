// Fused scaled-dot-product attention (DESIGN 2.4): GQA, a scale, a mask expression and key
// padding; online softmax over key tiles on WebGPU, never an L×L matrix in memory. The
// backward pass is its own fused op, recomputing probabilities from the saved logsumexp.
import { isFloat } from "../dtype.ts";
import { type MaskBool, type MaskNode, tokenArrayCount } from "../mask.ts";
import { evalMask } from "../mask.ts";
import {
  apply,
  fail,
  floats,
  floatsFrom,
  type Meta,
  nonDifferentiable,
  type OpDef,
  type RefInput,
} from "../op.ts";
import { fmtShape, type Tensor } from "../tensor.ts";
import { dpStatsReference } from "./dp_stats.ts";

/** Attributes of both attention ops. */
export interface AttentionAttrs {
  /** Which (query, key) pairs may attend, before key padding. */
  readonly mask: MaskBool;
  /** Multiplies q·k (usually 1/√D). */
  readonly scale: number;
  /** Absolute position of query row 0 (the KV-cache length when decoding). */
  readonly queryOffset: number;
  /** Inputs include keyValid i32 [B, S] (0 = padded key, never attended). */
  readonly hasKeyValid: boolean;
  /** Number of per-token i32 [B, S] arrays the mask reads. */
  readonly tokenArrays: number;
  /**
   * Also return the DP statistics of q and k ([B, H, L, 4], see `dpStatsOp`: the unmasked
   * softmax, key padding only) as a third output, from the same pass (DESIGN 2.4).
   */
  readonly dpStats?: boolean;
}

/** Sizes of an attention call; checks q [B,H,L,D], k/v [B,Hk,S,D], H divisible by Hk. */
export function attentionDims(inputs: readonly Meta[], attrs: AttentionAttrs) {
  const [q, k, v] = inputs;
  const shapes = `q ${fmtShape(q!.shape)}, k ${fmtShape(k!.shape)}, v ${fmtShape(v!.shape)}`;
  if (q!.shape.length !== 4 || k!.shape.length !== 4 || v!.shape.length !== 4) {
    fail("attention", `q, k, v must be [B, H, L, D]: ${shapes}`);
  }
  const [b, h, l, d] = q!.shape as [number, number, number, number];
  const [bk, hk, s, dk] = k!.shape as [number, number, number, number];
  if (
    bk !== b || dk !== d || v!.shape.some((n, i) => n !== k!.shape[i]) || hk === 0 || h % hk !== 0
  ) {
    fail("attention", `incompatible shapes (GQA needs H divisible by Hk): ${shapes}`);
  }
  if (![q, k, v].every((t) => isFloat(t!.dtype))) {
    fail("attention", `q, k, v must be float: ${shapes}`);
  }
  const extra = inputs.slice(3, 3 + (attrs.hasKeyValid ? 1 : 0) + attrs.tokenArrays);
  for (const t of extra) {
    if (t.dtype !== "i32" || t.shape.length !== 2 || t.shape[0] !== b || t.shape[1] !== s) {
      fail(
        "attention",
        `key padding / token arrays must be i32 [${b}, ${s}], got ${t.dtype} ${fmtShape(t.shape)}`,
      );
    }
  }
  if (tokenArrayCount(attrs.mask.node) > attrs.tokenArrays) {
    fail(
      "attention",
      `mask ${attrs.mask} reads more token arrays than the ${attrs.tokenArrays} given`,
    );
  }
  return { b, h, l, d, hk, s, group: h / hk };
}

/** The reference's allowed(q, k) for batch row `row`, padding included. */
function allowedRef(extra: readonly RefInput[], attrs: AttentionAttrs, s: number) {
  const keyValid = attrs.hasKeyValid ? extra[0]!.values : null;
  const tokens = extra.slice(attrs.hasKeyValid ? 1 : 0);
  const node: MaskNode = attrs.mask.node;
  return (row: number, qi: number, kj: number) => {
    if (keyValid && keyValid[row * s + kj] === 0) return false;
    const token = (array: number, pos: number) =>
      pos >= 0 && pos < s ? tokens[array]!.values[row * s + pos]! : -1;
    return evalMask(node, qi, kj, s, token) === true;
  };
}

/**
 * out = softmax(scale·q·kᵀ + mask)·v per head; lse = log Σ exp of the allowed scores (−∞ if
 * none); with `dpStats`, the DP statistics [B, H, L, 4] too.
 */
export const attentionOp: OpDef<AttentionAttrs> = {
  name: "attention",
  infer(inputs, attrs) {
    const { b, h, l, d } = attentionDims(inputs, attrs);
    const stats: Meta[] = attrs.dpStats ? [{ shape: [b, h, l, 4], dtype: "f32" }] : [];
    return [{ shape: [b, h, l, d], dtype: "f32" }, { shape: [b, h, l], dtype: "f32" }, ...stats];
  },
  reference(inputs, attrs) {
    const [q, k, v, ...extra] = inputs;
    const { b, h, l, d, s, group } = attentionDims(inputs, attrs);
    const allowed = allowedRef(extra, attrs, s);
    const out = floats(b * h * l * d), lse = floats(b * h * l);
    const scores = new Float64Array(s);
    for (let bi = 0; bi < b; bi++) {
      for (let hi = 0; hi < h; hi++) {
        const kvBase = (bi * (h / group) + Math.floor(hi / group)) * s * d;
        for (let i = 0; i < l; i++) {
          const qBase = ((bi * h + hi) * l + i) * d;
          let m = -Infinity;
          for (let j = 0; j < s; j++) {
            if (!allowed(bi, attrs.queryOffset + i, j)) {
              scores[j] = -Infinity;
              continue;
            }
            let dot = 0;
            for (let c = 0; c < d; c++) {
              dot += q!.values[qBase + c]! * k!.values[kvBase + j * d + c]!;
            }
            scores[j] = dot * attrs.scale;
            m = Math.max(m, scores[j]!);
          }
          const row = (bi * h + hi) * l + i;
          if (m === -Infinity) {
            lse[row] = -Infinity;
            continue;
          }
          let total = 0;
          for (let j = 0; j < s; j++) total += Math.exp(scores[j]! - m);
          lse[row] = m + Math.log(total);
          for (let c = 0; c < d; c++) {
            let acc = 0;
            for (let j = 0; j < s; j++) {
              if (scores[j] !== -Infinity) {
                acc += Math.exp(scores[j]! - m) * v!.values[kvBase + j * d + c]!;
              }
            }
            out[qBase + c] = acc / total;
          }
        }
      }
    }
    if (!attrs.dpStats) return [out, lse];
    const keyValid = attrs.hasKeyValid ? extra[0]!.values : undefined;
    const dims = { b, h, l, d, s, group };
    return [out, lse, dpStatsReference(q!.values, k!.values, keyValid, dims, attrs)];
  },
  webgpu: (gpu, inputs, attrs, outs) => gpu.attention(inputs, attrs, outs),
  // the DP statistics are inference-only: a cotangent for them is ignored, as the separate
  // `dpStats` op (non-differentiable) would
  vjp: (cotangents, { inputs, outputs, attrs }) => {
    const [gOut, gLse] = cotangents;
    if (gLse) throw new Error("attention: the logsumexp output is not differentiable");
    const none = inputs.map(() => undefined);
    if (!gOut) return none;
    const [q, k, v, ...extra] = inputs;
    const [dq, dk, dv] = apply(attentionBackwardOp, [
      q!,
      k!,
      v!,
      outputs[0]!,
      outputs[1]!,
      gOut,
      ...extra,
    ], attrs);
    return [dq, dk, dv, ...extra.map(() => undefined)];
  },
};

/** Inputs q, k, v, out, lse, dOut, [keyValid], [tokens...] → dq, dk, dv (GQA heads summed). */
export const attentionBackwardOp: OpDef<AttentionAttrs> = {
  name: "attentionBackward",
  infer(inputs, attrs) {
    const [q, k, v, , , , ...extra] = inputs;
    attentionDims([q!, k!, v!, ...extra], attrs);
    return [{ shape: q!.shape, dtype: "f32" }, { shape: k!.shape, dtype: "f32" }, {
      shape: v!.shape,
      dtype: "f32",
    }];
  },
  reference(inputs, attrs) {
    const [q, k, v, out, lse, dOut, ...extra] = inputs;
    const { b, h, l, d, s, group } = attentionDims([q!, k!, v!, ...extra], attrs);
    const allowed = allowedRef(extra, attrs, s);
    const dq = new Float64Array(q!.values.length);
    const dk = new Float64Array(k!.values.length), dv = new Float64Array(v!.values.length);
    for (let bi = 0; bi < b; bi++) {
      for (let hi = 0; hi < h; hi++) {
        const kvBase = (bi * (h / group) + Math.floor(hi / group)) * s * d;
        for (let i = 0; i < l; i++) {
          const row = (bi * h + hi) * l + i, qBase = row * d;
          const rowLse = lse!.values[row]!;
          if (rowLse === -Infinity) continue;
          let delta = 0; // Σ_c dOut·out = Σ_j p_j (dOut·v_j)
          for (let c = 0; c < d; c++) delta += dOut!.values[qBase + c]! * out!.values[qBase + c]!;
          for (let j = 0; j < s; j++) {
            if (!allowed(bi, attrs.queryOffset + i, j)) continue;
            let dot = 0, dp = 0;
            for (let c = 0; c < d; c++) {
              dot += q!.values[qBase + c]! * k!.values[kvBase + j * d + c]!;
              dp += dOut!.values[qBase + c]! * v!.values[kvBase + j * d + c]!;
            }
            const p = Math.exp(dot * attrs.scale - rowLse);
            const ds = p * (dp - delta) * attrs.scale;
            for (let c = 0; c < d; c++) {
              dv[kvBase + j * d + c]! += p * dOut!.values[qBase + c]!;
              dq[qBase + c]! += ds * k!.values[kvBase + j * d + c]!;
              dk[kvBase + j * d + c]! += ds * q!.values[qBase + c]!;
            }
          }
        }
      }
    }
    return [floatsFrom(dq), floatsFrom(dk), floatsFrom(dv)];
  },
  webgpu: (gpu, inputs, attrs, outs) => gpu.attentionBackward(inputs, attrs, outs),
  vjp: nonDifferentiable,
};

/** Options of `attention`. */
export interface AttentionOptions {
  /** Which (query, key) pairs may attend (see nn/masks.ts); default: every pair. */
  mask: MaskBool;
  /** Default 1/√D. */
  scale?: number;
  /** Absolute position of query row 0 (KV cache). Default 0. */
  queryOffset?: number;
  /** i32 [B, S]: 0 marks a padded key, never attended. */
  keyValid?: Tensor;
  /** i32 [B, S] arrays the mask reads with `token(i, pos)` (e.g. document ids). */
  tokens?: readonly Tensor[];
}

/**
 * Fused attention: q [B, H, L, D], k and v [B, Hk, S, D] (GQA when Hk < H) → [B, H, L, D].
 * A row with no allowed key gives zeros, never NaN.
 * @example
 * const out = attention(q, k, v, { mask: causal.mask, keyValid });
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  return attentionWithLse(q, k, v, opts)[0];
}

/** `attention` that also returns the per-row logsumexp [B, H, L] (not differentiable). */
export function attentionWithLse(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions,
): [Tensor, Tensor] {
  const [out, lse] = attentionCall(q, k, v, opts, false);
  return [out!, lse!];
}

/**
 * `attention` that also returns the DP statistics of q and k, [B, H, L, 4] (see `dpStats`:
 * the unmasked softmax over every unpadded key; not differentiable), from the same pass.
 * @example
 * const [out, stats] = attentionWithDpStats(q, k, v, { mask: causal.mask, keyValid });
 */
export function attentionWithDpStats(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions,
): [Tensor, Tensor] {
  const [out, , stats] = attentionCall(q, k, v, opts, true);
  return [out!, stats!];
}

function attentionCall(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions,
  dpStats: boolean,
): Tensor[] {
  const tokens = opts.tokens ?? [];
  const attrs: AttentionAttrs = {
    mask: opts.mask,
    scale: opts.scale ?? 1 / Math.sqrt(q.shape[3] ?? 1),
    queryOffset: opts.queryOffset ?? 0,
    hasKeyValid: opts.keyValid !== undefined,
    tokenArrays: tokens.length,
    ...(dpStats ? { dpStats } : {}),
  };
  const extra = opts.keyValid ? [opts.keyValid, ...tokens] : [...tokens];
  return apply(attentionOp, [q, k, v, ...extra], attrs);
}
