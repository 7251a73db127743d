// LoRA adapters in Hugging Face PEFT's own file format (DESIGN 3.5): `adapter_config.json` +
// `adapter_model.safetensors`, read and written. Checked against PEFT's source:
// - PeftModel.base_model is a LoraModel whose `.model` is the wrapped model, so every tensor
//   name starts `base_model.model.` followed by the wrapped model's own names
//   (`base_model.model.model.layers.0…` for Qwen2ForCausalLM, `base_model.model.layers.0…` for
//   a bare Qwen2Model).
// - Linear layers hold `lora_A`/`lora_B` as nn.Linear (→ `lora_A.weight` [r, in],
//   `lora_B.weight` [out, r]); Embedding layers hold `lora_embedding_A` [r, V] and
//   `lora_embedding_B` [H, r] as bare nn.Parameters, so once the adapter name is stripped
//   (`_remove_adapter_name_from_state_dict_key`) those names have no `.weight`.
// - scaling = lora_alpha/√r with use_rslora, else lora_alpha/r, r and α per module from
//   rank_pattern/alpha_pattern (`get_pattern_key`).
import { defaultDevice } from "../tensor/backend.ts";
import { tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "../tensor/dtype.ts";
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from "../tensor/safetensors.ts";
import { fmtShape, type Tensor } from "../tensor/tensor.ts";
import { expectedShapes, type Qwen2Config } from "./config.ts";
import { readJsonFile } from "./files.ts";
import {
  isEmbeddingModule,
  isTargeted,
  type LoraConfig,
  type LoraParams,
  loraRank,
} from "../nn/lora.ts";

// the adapter math lives in nn/lora.ts; re-exported for users of the file format
export {
  isEmbeddingModule,
  isTargeted,
  type LoraConfig,
  type LoraModule,
  type LoraParams,
  loraRank,
  loraScale,
} from "../nn/lora.ts";

/** A bad adapter file or adapter/model mismatch: one line naming the file (or source) and field. */
export class AdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AdapterError";
  }
}

/** PEFT's file names. */
export const adapterConfigFile = "adapter_config.json";
export const adapterWeightsFile = "adapter_model.safetensors";

// ---- writing ----------------------------------------------------------------------------

/** PEFT's tensor names of one module's A and B for a causal-LM base. */
function peftNames(module: string): { A: string; B: string } {
  const p = `base_model.model.${module}`;
  return isEmbeddingModule(module)
    ? { A: `${p}.lora_embedding_A`, B: `${p}.lora_embedding_B` }
    : { A: `${p}.lora_A.weight`, B: `${p}.lora_B.weight` };
}

/**
 * adapter_config.json as PEFT writes it (keys sorted, indent 2). Only fields every PEFT since
 * 0.9 knows: older versions refuse unknown keys, newer ones fill missing ones with defaults.
 */
function configJson(config: LoraConfig): string {
  const fields: Record<string, unknown> = {
    alpha_pattern: config.alphaPattern ?? {},
    auto_mapping: null,
    base_model_name_or_path: config.baseModelNameOrPath,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: config.loraAlpha,
    lora_dropout: config.loraDropout,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    peft_type: "LORA",
    r: config.r,
    rank_pattern: config.rankPattern ?? {},
    revision: null,
    target_modules: config.targetModules,
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: config.useRslora,
  };
  return JSON.stringify(fields, null, 2);
}

async function toWrite(t: Tensor, name: string): Promise<TensorToWrite> {
  const values = await t.data();
  switch (t.dtype) {
    case "f32":
      return { dtype: "F32", shape: t.shape, data: Float32Array.from(values) };
    case "bf16":
      return { dtype: "BF16", shape: t.shape, data: Uint16Array.from(values, f32ToBf16Bits) };
    case "f16":
      return { dtype: "F16", shape: t.shape, data: Uint16Array.from(values, f32ToF16Bits) };
    case "i32":
      throw new AdapterError(`writeAdapter: tensor '${name}' is i32; LoRA weights are floats`);
    default:
      return t.dtype satisfies never;
  }
}

/**
 * Write `dir/adapter_config.json` and `dir/adapter_model.safetensors` as PEFT does for a
 * causal-LM base, keeping each tensor's dtype. Both files are written to temporary names
 * first; the old config is removed before either is renamed into place, so a crash leaves
 * the old adapter, the new one, or no config at all — never a mixed or half-written pair.
 * @example
 * await writeAdapter("runs/ffn-lora", params, { r: 8, loraAlpha: 16, loraDropout: 0.05,
 *   useRslora: true, targetModules: ["gate_proj", "up_proj", "down_proj"],
 *   baseModelNameOrPath: "Qwen/Qwen2.5-0.5B" });
 */
export async function writeAdapter(
  dir: string,
  params: LoraParams,
  config: LoraConfig,
): Promise<void> {
  checkConfig(config, "writeAdapter");
  const tensors: Record<string, TensorToWrite> = {};
  for (const [module, { A, B }] of Object.entries(params)) {
    if (!isTargeted(config, module)) {
      throw new AdapterError(
        `writeAdapter: module '${module}' is not matched by target_modules ${
          JSON.stringify(config.targetModules)
        }`,
      );
    }
    checkRank(module, A.shape, B.shape, loraRank(config, module), "writeAdapter");
    const names = peftNames(module);
    tensors[names.A] = await toWrite(A, names.A);
    tensors[names.B] = await toWrite(B, names.B);
  }
  await Deno.mkdir(dir, { recursive: true });
  const suffix = `.tmp-${Deno.pid}`;
  const configPath = `${dir}/${adapterConfigFile}`, weightsPath = `${dir}/${adapterWeightsFile}`;
  await Deno.writeTextFile(configPath + suffix, configJson(config));
  await writeSafetensors(weightsPath + suffix, tensors, { format: "pt" });
  await Deno.remove(configPath).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  await Deno.rename(weightsPath + suffix, weightsPath);
  await Deno.rename(configPath + suffix, configPath);
}

/** A and B are matrices whose rank dimension is `r` (A [r, ·], B [·, r]). */
function checkRank(
  module: string,
  a: readonly number[],
  b: readonly number[],
  r: number,
  source: string,
): void {
  if (a.length !== 2 || b.length !== 2 || a[0] !== r || b[1] !== r) {
    throw new AdapterError(
      `${source}: module '${module}' has A ${fmtShape(a)} and B ${fmtShape(b)}; ` +
        `expected A [${r},·] and B [·,${r}] for r ${r}`,
    );
  }
}

/** An in-memory config is what PEFT could have written. */
function checkConfig(config: LoraConfig, source: string): void {
  const bad = (field: string, what: string): never => {
    throw new AdapterError(`${source}: field '${field}' ${what}`);
  };
  if (!Number.isInteger(config.r) || config.r <= 0) bad("r", "must be a positive integer");
  if (!(config.loraAlpha > 0)) bad("lora_alpha", "must be a positive number");
  if (!(config.loraDropout >= 0 && config.loraDropout < 1)) {
    bad("lora_dropout", "must be in [0, 1)");
  }
  if (config.targetModules.length === 0) bad("target_modules", "must not be empty");
}

// ---- reading ----------------------------------------------------------------------------

/** Settings whose non-default values change what the adapter computes, which we do not. */
const unsupported: Record<string, { isDefault: (v: unknown) => boolean; what: string }> = {
  use_dora: { isDefault: (v) => v === false, what: "DoRA adapters are not supported" },
  fan_in_fan_out: { isDefault: (v) => v === false, what: "fan_in_fan_out is not supported" },
  bias: { isDefault: (v) => v === "none", what: "LoRA biases are not supported (only 'none')" },
  lora_bias: { isDefault: (v) => v === false, what: "LoRA biases are not supported" },
  modules_to_save: { isDefault: empty, what: "modules_to_save is not supported" },
  layers_to_transform: { isDefault: empty, what: "layers_to_transform is not supported" },
  exclude_modules: { isDefault: empty, what: "exclude_modules is not supported" },
  layer_replication: { isDefault: empty, what: "layer_replication is not supported" },
  trainable_token_indices: { isDefault: empty, what: "trainable_token_indices is not supported" },
  target_parameters: { isDefault: empty, what: "target_parameters is not supported" },
  use_qalora: { isDefault: (v) => v === false, what: "QA-LoRA is not supported" },
  alora_invocation_tokens: { isDefault: empty, what: "aLoRA is not supported" },
};

function empty(v: unknown): boolean {
  return v === null || (Array.isArray(v) && v.length === 0) || (typeof v === "string" && v === "");
}

/** target_modules as written: a list, or a regex full-matched against module names. */
type Targets = { list: string[] } | { regex: RegExp; source: string };

/** Validate a parsed adapter_config.json; `path` names the file in errors. */
function parseAdapterConfig(json: unknown, path: string): { config: LoraConfig; targets: Targets } {
  const fail = (field: string, what: string): never => {
    throw new AdapterError(`${path}: field '${field}' ${what}`);
  };
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new AdapterError(`${path}: not a JSON object`);
  }
  const c = json as Record<string, unknown>;
  const required = (field: string): unknown => c[field] ?? fail(field, "is missing");
  const got = (v: unknown) => `got ${JSON.stringify(v)}`;
  if (required("peft_type") !== "LORA") {
    fail("peft_type", `must be "LORA", ${got(c.peft_type)}`);
  }
  for (const [field, rule] of Object.entries(unsupported)) {
    if (c[field] !== undefined && !rule.isDefault(c[field])) {
      fail(field, `is ${JSON.stringify(c[field])}: ${rule.what}`);
    }
  }
  const r = required("r");
  if (typeof r !== "number" || !Number.isInteger(r) || r <= 0) {
    fail("r", `must be a positive integer, ${got(r)}`);
  }
  const alpha = required("lora_alpha");
  if (typeof alpha !== "number" || !(alpha > 0)) {
    fail("lora_alpha", `must be a positive number, ${got(alpha)}`);
  }
  const dropout = c.lora_dropout ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) {
    fail("lora_dropout", `must be a number in [0, 1), ${got(dropout)}`);
  }
  const rslora = c.use_rslora ?? false;
  if (typeof rslora !== "boolean") fail("use_rslora", `must be true or false, ${got(rslora)}`);
  const base = c.base_model_name_or_path ?? null;
  if (base !== null && typeof base !== "string") {
    fail("base_model_name_or_path", `must be a string or null, ${got(base)}`);
  }
  const pattern = (field: string, integer: boolean): Record<string, number> | undefined => {
    const p = c[field] ?? {};
    if (typeof p !== "object" || Array.isArray(p)) fail(field, `must be an object, ${got(p)}`);
    for (const [key, v] of Object.entries(p as object)) {
      if (typeof v !== "number" || !(v > 0) || (integer && !Number.isInteger(v))) {
        fail(`${field}.${key}`, `must be a positive ${integer ? "integer" : "number"}, ${got(v)}`);
      }
      compile(key, () => fail(field, `key ${JSON.stringify(key)} is not a valid regex`));
    }
    return Object.keys(p as object).length > 0 ? p as Record<string, number> : undefined;
  };
  const rankPattern = pattern("rank_pattern", true);
  const alphaPattern = pattern("alpha_pattern", false);
  const t = required("target_modules");
  let targets: Targets;
  if (typeof t === "string") {
    // PEFT full-matches the regex (re.fullmatch); Python and JavaScript agree on the usual syntax
    const regex = compile(
      `^(?:${t})$`,
      () => fail("target_modules", `is not a valid regular expression: ${JSON.stringify(t)}`),
    );
    targets = { regex, source: t };
  } else if (
    Array.isArray(t) && t.length > 0 && t.every((x) => typeof x === "string" && x !== "")
  ) {
    targets = { list: t as string[] };
  } else {
    targets = fail(
      "target_modules",
      `must be a non-empty list of module names or a regex, ${got(t)}`,
    );
  }
  const config: LoraConfig = {
    r: r as number,
    loraAlpha: alpha as number,
    loraDropout: dropout as number,
    useRslora: rslora as boolean,
    targetModules: "list" in targets ? targets.list : [],
    baseModelNameOrPath: base as string | null,
    ...(rankPattern ? { rankPattern } : {}),
    ...(alphaPattern ? { alphaPattern } : {}),
  };
  return { config, targets };
}

function compile(source: string, onError: () => never): RegExp {
  try {
    return new RegExp(source);
  } catch {
    return onError();
  }
}

/** The parts of a PEFT tensor name: `base_model.model.<module>.<role>`. */
const tensorName =
  /^base_model\.model\.(.+)\.(lora_A\.weight|lora_B\.weight|lora_embedding_A|lora_embedding_B|base_layer\.weight)$/;

/** A module's tensors as found in the file, under the wrapped model's own (native) name. */
interface FoundModule {
  native: string;
  roles: Map<string, string>;
}

/**
 * Read a PEFT LoRA adapter directory: validate adapter_config.json, accept causal-LM
 * (`base_model.model.model.layers…`) and bare-model (`base_model.model.layers…`) names, and
 * upcast bf16/f16 weights to f32 on `device`.
 * @example
 * const { params, config } = await readAdapter("runs/ffn-lora");
 */
export async function readAdapter(
  dir: string,
  device: Device = defaultDevice(),
): Promise<{ params: LoraParams; config: LoraConfig }> {
  const configPath = `${dir}/${adapterConfigFile}`, weightsPath = `${dir}/${adapterWeightsFile}`;
  const { config, targets } = parseAdapterConfig(
    await readJsonFile(configPath, AdapterError),
    configPath,
  );
  using file = await SafetensorsFile.open(weightsPath).catch((e) => {
    throw new AdapterError((e as Error).message);
  });
  const bad = (what: string): never => {
    throw new AdapterError(`${weightsPath}: ${what}`);
  };
  // Qwen2ForCausalLM's children are `model` and `lm_head`; a bare Qwen2Model's are
  // `embed_tokens`, `layers` and `norm`: the first segment says which base PEFT wrapped.
  const modules = new Map<string, FoundModule>();
  const forms = new Set<string>();
  for (const name of file.tensors.keys()) {
    const m = tensorName.exec(name) ??
      bad(`tensor '${name}' is not a PEFT LoRA weight (base_model.model.<module>.lora_A.weight…)`);
    const [, native, role] = m as unknown as [string, string, string];
    const causal = native.startsWith("model.") || native === "lm_head";
    forms.add(causal ? "causal" : "bare");
    const module = causal ? native : `model.${native}`;
    const found = modules.get(module) ?? { native, roles: new Map() };
    found.roles.set(role, name);
    modules.set(module, found);
  }
  if (forms.size > 1) {
    bad(
      "mixes causal-LM names (base_model.model.model.…) with bare-model names (base_model.model.layers.…)",
    );
  }
  if (modules.size === 0) bad("holds no LoRA weights");
  if ("regex" in targets) {
    config.targetModules = [...modules.keys()].sort();
  }
  const params: LoraParams = {};
  try {
    for (const [module, { native, roles }] of modules) {
      const targeted = "regex" in targets
        ? targets.regex.test(native)
        : isTargeted({ targetModules: targets.list }, native);
      if (!targeted) {
        throw new AdapterError(
          `${configPath}: field 'target_modules' does not match module '${native}' found in ${adapterWeightsFile}`,
        );
      }
      const embedding = isEmbeddingModule(module);
      const [roleA, roleB] = embedding
        ? ["lora_embedding_A", "lora_embedding_B"]
        : ["lora_A.weight", "lora_B.weight"];
      const other = embedding ? "lora_A.weight" : "lora_embedding_A";
      if (roles.has(other)) {
        bad(
          `module '${module}' has ${other}, but it is ${
            embedding ? "an embedding" : "not an embedding"
          } (expected ${roleA})`,
        );
      }
      const prefix = `base_model.model.${native}`;
      const nameA = roles.get(roleA) ??
        bad(`tensor '${prefix}.${roleA}' missing for module '${module}'`);
      const nameB = roles.get(roleB) ??
        bad(`tensor '${prefix}.${roleB}' missing for module '${module}'`);
      // `base_layer.weight` (saved when embeddings are targeted) is a copy of the frozen base
      // weight, which the base model already supplies: ignored.
      const infoA = file.info(nameA)!, infoB = file.info(nameB)!;
      checkRank(module, infoA.shape, infoB.shape, loraRank(config, module), weightsPath);
      params[module] = {
        A: tensor(await readF32(file, nameA), infoA.shape, { device }),
        B: tensor(await readF32(file, nameB), infoB.shape, { device }),
      };
    }
  } catch (e) {
    for (const { A, B } of Object.values(params)) A.dispose(), B.dispose();
    throw e;
  }
  return { params, config };
}

/** A stored F32/BF16/F16 tensor's values as f32. */
async function readF32(file: SafetensorsFile, name: string): Promise<Float32Array> {
  const { info, bytes } = await file.read(name);
  switch (info.dtype) {
    case "F32":
      return new Float32Array(bytes.buffer);
    case "BF16":
      return Float32Array.from(new Uint16Array(bytes.buffer), bf16BitsToF32);
    case "F16":
      return Float32Array.from(new Uint16Array(bytes.buffer), f16BitsToF32);
    default:
      throw new AdapterError(
        `${file.path}: tensor '${name}' has dtype ${info.dtype}; expected F32, BF16 or F16`,
      );
  }
}

// ---- against a model --------------------------------------------------------------------

/**
 * Check an adapter against a model (its config, or its weight shapes by Hugging Face name):
 * every adapted module exists with A/B shapes [r, in]/[out, r] (embedding [r, V]/[H, r]),
 * and every module target_modules selects has an adapter. `source` names the adapter in errors.
 * @example
 * checkAdapterAgainstModel(params, config, model.config, "runs/ffn-lora");
 */
export function checkAdapterAgainstModel(
  params: LoraParams,
  config: LoraConfig,
  model: Qwen2Config | ReadonlyMap<string, readonly number[]>,
  source = "adapter",
): void {
  const shapes = isShapeMap(model) ? model : expectedShapes(model);
  for (const [module, { A, B }] of Object.entries(params)) {
    const weight = shapes.get(`${module}.weight`);
    if (!weight || weight.length !== 2) {
      throw new AdapterError(`${source}: module '${module}' does not exist in the model`);
    }
    const r = loraRank(config, module);
    // Linear weight [out, in]: A [r, in], B [out, r]; Embedding weight [V, H]: A [r, V], B [H, r]
    const [rows, cols] = weight as [number, number];
    const want = isEmbeddingModule(module)
      ? { A: [r, rows], B: [cols, r] }
      : { A: [r, cols], B: [rows, r] };
    for (const [which, got] of [["A", A.shape], ["B", B.shape]] as const) {
      const expected = want[which];
      if (got.length !== 2 || got[0] !== expected[0] || got[1] !== expected[1]) {
        throw new AdapterError(
          `${source}: module '${module}' ${which} has shape ${fmtShape(got)}, expected ${
            fmtShape(expected)
          } for base weight ${fmtShape(weight)} and r ${r}`,
        );
      }
    }
  }
  let matched = 0;
  for (const [name, shape] of shapes) {
    const module = name.replace(/\.weight$/, "");
    if (module === name || shape.length !== 2 || !isTargeted(config, module)) continue;
    matched++;
    if (!params[module]) {
      throw new AdapterError(
        `${source}: module '${module}' is matched by target_modules but has no adapter`,
      );
    }
  }
  if (matched === 0) {
    throw new AdapterError(
      `${source}: target_modules ${
        JSON.stringify(config.targetModules)
      } match no module of the model`,
    );
  }
}

function isShapeMap(
  model: Qwen2Config | ReadonlyMap<string, readonly number[]>,
): model is ReadonlyMap<string, readonly number[]> {
  return model instanceof Map;
}
