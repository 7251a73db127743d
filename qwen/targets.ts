// The paper's training targets (DESIGN 3.5): which parameters of a Qwen2 model learn.
// ATT = q,k,v,o; FFN = gate,up,down; EMB = embed_tokens; `+` combines; ALL = all of them.
import type { Qwen2Config } from "./config.ts";

/** One target group. */
export type TargetGroup = "ATT" | "FFN" | "EMB";

const groupModules = {
  ATT: ["q_proj", "k_proj", "v_proj", "o_proj"],
  FFN: ["gate_proj", "up_proj", "down_proj"],
  EMB: ["embed_tokens"],
} as const satisfies Record<TargetGroup, readonly string[]>;

/** A parsed target: its canonical name and groups. */
export interface Target {
  /** As the paper writes it: "FFN+ATT", "ALL". */
  readonly name: string;
  readonly groups: readonly TargetGroup[];
  /** ALL: in full fine-tuning also the norms (every parameter learns). */
  readonly all: boolean;
}

/** A `--target` that is not one of ATT, FFN, EMB, `+` combinations or ALL. */
export class TargetError extends Error {}

/**
 * Parse a target name (case-insensitive): "FFN", "ATT+EMB", "ALL".
 * @example
 * parseTarget("ffn+att").groups; // ["FFN", "ATT"]
 */
export function parseTarget(text: string): Target {
  const name = text.trim().toUpperCase();
  if (name === "ALL") return { name, groups: ["ATT", "FFN", "EMB"], all: true };
  const parts = name.split("+").map((p) => p.trim());
  const groups: TargetGroup[] = [];
  for (const p of parts) {
    if (!(p in groupModules)) {
      throw new TargetError(
        `unknown target '${text}': use ATT, FFN, EMB, a '+' combination (e.g. FFN+ATT) or ALL`,
      );
    }
    if (groups.includes(p as TargetGroup)) {
      throw new TargetError(`target '${text}' names ${p} twice`);
    }
    groups.push(p as TargetGroup);
  }
  return { name: groups.join("+"), groups, all: false };
}

/** PEFT `target_modules` suffixes of a target. */
export function targetSuffixes(target: Target): string[] {
  return target.groups.flatMap((g) => [...groupModules[g]]);
}

/** The adapted modules of a target and their base weight shapes, in model order. */
export function targetModuleShapes(config: Qwen2Config, target: Target): Map<string, number[]> {
  const { hiddenSize: h, intermediateSize: i, vocabSize: v, headDim: d } = config;
  const qOut = config.numAttentionHeads * d, kvOut = config.numKeyValueHeads * d;
  const shapes = new Map<string, number[]>();
  if (target.groups.includes("EMB")) shapes.set("model.embed_tokens", [v, h]);
  for (let l = 0; l < config.numHiddenLayers; l++) {
    const p = `model.layers.${l}`;
    if (target.groups.includes("ATT")) {
      shapes.set(`${p}.self_attn.q_proj`, [qOut, h]);
      shapes.set(`${p}.self_attn.k_proj`, [kvOut, h]);
      shapes.set(`${p}.self_attn.v_proj`, [kvOut, h]);
      shapes.set(`${p}.self_attn.o_proj`, [h, qOut]);
    }
    if (target.groups.includes("FFN")) {
      shapes.set(`${p}.mlp.gate_proj`, [i, h]);
      shapes.set(`${p}.mlp.up_proj`, [i, h]);
      shapes.set(`${p}.mlp.down_proj`, [h, i]);
    }
  }
  return shapes;
}

/**
 * The parameter names full fine-tuning trains: the target modules' weights and biases (ALL:
 * every parameter the encoder uses, norms included). `names` are the model's parameter names.
 */
export function fullTrainableNames(names: Iterable<string>, target: Target): string[] {
  // the contrastive loss never reads an untied lm_head: it would only get zeros
  if (target.all) return [...names].filter((n) => n !== "lm_head.weight");
  const suffixes = targetSuffixes(target);
  return [...names].filter((n) => {
    const module = n.replace(/\.(weight|bias)$/, "");
    return suffixes.some((s) => module.endsWith(`.${s}`) || module === s);
  });
}
