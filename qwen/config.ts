// Hugging Face `config.json` of a Qwen2ForCausalLM (every Qwen2.5 size), validated once at
// the edge (DESIGN 3.1).
import { readJsonFile } from "./files.ts";

/** The fields the model needs, validated. */
export interface Qwen2Config {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  /** hidden_size / num_attention_heads (Qwen2 has no head_dim field). */
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly maxPositionEmbeddings: number;
  readonly tieWordEmbeddings: boolean;
  /** `torch_dtype` as written (float32, bfloat16, float16), if present. */
  readonly torchDtype: string | undefined;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | readonly number[] | undefined;
  /** Mixture-of-experts MLPs (UBMoE, Qwen2-MoE routing) when config.json has `num_experts`. */
  readonly moe: MoeConfig | undefined;
  /** The whole JSON object, for fields this project does not interpret (kept when writing). */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** The routing fields of a mixture-of-experts config (Qwen2-MoE names). */
export interface MoeConfig {
  /** `num_experts`: experts per layer. */
  readonly numExperts: number;
  /** `num_experts_per_tok`: top-k (default 1). */
  readonly numExpertsPerTok: number;
  /** `norm_topk_prob`: renormalise the chosen probabilities to sum 1 (default false). */
  readonly normTopkProb: boolean;
  /** `router_aux_loss_coef`: weight of the load-balancing loss in training (default 0). */
  readonly routerAuxLossCoef: number;
}

/** A config problem: `config.json: field 'hidden_size' …`. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Validate a parsed config.json; `source` names the file in errors. */
export function parseQwen2Config(json: unknown, source = "config.json"): Qwen2Config {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new ConfigError(`${source}: not a JSON object`);
  }
  const c = json as Record<string, unknown>;
  const fail = (field: string, what: string): never => {
    throw new ConfigError(`${source}: field '${field}' ${what}`);
  };
  const positiveInt = (field: string): number => {
    const v = c[field];
    if (v === undefined) fail(field, "is missing");
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      fail(field, `must be a positive integer, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const positiveNumber = (field: string, fallback?: number): number => {
    const v = c[field] ?? fallback;
    if (v === undefined) fail(field, "is missing");
    if (typeof v !== "number" || !(v > 0)) {
      fail(field, `must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const archs = c.architectures;
  if (archs !== undefined && !(Array.isArray(archs) && archs.every((a) => typeof a === "string"))) {
    fail("architectures", `must be a list of strings, got ${JSON.stringify(archs)}`);
  }
  const modelType = c.model_type;
  if (
    modelType !== undefined && !["qwen2", "ubmoe_qwen2", "qwen2_moe"].includes(modelType as string)
  ) {
    fail("model_type", `must be "qwen2" (or "ubmoe_qwen2"), got ${JSON.stringify(modelType)}`);
  }
  const hiddenSize = positiveInt("hidden_size");
  const numAttentionHeads = positiveInt("num_attention_heads");
  const numKeyValueHeads = positiveInt("num_key_value_heads");
  if (hiddenSize % numAttentionHeads !== 0) {
    fail(
      "hidden_size",
      `(${hiddenSize}) must be divisible by num_attention_heads (${numAttentionHeads})`,
    );
  }
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(
      "num_attention_heads",
      `(${numAttentionHeads}) must be divisible by num_key_value_heads (${numKeyValueHeads})`,
    );
  }
  const headDim = hiddenSize / numAttentionHeads;
  if (headDim % 2 !== 0) {
    fail("hidden_size", `gives an odd head dimension ${headDim}; RoPE needs an even one`);
  }
  const tie = c.tie_word_embeddings ?? false;
  if (typeof tie !== "boolean") {
    fail("tie_word_embeddings", `must be true or false, got ${JSON.stringify(tie)}`);
  }
  const dtype = c.torch_dtype;
  if (dtype !== undefined && !["float32", "bfloat16", "float16"].includes(dtype as string)) {
    fail("torch_dtype", `must be float32, bfloat16 or float16, got ${JSON.stringify(dtype)}`);
  }
  const optionalId = (field: string): number | undefined => {
    const v = c[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      fail(field, `must be a token id, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const eos = c.eos_token_id;
  let eosTokenId: number | number[] | undefined;
  if (Array.isArray(eos)) {
    if (!eos.every((x) => Number.isInteger(x) && x >= 0)) {
      fail("eos_token_id", `must be token ids, got ${JSON.stringify(eos)}`);
    }
    eosTokenId = eos as number[];
  } else eosTokenId = optionalId("eos_token_id");
  let moe: MoeConfig | undefined;
  if (c.num_experts !== undefined && c.num_experts !== null) {
    const numExperts = positiveInt("num_experts");
    const k = c.num_experts_per_tok ?? 1;
    if (typeof k !== "number" || !Number.isInteger(k) || k < 1 || k > numExperts) {
      fail(
        "num_experts_per_tok",
        `must be an integer in 1..${numExperts}, got ${JSON.stringify(k)}`,
      );
    }
    const norm = c.norm_topk_prob ?? false;
    if (typeof norm !== "boolean") {
      fail("norm_topk_prob", `must be true or false, got ${JSON.stringify(norm)}`);
    }
    const aux = c.router_aux_loss_coef ?? 0;
    if (typeof aux !== "number" || !(aux >= 0)) {
      fail("router_aux_loss_coef", `must be a number ≥ 0, got ${JSON.stringify(aux)}`);
    }
    const shared = c.shared_expert_intermediate_size;
    if (typeof shared === "number" && shared > 0) {
      fail("shared_expert_intermediate_size", "is not supported (UBMoE has no shared expert)");
    }
    moe = {
      numExperts,
      numExpertsPerTok: k as number,
      normTopkProb: norm as boolean,
      routerAuxLossCoef: aux as number,
    };
  }
  return {
    vocabSize: positiveInt("vocab_size"),
    hiddenSize,
    intermediateSize: positiveInt("intermediate_size"),
    numHiddenLayers: positiveInt("num_hidden_layers"),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: positiveNumber("rms_norm_eps"),
    ropeTheta: positiveNumber("rope_theta", 10000),
    maxPositionEmbeddings: positiveInt("max_position_embeddings"),
    tieWordEmbeddings: tie as boolean,
    torchDtype: dtype as string | undefined,
    bosTokenId: optionalId("bos_token_id"),
    eosTokenId,
    moe,
    raw: c,
  };
}

/** Read and validate `dir/config.json`. */
export async function readQwen2Config(dir: string): Promise<Qwen2Config> {
  const path = `${dir}/config.json`;
  const json = await readJsonFile(path, ConfigError);
  return parseQwen2Config(json, path);
}

/**
 * The expected shape of every weight of a Qwen2 model, by Hugging Face name (a
 * mixture-of-experts config has `mlp.gate` and `mlp.experts.E.*` instead of the dense MLP).
 */
export function expectedShapes(cfg: Qwen2Config): Map<string, number[]> {
  const { hiddenSize: h, intermediateSize: i, vocabSize: v, headDim: d } = cfg;
  const qOut = cfg.numAttentionHeads * d, kvOut = cfg.numKeyValueHeads * d;
  const shapes = new Map<string, number[]>([["model.embed_tokens.weight", [v, h]], [
    "model.norm.weight",
    [h],
  ]]);
  for (let l = 0; l < cfg.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    shapes.set(`${p}input_layernorm.weight`, [h]);
    shapes.set(`${p}post_attention_layernorm.weight`, [h]);
    shapes.set(`${p}self_attn.q_proj.weight`, [qOut, h]);
    shapes.set(`${p}self_attn.q_proj.bias`, [qOut]);
    shapes.set(`${p}self_attn.k_proj.weight`, [kvOut, h]);
    shapes.set(`${p}self_attn.k_proj.bias`, [kvOut]);
    shapes.set(`${p}self_attn.v_proj.weight`, [kvOut, h]);
    shapes.set(`${p}self_attn.v_proj.bias`, [kvOut]);
    shapes.set(`${p}self_attn.o_proj.weight`, [h, qOut]);
    const experts = cfg.moe
      ? Array.from({ length: cfg.moe.numExperts }, (_, e) => `${p}mlp.experts.${e}.`)
      : [`${p}mlp.`];
    if (cfg.moe) shapes.set(`${p}mlp.gate.weight`, [cfg.moe.numExperts, h]);
    for (const x of experts) {
      shapes.set(`${x}gate_proj.weight`, [i, h]);
      shapes.set(`${x}up_proj.weight`, [i, h]);
      shapes.set(`${x}down_proj.weight`, [h, i]);
    }
  }
  if (!cfg.tieWordEmbeddings) shapes.set("lm_head.weight", [v, h]);
  return shapes;
}
