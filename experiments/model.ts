// Opening a model directory for a command: backend, weights, tokenizer (when present).
import { init } from "../tensor/backend.ts";
import type { Device } from "../tensor/device.ts";
import { loadQwen, type QwenModel } from "../qwen/checkpoint.ts";
import { QwenTokenizer } from "../qwen/tokenizer.ts";
import { UserError } from "./cli.ts";

/** Flags every model command shares. */
export const modelFlags = {
  model: {
    type: "string",
    metavar: "DIR",
    help: "Hugging Face model directory (config.json, *.safetensors, tokenizer files)",
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

/** Load weights and, if the directory has one, the tokenizer. */
export async function openModel(
  dir: string,
  device: Device,
): Promise<{ model: QwenModel; tokenizer: QwenTokenizer | null }> {
  const model = await loadQwen(dir, device);
  const hasTokenizer = await Deno.stat(`${dir}/tokenizer.json`).then(() => true, () => false);
  const tokenizer = hasTokenizer ? await QwenTokenizer.load(dir) : null;
  return { model, tokenizer };
}

/** Throw a UserError naming `where` if an id is outside the vocabulary. */
export function checkIds(ids: readonly number[], vocabSize: number, where: string): void {
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad !== undefined) {
    throw new UserError(`${where}: token id ${bad} is outside the vocabulary (size ${vocabSize})`);
  }
}
