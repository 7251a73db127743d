// Building a UBMoE model (DESIGN 3.6): every layer's MLP becomes a mixture of the base
// model's MLP (expert 0, causal) and the MLP of a bidirectionally trained model (expert 1),
// with a router `mlp.gate` [2, H]; attention, norms and embeddings stay the base model's.
// Saved with Qwen2-MoE names: `mlp.experts.E.{gate,up,down}_proj.weight`, `mlp.gate.weight`.
import { randomNormal } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { foldIn } from "../tensor/random.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { fmtShape } from "../tensor/tensor.ts";
import type { Qwen2Config } from "./config.ts";
import type { QwenParams } from "./checkpoint.ts";
import type { ExpertParams, MoeMlpParams } from "./moe.ts";

/** The `architectures` entry of a UBMoE config.json. */
export const ubmoeArchitecture = "UBMoEQwen2ForCausalLM";

/** A base/bi pair that cannot be combined. */
export class UbmoeError extends Error {}

/** Routing options written into config.json. */
export interface UbmoeOptions {
  topK: number;
  normTopkProb: boolean;
  routerAuxLossCoef: number;
}

/** config.json of the UBMoE model: the base's fields plus Qwen2-MoE's routing fields. */
export function ubmoeConfigJson(base: Qwen2Config, o: UbmoeOptions): Record<string, unknown> {
  return {
    ...base.raw,
    architectures: [ubmoeArchitecture],
    model_type: "ubmoe_qwen2",
    num_experts: 2,
    num_experts_per_tok: o.topK,
    norm_topk_prob: o.normTopkProb,
    router_aux_loss_coef: o.routerAuxLossCoef,
  };
}

/** Check that a bidirectionally trained model has the base's architecture and shapes. */
export function checkBiMatchesBase(base: Qwen2Config, bi: Qwen2Config, biSource: string): void {
  if (base.moe || bi.moe) {
    throw new UbmoeError(`${base.moe ? "the base" : biSource} is already a mixture of experts`);
  }
  const fields = [
    ["hidden_size", base.hiddenSize, bi.hiddenSize],
    ["intermediate_size", base.intermediateSize, bi.intermediateSize],
    ["num_hidden_layers", base.numHiddenLayers, bi.numHiddenLayers],
    ["num_attention_heads", base.numAttentionHeads, bi.numAttentionHeads],
    ["num_key_value_heads", base.numKeyValueHeads, bi.numKeyValueHeads],
    ["vocab_size", base.vocabSize, bi.vocabSize],
  ] as const;
  for (const [name, a, b] of fields) {
    if (a !== b) throw new UbmoeError(`${biSource}: ${name} is ${b}, the base has ${a}`);
  }
}

/** Routers drawn as Hugging Face initialises a Linear of a Qwen2 model: N(0, 0.02²). */
export function initRouters(config: Qwen2Config, seed: number, device: Device): Tensor[] {
  return Array.from(
    { length: config.numHiddenLayers },
    (_, i) => randomNormal([2, config.hiddenSize], { std: 0.02, seed: foldIn(seed, i), device }),
  );
}

/** The dense MLP of a layer (throws on a mixture). */
export function denseMlp(params: QwenParams, layer: number): ExpertParams {
  const mlp = params.model.layers[layer]!.mlp;
  if ("experts" in mlp) throw new UbmoeError(`layer ${layer} is already a mixture of experts`);
  return mlp;
}

/**
 * The UBMoE params: the base model with every MLP replaced by the mixture of
 * [base MLP, bi MLP] and router `routers[i]` [2, H]. Tensors are shared, not copied.
 */
export function assembleUbmoe(
  base: QwenParams,
  biMlps: readonly ExpertParams[],
  routers: readonly Tensor[],
): QwenParams {
  const layers = base.model.layers.map((layer, i) => {
    const expert0 = denseMlp(base, i), expert1 = biMlps[i]!;
    for (const k of ["gate_proj", "up_proj", "down_proj"] as const) {
      const a = expert0[k].weight.shape, b = expert1[k].weight.shape;
      if (fmtShape(a) !== fmtShape(b)) {
        throw new UbmoeError(
          `layer ${i} ${k}: the bi model's weight is ${fmtShape(b)}, the base's ${fmtShape(a)}`,
        );
      }
    }
    const mlp: MoeMlpParams = { gate: { weight: routers[i]! }, experts: [expert0, expert1] };
    return { ...layer, mlp };
  });
  return { ...base, model: { ...base.model, layers } };
}

/** The routers of a UBMoE params tree, one [E, H] tensor per layer. */
export function routersOf(params: QwenParams): Tensor[] {
  return params.model.layers.map((l, i) => {
    if (!("experts" in l.mlp)) throw new UbmoeError(`layer ${i} has no router`);
    return l.mlp.gate.weight;
  });
}

/** A copy of a UBMoE params tree with other routers. */
export function withRouters(params: QwenParams, routers: readonly Tensor[]): QwenParams {
  const layers = params.model.layers.map((l, i) => {
    const mlp = l.mlp as MoeMlpParams;
    return { ...l, mlp: { ...mlp, gate: { weight: routers[i]! } } };
  });
  return { ...params, model: { ...params.model, layers } };
}
