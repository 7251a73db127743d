// Opening a model directory for a command: backend, weights, tokenizer (when present).
import { init } from "../tensor/backend.ts";
import type { Device } from "../tensor/device.ts";
import { loadQwen, type ModelUse, type QwenModel } from "../qwen/checkpoint.ts";
import { QwenTokenizer } from "../qwen/tokenizer.ts";
import { AdapterError, checkAdapterAgainstModel, readAdapter } from "../qwen/peft.ts";
import { HfCacheError, locateModel } from "../qwen/hf_cache.ts";
import { type LoraConfig, type LoraParams, mergeLora } from "../nn/lora.ts";
import type { Qwen2Config } from "../qwen/config.ts";
import { nodeAt } from "../nn/params.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { scope } from "../tensor/scope.ts";
import { UserError } from "./cli.ts";

/** Flags every model command shares. */
export const modelFlags = {
  model: {
    type: "string",
    metavar: "DIR|ID",
    help: "Hugging Face model directory (config.json, *.safetensors, tokenizer files), " +
      "or a repo id (org/name[@revision]) already in the local Hugging Face cache",
  },
  backend: {
    type: "string",
    metavar: "NAME",
    help: "webgpu, reference or auto (default: TENSOR_BACKEND, else auto)",
  },
} as const;

/** Pick the backend named by --backend. */
export async function openDevice(backend: string | undefined): Promise<Device> {
  if (backend !== undefined && !["webgpu", "reference", "auto"].includes(backend)) {
    throw new UserError(`--backend must be webgpu, reference or auto, got '${backend}'`, 2);
  }
  return await init({ backend: backend as "webgpu" | "reference" | "auto" | undefined });
}

/** A model argument (--model, --base, --bi): as given, and the directory it names. */
export interface ModelRef {
  /** The argument as the user gave it: a path or a Hugging Face repo id. */
  arg: string;
  /** The directory to read: the path itself, or the id's snapshot in the hub cache. */
  dir: string;
  /** The repo id when `dir` came from the hub cache, else null. */
  repoId: string | null;
}

/**
 * Resolve a model argument: a path on disk is itself; a Hugging Face repo id becomes its
 * snapshot in the local hub cache (offline, qwen/hf_cache.ts), said on stderr as
 * `<command>: model <id> → <dir>`. Every command resolves its model flags here.
 * @example
 * const base = await resolveModel("dp", flags.model ?? defaultModel);
 * const { model } = await openModel(base.dir, device);
 */
export async function resolveModel(command: string, arg: string): Promise<ModelRef> {
  try {
    const { dir, repoId, note } = await locateModel(arg, (name) => Deno.env.get(name));
    const ref = { arg, dir, repoId };
    if (repoId) console.error(`${command}: model ${describeModel(ref)}${note ? ` (${note})` : ""}`);
    return ref;
  } catch (e) {
    if (e instanceof HfCacheError) throw new UserError(e.message);
    throw e;
  }
}

/** How outputs name a model: the argument, and for a repo id also the snapshot it resolved to. */
export function describeModel(ref: ModelRef): string {
  return ref.repoId ? `${ref.arg} → ${ref.dir}` : ref.arg;
}

/** Load weights and, if the directory has one, the tokenizer. */
export async function openModel(
  dir: string,
  device: Device,
  use: ModelUse = "all",
): Promise<{ model: QwenModel; tokenizer: QwenTokenizer | null }> {
  const model = await loadQwen(dir, device, use);
  return { model, tokenizer: await openTokenizer(dir) };
}

/** The directory's tokenizer, or null when it has no tokenizer.json. */
export async function openTokenizer(dir: string): Promise<QwenTokenizer | null> {
  const hasTokenizer = await Deno.stat(`${dir}/tokenizer.json`).then(() => true, () => false);
  return hasTokenizer ? await QwenTokenizer.load(dir) : null;
}

/** Throw a UserError naming `where` if an id is outside the vocabulary. */
export function checkIds(ids: readonly number[], vocabSize: number, where: string): void {
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad !== undefined) {
    throw new UserError(`${where}: token id ${bad} is outside the vocabulary (size ${vocabSize})`);
  }
}

/** The `--adapter` flag of the commands that measure a model. */
export const adapterFlag = {
  type: "string",
  metavar: "DIR",
  help:
    "a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors), merged in",
} as const;

/** A PEFT LoRA adapter directory, read onto `device` and checked against the model's shapes. */
export async function readCheckedAdapter(
  dir: string,
  modelConfig: Qwen2Config,
  device: Device,
): Promise<{ params: LoraParams; config: LoraConfig }> {
  try {
    const adapter = await readAdapter(dir, device);
    checkAdapterAgainstModel(adapter.params, adapter.config, modelConfig, dir);
    return adapter;
  } catch (e) {
    if (e instanceof AdapterError) throw new UserError(e.message);
    throw e;
  }
}

/**
 * The model with a PEFT LoRA adapter merged into its weights (checked against the model's
 * shapes first); the merged weights are prepared for the device's matmul like loaded ones.
 * With `consume`, each replaced base weight is freed as soon as its merge is done (the base
 * model is then unusable), so merging costs one weight's extra memory, not the adapter's.
 * @example
 * const adapted = await applyAdapter(model, "runs/embed-ffn");
 */
export async function applyAdapter(
  model: QwenModel,
  dir: string,
  options: { consume?: boolean } = {},
): Promise<QwenModel> {
  const device = model.params.model.embed_tokens.weight.device;
  try {
    const { params: lora, config } = await readCheckedAdapter(dir, model.config, device);
    let params = model.params;
    for (const [module, ab] of Object.entries(lora)) {
      const base = nodeAt(params, module) as { weight: Tensor } | undefined;
      // a model loaded for one use (e.g. DP) lacks weights it does not run: skip their deltas
      if (base?.weight) {
        params = scope(() => mergeLora(params, { [module]: ab }, config));
        const merged = (nodeAt(params, module) as { weight: Tensor }).weight;
        if (!module.endsWith("embed_tokens")) device.prepareLinearWeight?.(merged);
        if (options.consume) base.weight.dispose();
      }
      ab.A.dispose();
      ab.B.dispose();
    }
    return { ...model, params };
  } catch (e) {
    if (e instanceof AdapterError) throw new UserError(e.message);
    throw e;
  }
}
