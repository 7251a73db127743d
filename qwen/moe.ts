// The UBMoE block (DESIGN 3.6), routed as Hugging Face's Qwen2-MoE sparse block without a
// shared expert: p = softmax(u·W_rᵀ), the top-k experts per token, weights = the chosen p
// (renormalised only with norm_topk_prob), out = Σ weight · expert(u). Each expert runs only
// on the tokens routed to it (gather → SwiGLU MLP → scatter-add), never on every token.
// The choice itself is discrete: it is made on the host from the probabilities (a driver of
// `decoderSteps` reads them back); the weights stay on the device, so the router learns
// through them.
import { linear } from "../nn/linear.ts";
import { add, div, mul } from "../tensor/ops/elementwise.ts";
import { gather, scatterAdd } from "../tensor/ops/gather.ts";
import { concat, reshape } from "../tensor/ops/layout.ts";
import { swiglu } from "../tensor/ops/norm.ts";
import { mean, sum } from "../tensor/ops/reduce.ts";
import { softmax } from "../tensor/ops/softmax.ts";
import { tensor } from "../tensor/create.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { MoeConfig } from "./config.ts";
import type { LinearParams } from "./checkpoint.ts";

/** One expert: a SwiGLU MLP with Qwen2's names. */
export interface ExpertParams {
  gate_proj: LinearParams;
  up_proj: LinearParams;
  down_proj: LinearParams;
}

/** A mixture-of-experts MLP: the router `gate` [E, H] and the experts. */
export interface MoeMlpParams {
  gate: { weight: Tensor };
  experts: ExpertParams[];
}

/** The experts chosen for each token: [N·k] expert ids, token-major (k per token). */
export type RoutingDecision = Int32Array;

/** The SwiGLU MLP of one expert (also the dense Qwen2 MLP). */
export function expertMlp(u: Tensor, p: ExpertParams): Tensor {
  return linear(swiglu(linear(u, p.gate_proj), linear(u, p.up_proj)), p.down_proj);
}

/** Router probabilities softmax(u·W_rᵀ) [N, E] of the rows of u [N, H] (float32). */
export function routerProbs(u: Tensor, gate: { weight: Tensor }): Tensor {
  return softmax(linear(u, gate));
}

/**
 * Top-k of each row of `probs` [N, E] (host values): expert ids by decreasing probability,
 * ties to the lower id (as torch.topk on CPU).
 */
export function topKExperts(
  probs: ArrayLike<number>,
  n: number,
  e: number,
  k: number,
): RoutingDecision {
  const out = new Int32Array(n * k);
  const order = Array.from({ length: e }, (_, i) => i);
  for (let t = 0; t < n; t++) {
    const row = (j: number) => probs[t * e + j]!;
    const sorted = [...order].sort((a, b) => row(b) - row(a) || a - b);
    for (let j = 0; j < k; j++) out[t * k + j] = sorted[j]!;
  }
  return out;
}

/**
 * The mixture's output [N, H] for the rows of u [N, H] with router probabilities `probs`
 * [N, E] and the host's choice `decision` [N·k].
 */
export function moeMlp(
  u: Tensor,
  probs: Tensor,
  p: MoeMlpParams,
  moe: MoeConfig,
  decision: RoutingDecision,
): Tensor {
  const n = u.shape[0]!;
  const e = moe.numExperts, k = moe.numExpertsPerTok;
  const device = u.device;
  // the chosen probabilities [N, k], differentiable through the flat gather
  const at = Int32Array.from(decision, (x, i) => Math.floor(i / k) * e + x);
  let weights = reshape(gather(reshape(probs, [n * e, 1]), tensor(at, [n * k], { device })), [
    n,
    k,
  ]);
  if (moe.normTopkProb) weights = div(weights, sum(weights, -1, true));
  const flatWeights = reshape(weights, [n * k, 1]);
  let out: Tensor | null = null;
  for (let x = 0; x < e; x++) {
    const slots: number[] = [];
    decision.forEach((d, i) => d === x && slots.push(i));
    if (slots.length === 0) continue;
    const tokens = tensor(Int32Array.from(slots, (i) => Math.floor(i / k)), [slots.length], {
      device,
    });
    const w = gather(flatWeights, tensor(Int32Array.from(slots), [slots.length], { device }));
    const y = mul(expertMlp(gather(u, tokens), p.experts[x]!), w);
    const scattered = scatterAdd(y, tokens, n);
    out = out === null ? scattered : add(out, scattered);
  }
  return out ?? mul(u, 0);
}

/**
 * Qwen2-MoE's load-balancing loss (Switch Transformer): over every layer's tokens,
 * E · Σ_e f_e · P_e with f_e the fraction of (token, slot) choices that went to expert e
 * (per slot, as `load_balancing_loss_func`) and P_e the mean router probability of e.
 */
export function loadBalancingLoss(
  probs: readonly Tensor[],
  decisions: readonly RoutingDecision[],
  moe: MoeConfig,
): Tensor {
  const e = moe.numExperts, k = moe.numExpertsPerTok;
  const all = probs.length === 1 ? probs[0]! : concat(probs, 0);
  const tokens = decisions.reduce((a, d) => a + d.length / k, 0);
  const fraction = new Float32Array(k * e);
  for (const d of decisions) d.forEach((x, i) => fraction[(i % k) * e + x]! += 1 / tokens);
  const meanProb = mean(all, 0); // [E]
  const f = tensor(fraction, [k, e], { device: all.device });
  return mul(sum(mul(f, reshape(meanProb, [1, e]))), e);
}
