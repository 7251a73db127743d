// The Qwen2 decoder as a pure function (DESIGN 3.1): params tree + token ids → hidden states
// and logits, batched with right padding.
import { causal, type MaskVariant } from "../nn/masks.ts";
import { embedding, linear } from "../nn/linear.ts";
import { ropeTables } from "../nn/rope.ts";
import { add, mul } from "../tensor/ops/elementwise.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { mean } from "../tensor/ops/reduce.ts";
import { softmax } from "../tensor/ops/softmax.ts";
import { attention, attentionWithDpStats } from "../tensor/ops/attention.ts";
import { concat, permute, reshape, slice } from "../tensor/ops/layout.ts";
import { rmsNorm } from "../tensor/ops/norm.ts";
import { rope } from "../tensor/ops/rope.ts";
import { isTracing } from "../tensor/op.ts";
import { scope } from "../tensor/scope.ts";
import { fmtShape, type Tensor } from "../tensor/tensor.ts";
import type { Qwen2Config } from "./config.ts";
import type { LayerParams, QwenParams } from "./checkpoint.ts";
import {
  expertMlp,
  type ExpertParams,
  moeMlp,
  routerProbs,
  type RoutingDecision,
  topKExperts,
} from "./moe.ts";

/** Options of `decoder`. */
export interface DecoderOptions {
  /** Attention mask variant for every layer, or one per layer. Default causal. */
  mask?: MaskVariant | readonly MaskVariant[];
  /** i32 [B, T]: 1 at real tokens, 0 at right padding (padded keys are never attended). */
  attentionMask?: Tensor;
  /** i32 [B, T] arrays the mask variant reads, by name (e.g. `documentIds`). */
  tokenArrays?: Readonly<Record<string, Tensor>>;
  /** Return every layer's hidden states, as Hugging Face `output_hidden_states`. */
  outputHiddenStates?: boolean;
  /** Compute the logits (default true). */
  logits?: boolean;
  /** Keys and values of earlier tokens (generation): positions continue after them. */
  cache?: KvCache;
  /** Return the keys and values of every layer in `cache` (default true; DP needs none). */
  keepCache?: boolean;
  /** Only the last position's logits ([B, 1, V]), as generation needs. */
  lastLogitsOnly?: boolean;
  /**
   * DP statistics (DESIGN 3.4): every layer also returns the unmasked-softmax masses per row.
   * `"only"` skips what DP does not need (the last layer's MLP, the final norm, the LM head).
   */
  dp?: boolean | "only";
  /** Also return each layer's full unmasked attention matrices averaged over heads [B, L, L] (small L only). */
  dpMatrices?: boolean;
  /**
   * Mixture-of-experts models: the experts chosen per layer (`topKExperts` of the router
   * probabilities). `decoder` needs them; `decoderAsync` computes them as it goes.
   */
  routing?: readonly RoutingDecision[];
}

/** Per-layer keys and values [B, Hk, S, D] of the tokens seen so far. */
export interface KvCache {
  readonly length: number;
  readonly layers: readonly { k: Tensor; v: Tensor }[];
}

/** What `decoder` returns. */
export interface DecoderOutput {
  /** [B, T, V], unless `logits: false`. */
  logits?: Tensor;
  /** final norm(output of the last layer) [B, T, H] (HF `last_hidden_state`). */
  lastHiddenState: Tensor;
  /** Raw output of the last layer, before the final norm. */
  lastLayerPrenorm: Tensor;
  /** HF convention: [0] embeddings, [i] output of layer i−1, [L] = lastHiddenState. */
  hiddenStates?: Tensor[];
  /** The cache extended by this call's tokens. */
  cache: KvCache;
  /** With `dp`: per layer [B, H, L, 4] = (before, diagonal, after, logsumexp) per query row. */
  dpStats?: Tensor[];
  /** With `dpMatrices`: per layer the unmasked attention averaged over heads, [B, L, L]. */
  dpMatrices?: Tensor[];
  /** Mixture-of-experts models: per layer the router probabilities [B·T, E] and the choice. */
  router?: { probs: Tensor[]; decisions: RoutingDecision[] };
}

/** What a mixture-of-experts layer asks its driver for: the experts of each token. */
export interface RouterRequest {
  layer: number;
  /** Router probabilities [B·T, E]. */
  probs: Tensor;
}

/** The LM head weight: lm_head, or the embedding when tied. */
export function lmHeadWeight(params: QwenParams, config: Qwen2Config): Tensor {
  if (config.tieWordEmbeddings) return params.model.embed_tokens.weight;
  if (!params.lm_head) throw new Error("decoder: untied model has no lm_head.weight");
  return params.lm_head.weight;
}

/**
 * Qwen2ForCausalLM forward on token ids [B, T] (i32, right-padded). A mixture-of-experts
 * model needs `options.routing` here; `decoderAsync` chooses the experts itself.
 * @example
 * const { logits } = decoder(model.params, ids, model.config, { attentionMask });
 */
export function decoder(
  params: QwenParams,
  inputIds: Tensor,
  config: Qwen2Config,
  options: DecoderOptions = {},
): DecoderOutput {
  const steps = decoderSteps(params, inputIds, config, options);
  let r = steps.next();
  while (!r.done) {
    const decision = options.routing?.[r.value.layer];
    if (!decision) {
      steps.return(undefined as never);
      throw new Error(
        `decoder: layer ${r.value.layer} is a mixture of experts: pass options.routing (or use decoderAsync)`,
      );
    }
    r = steps.next(decision);
  }
  return r.value;
}

/**
 * `decoder` for any model: a mixture-of-experts layer's router probabilities are read back
 * and its top-k experts chosen on the host (`topKExperts`) before the layer continues.
 */
export async function decoderAsync(
  params: QwenParams,
  inputIds: Tensor,
  config: Qwen2Config,
  options: DecoderOptions = {},
): Promise<DecoderOutput> {
  return await routeOnHost(decoderSteps(params, inputIds, config, options), config);
}

/**
 * Run a forward generator (`decoderSteps`, `decoderLayer`) to its end, choosing each
 * mixture-of-experts layer's experts on the host (`topKExperts` of the read-back router
 * probabilities).
 */
export async function routeOnHost<R>(
  steps: Generator<RouterRequest, R, RoutingDecision>,
  config: Qwen2Config,
): Promise<R> {
  let r = steps.next();
  while (!r.done) {
    const { probs } = r.value;
    const [n, e] = probs.shape as [number, number];
    r = steps.next(topKExperts(await probs.data(), n, e, config.moe!.numExpertsPerTok));
  }
  return r.value;
}

/**
 * The forward pass as a generator: it yields at each mixture-of-experts layer with the
 * router probabilities and continues with the driver's choice (a dense model never yields).
 */
export function* decoderSteps(
  params: QwenParams,
  inputIds: Tensor,
  config: Qwen2Config,
  options: DecoderOptions = {},
): Generator<RouterRequest, DecoderOutput, RoutingDecision> {
  if (inputIds.rank !== 2 || inputIds.dtype !== "i32") {
    throw new Error(
      `decoder: input ids must be i32 [B, T], got ${inputIds.dtype} ${fmtShape(inputIds.shape)}`,
    );
  }
  const t = inputIds.shape[1]!;
  const past = options.cache?.length ?? 0;
  if (past + t > config.maxPositionEmbeddings) {
    throw new Error(
      `decoder: ${past + t} tokens exceed max_position_embeddings ${config.maxPositionEmbeddings}`,
    );
  }
  const masks = maskPerLayer(options.mask ?? causal, config.numHiddenLayers);
  const { cos, sin } = ropeTables(t, config.headDim, config.ropeTheta, inputIds.device, past);
  let h = embedding(inputIds, params.model.embed_tokens);
  const hiddenStates: Tensor[] = [h];
  const cacheLayers: { k: Tensor; v: Tensor }[] = [];
  const dpStatsLayers: Tensor[] = [], dpMatrixLayers: Tensor[] = [];
  const router = { probs: [] as Tensor[], decisions: [] as RoutingDecision[] };
  const last = config.numHiddenLayers - 1;
  // inference frees what no output needs as it goes; under autograd everything stays
  const free = !isTracing();
  const keepCache = options.keepCache ?? true;
  for (const [i, layer] of params.model.layers.entries()) {
    const ctx = layerContext(i, masks[i]!, { cos, sin }, options, config);
    const out = yield* decoderLayer(layer, h, config, ctx);
    if (keepCache) cacheLayers.push(out.present);
    else if (free) { for (const x of [out.present.k, out.present.v]) x.dispose(); }
    if (out.dpStats) dpStatsLayers.push(out.dpStats);
    if (out.dpMatrix) dpMatrixLayers.push(out.dpMatrix);
    if (out.router) {
      router.probs.push(out.router.probs);
      router.decisions.push(out.router.decision);
    }
    if (free && !options.outputHiddenStates) h.dispose();
    h = out.h;
    if (i < last && options.outputHiddenStates) hiddenStates.push(h);
  }
  const routerOut = router.probs.length > 0 ? { router } : {};
  if (options.dp === "only") {
    return {
      lastHiddenState: h,
      lastLayerPrenorm: h,
      cache: { length: past + t, layers: cacheLayers },
      dpStats: dpStatsLayers,
      ...(options.dpMatrices ? { dpMatrices: dpMatrixLayers } : {}),
      ...routerOut,
    };
  }
  const lastHiddenState = rmsNorm(h, params.model.norm.weight, config.rmsNormEps);
  hiddenStates.push(lastHiddenState);
  const out: DecoderOutput = {
    lastHiddenState,
    lastLayerPrenorm: h,
    cache: { length: past + t, layers: cacheLayers },
    ...routerOut,
  };
  if (options.outputHiddenStates) out.hiddenStates = hiddenStates;
  if (options.dp) out.dpStats = dpStatsLayers;
  if (options.dpMatrices) out.dpMatrices = dpMatrixLayers;
  if (options.logits ?? true) {
    const x = options.lastLogitsOnly ? slice(lastHiddenState, [0, t - 1, 0]) : lastHiddenState;
    out.logits = linear(x, { weight: lmHeadWeight(params, config) });
  }
  return out;
}

/** What one decoder layer needs besides its weights and input (built by `layerContext`). */
export interface LayerContext {
  /** Index of the layer (named in the router requests of mixture-of-experts layers). */
  layer: number;
  cos: Tensor;
  sin: Tensor;
  variant: MaskVariant;
  keyValid?: Tensor;
  tokens: Tensor[];
  /** Keys/values of earlier positions, and how many. */
  past?: { k: Tensor; v: Tensor };
  pastLength: number;
  /** Set by the layer: keys/values including this call's tokens. */
  present?: { k: Tensor; v: Tensor };
  /** Compute DP statistics (set into `dpStats`), the explicit matrix (into `dpMatrixOut`). */
  dp?: boolean;
  dpMatrix?: boolean;
  dpStats?: Tensor;
  dpMatrixOut?: Tensor;
  /** Return after attention (DP needs no MLP in the last layer). */
  skipMlp?: boolean;
}

/** One layer's results. */
export interface LayerOutput {
  /** The residual stream after the layer. */
  h: Tensor;
  /** Keys/values including this call's tokens. */
  present: { k: Tensor; v: Tensor };
  dpStats?: Tensor;
  dpMatrix?: Tensor;
  router?: { probs: Tensor; decision: RoutingDecision };
}

/** The context of layer `i` for a forward pass with `options`. */
export function layerContext(
  i: number,
  variant: MaskVariant,
  rope: { cos: Tensor; sin: Tensor },
  options: DecoderOptions,
  config: Qwen2Config,
): LayerContext {
  const tokens = variant.tokenArrays.map((name) => {
    const arr = options.tokenArrays?.[name];
    if (!arr) throw new Error(`decoder: mask ${variant.name} needs token array '${name}'`);
    return arr;
  });
  return {
    layer: i,
    cos: rope.cos,
    sin: rope.sin,
    variant,
    keyValid: options.attentionMask,
    tokens,
    past: options.cache?.layers[i],
    pastLength: options.cache?.length ?? 0,
    dp: options.dp !== undefined && options.dp !== false,
    dpMatrix: options.dpMatrices ?? false,
    skipMlp: options.dp === "only" && i === config.numHiddenLayers - 1,
  };
}

/**
 * One decoder layer (DESIGN 3.1): h + attention(rmsNorm(h)), then + mlp(rmsNorm(·)). A
 * mixture-of-experts layer yields its router probabilities and continues with the choice.
 */
export function* decoderLayer(
  layer: LayerParams,
  h: Tensor,
  config: Qwen2Config,
  ctx: LayerContext,
): Generator<RouterRequest, LayerOutput, RoutingDecision> {
  const free = !isTracing();
  // inference frees the layer's intermediates as it goes; under autograd they must stay
  const run = <T>(f: () => T): T => free ? scope(f) : f();
  const attn = run(() => {
    const x = add(h, attentionBlock(layer, h, config, ctx));
    if (ctx.skipMlp) return { x, present: ctx.present, dp: ctx.dpStats, m: ctx.dpMatrixOut };
    const u = rmsNorm(x, layer.post_attention_layernorm.weight, config.rmsNormEps);
    const probs = "experts" in layer.mlp
      ? routerProbs(reshape(u, [-1, config.hiddenSize]), layer.mlp.gate)
      : undefined;
    return { x, u, probs, present: ctx.present, dp: ctx.dpStats, m: ctx.dpMatrixOut };
  });
  const base = {
    present: attn.present!,
    ...(attn.dp ? { dpStats: attn.dp } : {}),
    ...(ctx.dpMatrix ? { dpMatrix: attn.m! } : {}),
  };
  if (ctx.skipMlp || !("u" in attn)) return { h: attn.x, ...base };
  const { x, u, probs } = attn;
  const mlp = layer.mlp;
  let out: LayerOutput;
  if ("experts" in mlp) {
    const decision = yield { layer: ctx.layer, probs: probs! };
    const next = run(() => {
      const flat = reshape(u!, [-1, config.hiddenSize]);
      return add(x, reshape(moeMlp(flat, probs!, mlp, config.moe!, decision), x.shape));
    });
    out = { h: next, ...base, router: { probs: probs!, decision } };
  } else out = { h: run(() => add(x, free ? mlpByRows(u!, mlp) : expertMlp(u!, mlp))), ...base };
  if (free) {
    x.dispose();
    u!.dispose();
  }
  return out;
}

/** Rows of the MLP computed at once in inference (each row's arithmetic is unchanged). */
const mlpRows = 512;

/**
 * The dense MLP over a long input in slices of `mlpRows` tokens (the last 512–1023), so
 * its [T, intermediate] activations exist for one slice at a time: at 2048 tokens on the
 * 1.5B the layer's working set drops by ~220 MB. Rows never interact in the MLP, and each
 * slice has > 4 rows (the matrix-vector kernel is not used), so values are the same.
 */
export function mlpByRows(u: Tensor, mlp: ExpertParams): Tensor {
  const [b, t, hidden] = u.shape as [number, number, number];
  if (b !== 1 || t < 2 * mlpRows) return expertMlp(u, mlp);
  const parts: Tensor[] = [];
  for (let at = 0; at < t;) {
    const n = t - at < 2 * mlpRows ? t - at : mlpRows;
    parts.push(scope(() => expertMlp(slice(u, [0, at, 0], [1, at + n, hidden]), mlp)));
    at += n;
  }
  return concat(parts, 1);
}

/** A layer's attention sub-block on the residual stream h: attention(RMSNorm(h)), before the residual add. */
export function attentionBlock(
  layer: LayerParams,
  h: Tensor,
  config: Qwen2Config,
  ctx: LayerContext,
): Tensor {
  return selfAttention(
    layer,
    rmsNorm(h, layer.input_layernorm.weight, config.rmsNormEps),
    config,
    ctx,
  );
}

/** Split [B, T, heads·D] into [B, heads, T, D]. */
function heads(x: Tensor, n: number, d: number): Tensor {
  const [b, t] = x.shape as [number, number];
  return permute(reshape(x, [b, t, n, d]), [0, 2, 1, 3]);
}

function selfAttention(
  layer: LayerParams,
  x: Tensor,
  config: Qwen2Config,
  ctx: LayerContext,
): Tensor {
  const { numAttentionHeads: nh, numKeyValueHeads: nkv, headDim: d } = config;
  const { q_proj, k_proj, v_proj, o_proj } = layer.self_attn;
  const q = rope(heads(linear(x, q_proj), nh, d), ctx.cos, ctx.sin);
  let k = rope(heads(linear(x, k_proj), nkv, d), ctx.cos, ctx.sin);
  let v = heads(linear(x, v_proj), nkv, d);
  if (ctx.past) {
    k = concat([ctx.past.k, k], 2);
    v = concat([ctx.past.v, v], 2);
  }
  ctx.present = { k, v };
  if (ctx.dpMatrix) ctx.dpMatrixOut = unmaskedAttentionMean(q, k);
  const attentionOptions = {
    mask: ctx.variant.mask,
    keyValid: ctx.keyValid,
    tokens: ctx.tokens,
    queryOffset: ctx.pastLength,
  };
  // DP statistics come from the attention pass itself (DESIGN 2.4)
  let out: Tensor;
  if (ctx.dp) [out, ctx.dpStats] = attentionWithDpStats(q, k, v, attentionOptions);
  else out = attention(q, k, v, attentionOptions);
  const [b, , t] = out.shape as [number, number, number];
  return linear(reshape(permute(out, [0, 2, 1, 3]), [b, t, nh * d]), o_proj);
}

/**
 * The paper's `full_attn_weights` averaged over heads: softmax(q·kᵀ/√D) over every key, no
 * mask, [B, L, S]. Materialises [B, H, L, S]: for heatmaps and tests on short samples.
 */
export function unmaskedAttentionMean(q: Tensor, k: Tensor): Tensor {
  const [b, h, l, d] = q.shape as [number, number, number, number];
  const [, hk, s] = k.shape as [number, number, number, number];
  // query heads of one kv group are consecutive: [B, Hk, G·L, D] against [B, Hk, S, D]
  const scores = matmul(reshape(q, [b, hk, (h / hk) * l, d]), k, { transB: true });
  const probs = softmax(mul(scores, 1 / Math.sqrt(d)));
  return mean(reshape(probs, [b, h, l, s]), 1);
}

function maskPerLayer(
  mask: MaskVariant | readonly MaskVariant[],
  layers: number,
): readonly MaskVariant[] {
  if (!Array.isArray(mask)) return new Array(layers).fill(mask);
  if (mask.length !== layers) {
    throw new Error(`decoder: ${mask.length} masks given for ${layers} layers`);
  }
  return mask as readonly MaskVariant[];
}
