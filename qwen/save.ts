// Writing a params tree as an ordinary Hugging Face model directory (config.json +
// model.safetensors), atomically, so a crash never leaves a half-written checkpoint.
import { f32ToBf16Bits, f32ToF16Bits } from "../tensor/dtype.ts";
import {
  type SafetensorsDType,
  type TensorToWrite,
  writeSafetensors,
} from "../tensor/safetensors.ts";
import { namesFromTree } from "../nn/params.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Storage dtype of a saved checkpoint; "preserve" keeps each tensor's own (bf16 stays bf16). */
export type SaveDType = "float32" | "bfloat16" | "preserve";

/**
 * Save `params` (HF names as paths) to `dir/model.safetensors` and `config` (a config.json
 * object; torch_dtype is set to match) to `dir/config.json`.
 */
export async function saveModelDir(
  dir: string,
  config: Record<string, unknown>,
  params: unknown,
  dtype: SaveDType = "float32",
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of namesFromTree(params)) tensors[name] = await toWrite(t, dtype);
  await writeSafetensors(`${dir}/model.safetensors`, tensors);
  const tmp = `${dir}/config.json.tmp-${Deno.pid}`;
  const torchDtype = dtype === "preserve" ? config.torch_dtype : dtype;
  await Deno.writeTextFile(
    tmp,
    JSON.stringify({ ...config, torch_dtype: torchDtype }, null, 2) + "\n",
  );
  await Deno.rename(tmp, `${dir}/config.json`);
}

async function toWrite(t: Tensor, dtype: SaveDType): Promise<TensorToWrite> {
  const values = await t.data();
  if (t.dtype === "i32") return { dtype: "I32", shape: t.shape, data: Int32Array.from(values) };
  if (dtype === "bfloat16" || (dtype === "preserve" && t.dtype === "bf16")) {
    return {
      dtype: "BF16" as SafetensorsDType,
      shape: t.shape,
      data: Uint16Array.from(values, f32ToBf16Bits),
    };
  }
  if (dtype === "preserve" && t.dtype === "f16") {
    return { dtype: "F16", shape: t.shape, data: Uint16Array.from(values, f32ToF16Bits) };
  }
  return { dtype: "F32", shape: t.shape, data: Float32Array.from(values) };
}
