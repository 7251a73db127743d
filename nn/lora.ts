// LoRA (Hu et al., 2021) exactly as Hugging Face PEFT computes it (DESIGN 3.5): adapters are a
// separate params subtree keyed by the adapted module's HF path, attached to a copy of the
// base tree for a forward pass, or merged into the base weights.
//   Linear:    y = x·Wᵀ + b + scale · dropout(x)·Aᵀ·Bᵀ       A [r, in], B [out, r]
//   Embedding: h = W[ids] + scale · Aᵀ[ids]·Bᵀ                A [r, V],  B [H, r]
// scale = α/√r with rslora, α/r without.
import { randomNormal, randomUniform, zeros } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { add, mul } from "../tensor/ops/elementwise.ts";
import { dropout } from "../tensor/ops/dropout.ts";
import { gather } from "../tensor/ops/gather.ts";
import { transpose } from "../tensor/ops/layout.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { foldIn } from "../tensor/random.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { updateAt } from "./params.ts";

/** LoRA hyper-parameters, as PEFT's LoraConfig. */
export interface LoraConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  useRslora: boolean;
  /**
   * PEFT's list form: a module is targeted when its name equals an entry or ends with
   * `.entry` (`["q_proj", "k_proj"]`, `["embed_tokens"]`). A regex read from a file is
   * resolved to the full names of the modules it matched.
   */
  targetModules: string[];
  baseModelNameOrPath: string | null;
  rankPattern?: Record<string, number>;
  alphaPattern?: Record<string, number>;
}

/** One adapted module, shapes exactly as PEFT stores them. */
export interface LoraModule {
  // Linear [out, in]: A = lora_A.weight [r, in], B = lora_B.weight [out, r]
  // Embedding [V, H]: A = lora_embedding_A [r, V], B = lora_embedding_B [H, r]
  A: Tensor;
  B: Tensor;
}

/** Adapters keyed by the module's Hugging Face path, e.g. "model.layers.0.self_attn.q_proj", "model.embed_tokens". */
export type LoraParams = Record<string, LoraModule>;

/** How an attached adapter runs: its scale and, in training, its dropout. */
export interface LoraAttachment extends LoraModule {
  scale: number;
  /** Dropout probability on the LoRA input path (0 in evaluation). */
  dropout: number;
  /** Seed of this module's dropout mask for this step. */
  seed: number;
}

/** True for modules PEFT adapts as an Embedding (lora_embedding_A/B) rather than a Linear. */
export function isEmbeddingModule(module: string): boolean {
  return module === "embed_tokens" || module.endsWith(".embed_tokens");
}

/** Whether `config.targetModules` selects `module` (PEFT's list semantics). */
export function isTargeted(config: Pick<LoraConfig, "targetModules">, module: string): boolean {
  return config.targetModules.some((t) => module === t || module.endsWith(`.${t}`));
}

/** The first pattern key matching `module` as PEFT's get_pattern_key does: `(.*\.)?(key)$`. */
function patternValue(pattern: Record<string, number> | undefined, module: string) {
  for (const [key, value] of Object.entries(pattern ?? {})) {
    if (new RegExp(`^(?:.*\\.)?(?:${key})$`).test(module)) return value;
  }
  return undefined;
}

/** The rank of `module`: rank_pattern's value when a key matches, else r. */
export function loraRank(config: LoraConfig, module: string): number {
  return patternValue(config.rankPattern, module) ?? config.r;
}

/** scale = α/√r with rslora, α/r without (per module r/α from rank_pattern/alpha_pattern when given). */
export function loraScale(config: LoraConfig, module: string): number {
  const r = loraRank(config, module);
  const alpha = patternValue(config.alphaPattern, module) ?? config.loraAlpha;
  return config.useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * Fresh adapters as PEFT initialises them: Linear A Kaiming-uniform (a = √5, so
 * U(±1/√in)), B zero; Embedding A zero, B standard normal. `shapes` gives each module's base
 * weight shape ([out, in] or [V, H]); each module's tensors come from its own seed.
 * @example
 * const lora = initLora(new Map([["model.layers.0.mlp.up_proj", [176, 64]]]), config, 42, device);
 */
export function initLora(
  shapes: ReadonlyMap<string, readonly number[]>,
  config: LoraConfig,
  seed: number,
  device: Device,
): LoraParams {
  const out: LoraParams = {};
  [...shapes].forEach(([module, shape], i) => {
    const [rows, cols] = shape as [number, number];
    const r = loraRank(config, module);
    const s = foldIn(seed, i);
    if (isEmbeddingModule(module)) {
      out[module] = {
        A: zeros([r, rows], { device }),
        B: randomNormal([cols, r], { seed: s, device }),
      };
    } else {
      const bound = 1 / Math.sqrt(cols);
      out[module] = {
        A: randomUniform([r, cols], { seed: s, low: -bound, high: bound, device }),
        B: zeros([rows, r], { device }),
      };
    }
  });
  return out;
}

/**
 * The LoRA term of a Linear layer: scale · dropout(x)·Aᵀ·Bᵀ. The scale multiplies the
 * rank-r product (PEFT scales the output): the same value, and training keeps one
 * [tokens, r] tensor for the backward instead of a [tokens, out] one.
 */
export function loraLinearDelta(x: Tensor, lora: LoraAttachment): Tensor {
  const input = lora.dropout > 0 ? dropout(x, lora.dropout, lora.seed) : x;
  const down = mul(matmul(input, lora.A, { transB: true }), lora.scale);
  return matmul(down, lora.B, { transB: true });
}

/** The LoRA term of an embedding lookup: scale · Aᵀ[ids]·Bᵀ (PEFT applies no dropout here). */
export function loraEmbeddingDelta(ids: Tensor, lora: LoraAttachment): Tensor {
  const rows = mul(gather(transpose(lora.A), ids), lora.scale); // [..., r]
  return matmul(rows, lora.B, { transB: true });
}

/** Options of `attachLora`. */
export interface AttachOptions {
  /** Apply the configured dropout with masks seeded from this (training); omit for evaluation. */
  dropoutSeed?: number;
}

/**
 * A copy of `base` whose adapted modules carry `lora` (their `weight` stays the base weight);
 * `linear` and `embedding` add the LoRA terms. The base tree is not modified.
 */
export function attachLora<T>(
  base: T,
  lora: LoraParams,
  config: LoraConfig,
  options: AttachOptions = {},
): T {
  let tree = base;
  Object.entries(lora).forEach(([module, { A, B }], i) => {
    const attachment: LoraAttachment = {
      A,
      B,
      scale: loraScale(config, module),
      dropout: options.dropoutSeed === undefined || isEmbeddingModule(module)
        ? 0
        : config.loraDropout,
      seed: options.dropoutSeed === undefined ? 0 : foldIn(options.dropoutSeed, i),
    };
    tree = updateAt(tree, module, (m) => ({ ...(m as object), lora: attachment }));
  });
  return tree;
}

/**
 * A copy of `base` with every adapter merged into its weight (f32): Linear W + scale·B·A,
 * Embedding W + scale·(B·A)ᵀ. The result has no LoRA terms left to run.
 */
export function mergeLora<T>(base: T, lora: LoraParams, config: LoraConfig): T {
  let tree = base;
  for (const [module, { A, B }] of Object.entries(lora)) {
    const scale = loraScale(config, module);
    tree = updateAt(tree, module, (m) => {
      const { weight } = m as { weight: Tensor };
      const delta = isEmbeddingModule(module)
        ? matmul(A, B, { transA: true, transB: true }) // [V, H]
        : matmul(B, A); // [out, in]
      return { ...(m as object), weight: add(weight, mul(delta, scale)) };
    });
  }
  return tree;
}
