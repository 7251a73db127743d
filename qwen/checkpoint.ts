// Loading a Hugging Face model directory (config.json + model.safetensors, or shards listed
// in model.safetensors.index.json) into a params tree on a device. bf16/f16 weights stay
// 16-bit on the device; kernels upcast them on load (DESIGN 2.3).
import { defaultDevice } from "../tensor/backend.ts";
import { tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { byteSize, type DType } from "../tensor/dtype.ts";
import { SafetensorsError, SafetensorsFile, type TensorInfo } from "../tensor/safetensors.ts";
import { fmtShape, Tensor } from "../tensor/tensor.ts";
import { treeFromNames } from "../nn/params.ts";
import type { ExpertParams, MoeMlpParams } from "./moe.ts";
import { ConfigError, expectedShapes, type Qwen2Config, readQwen2Config } from "./config.ts";

/** File dtypes a device stores byte for byte. */
const storedAs = { F32: "f32", BF16: "bf16", F16: "f16", I32: "i32" } as const;
/**
 * The read window. Each piece becomes a staging copy inside the driver, and on lavapipe the
 * memory it keeps grows with the piece size: the MLP weights of the 1.5B (2.2 GB) loaded
 * through 32 MiB pieces took 1.41 × their size in RSS, through 4 MiB 1.12 ×, through 256 KiB
 * 1.03 ×, in the same time. A piece is at least one texture row (≤ 256 KiB).
 */
const windowBytes = 256 << 10;
/** Bytes uploaded between waits for the device (which let it free the staging copies). */
const syncBytes = 64 << 20;

/** The tensors of a model directory, by name, each in its file. */
export class Checkpoint {
  private window: Uint8Array<ArrayBuffer> | null = null;
  private unsynced = 0;

  private constructor(
    readonly dir: string,
    private readonly files: Map<string, SafetensorsFile>,
    private readonly where: Map<string, SafetensorsFile>,
  ) {}

  /** Open `dir`'s model.safetensors, or the shards its index lists. Headers only. */
  static async open(dir: string, name = "model"): Promise<Checkpoint> {
    const indexPath = `${dir}/${name}.safetensors.index.json`;
    const single = `${dir}/${name}.safetensors`;
    const files = new Map<string, SafetensorsFile>();
    const where = new Map<string, SafetensorsFile>();
    const indexText = await Deno.readTextFile(indexPath).catch(() => null);
    try {
      if (indexText !== null) {
        let weightMap: Record<string, unknown>;
        try {
          weightMap = JSON.parse(indexText).weight_map;
        } catch (e) {
          throw new ConfigError(`${indexPath}: invalid JSON (${(e as Error).message})`);
        }
        if (weightMap === null || typeof weightMap !== "object") {
          throw new ConfigError(`${indexPath}: field 'weight_map' is missing or not an object`);
        }
        for (const [tensorName, shard] of Object.entries(weightMap)) {
          if (typeof shard !== "string" || shard.includes("/")) {
            throw new ConfigError(`${indexPath}: weight_map['${tensorName}'] is not a file name`);
          }
          let file = files.get(shard);
          if (!file) files.set(shard, file = await SafetensorsFile.open(`${dir}/${shard}`));
          if (!file.info(tensorName)) {
            throw new SafetensorsError(
              file.path,
              `index lists tensor '${tensorName}', which is not in the file`,
            );
          }
          where.set(tensorName, file);
        }
      } else {
        const exists = await Deno.stat(dir).then((s) => s.isDirectory, () => false);
        if (!exists) throw new ConfigError(`${dir}: no such model directory`);
        const file = await SafetensorsFile.open(single);
        files.set(`${name}.safetensors`, file);
        for (const tensorName of file.tensors.keys()) where.set(tensorName, file);
      }
    } catch (e) {
      for (const f of files.values()) f.close();
      throw e;
    }
    return new Checkpoint(dir, files, where);
  }

  /** Every tensor name. */
  names(): string[] {
    return [...this.where.keys()];
  }

  /** Header entry and file of a tensor. */
  info(name: string): { info: TensorInfo; path: string } | undefined {
    const f = this.where.get(name);
    const info = f?.info(name);
    return f && info ? { info, path: f.path } : undefined;
  }

  /**
   * Read one tensor onto `device`, keeping bf16/f16 as stored (I64/U8 become i32, F64 f32).
   * Tensors the device stores as they are in the file travel through one reused window
   * (no host copy of the whole tensor).
   */
  async load(name: string, device: Device = defaultDevice()): Promise<Tensor> {
    const f = this.where.get(name);
    if (!f) throw new SafetensorsError(this.dir, `no tensor named '${name}'`);
    const info = f.info(name)!;
    const dtype = storedAs[info.dtype as keyof typeof storedAs];
    if (!dtype) {
      const { bytes } = await f.read(name);
      const { values, dtype } = decode(info, bytes, f.path);
      return tensor(values, info.shape, { dtype, device });
    }
    const total = info.end - info.begin;
    const writer = device.uploadPieces(total / byteSize(dtype), dtype);
    // whole pieces of the device's size, about one window at a time
    const step = Math.max(
      writer.pieceBytes,
      Math.floor(windowBytes / writer.pieceBytes) * writer.pieceBytes,
    );
    const need = Math.min(step, total);
    if (!this.window || this.window.length < need) {
      this.window = new Uint8Array(Math.max(need, windowBytes));
    }
    for (let at = 0; at < total; at += step) {
      const piece = this.window.subarray(0, Math.min(step, total - at));
      await f.readInto(name, at, piece);
      writer.write(piece);
      this.unsynced += piece.length;
      // the device copies each piece to a staging buffer it frees once the queue has run it
      if (this.unsynced >= syncBytes) {
        await device.sync();
        this.unsynced = 0;
      }
    }
    return new Tensor(info.shape, dtype, device, writer.done());
  }

  /** Read `out.length` bytes of tensor `name` from `offset` bytes into it (as stored). */
  async readInto(name: string, offset: number, out: Uint8Array<ArrayBuffer>): Promise<void> {
    const f = this.where.get(name);
    if (!f) throw new SafetensorsError(this.dir, `no tensor named '${name}'`);
    await f.readInto(name, offset, out);
  }

  close(): void {
    for (const f of this.files.values()) f.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function decode(info: TensorInfo, bytes: Uint8Array<ArrayBuffer>, path: string) {
  const buf = bytes.buffer;
  switch (info.dtype) {
    case "F32":
      return { values: new Float32Array(buf), dtype: "f32" as DType };
    case "BF16":
      return { values: new Uint16Array(buf), dtype: "bf16" as DType };
    case "F16":
      return { values: new Uint16Array(buf), dtype: "f16" as DType };
    case "F64":
      return { values: Float32Array.from(new Float64Array(buf)), dtype: "f32" as DType };
    case "I32":
      return { values: new Int32Array(buf), dtype: "i32" as DType };
    case "I64": {
      const wide = new BigInt64Array(buf);
      const values = new Int32Array(wide.length);
      wide.forEach((v, i) => {
        if (v > 2147483647n || v < -2147483648n) {
          throw new SafetensorsError(
            path,
            `tensor '${info.name}' holds ${v}, outside the i32 range`,
          );
        }
        values[i] = Number(v);
      });
      return { values, dtype: "i32" as DType };
    }
    case "U8":
    case "I8":
    case "BOOL":
      return {
        values: Int32Array.from(info.dtype === "I8" ? new Int8Array(buf) : bytes),
        dtype: "i32" as DType,
      };
    case "I16":
      return { values: Int32Array.from(new Int16Array(buf)), dtype: "i32" as DType };
    default:
      return info.dtype satisfies never;
  }
}

/** A loaded dense Qwen2 model: config and params tree (Hugging Face names as paths). */
export interface QwenModel {
  readonly config: Qwen2Config;
  readonly params: QwenParams;
  readonly dir: string;
}

/** Linear layer params. */
export interface LinearParams {
  weight: Tensor;
  bias?: Tensor;
}

/** One decoder layer (Hugging Face names). */
export interface LayerParams {
  input_layernorm: { weight: Tensor };
  post_attention_layernorm: { weight: Tensor };
  self_attn: {
    q_proj: LinearParams;
    k_proj: LinearParams;
    v_proj: LinearParams;
    o_proj: LinearParams;
  };
  /** The dense SwiGLU MLP, or (UBMoE / Qwen2-MoE) a router and experts. */
  mlp: ExpertParams | MoeMlpParams;
}

/** The params tree of Qwen2ForCausalLM. */
export interface QwenParams {
  model: { embed_tokens: { weight: Tensor }; layers: LayerParams[]; norm: { weight: Tensor } };
  lm_head?: { weight: Tensor };
}

/** Check that every weight the config implies is in the checkpoint with its shape. */
export function checkTensors(ckpt: Checkpoint, config: Qwen2Config): void {
  for (const [name, shape] of expectedShapes(config)) {
    const found = ckpt.info(name);
    if (!found) {
      throw new SafetensorsError(`${ckpt.dir}/model.safetensors`, `missing tensor '${name}'`);
    }
    const same = found.info.shape.length === shape.length &&
      found.info.shape.every((n, i) => n === shape[i]);
    if (!same) {
      throw new SafetensorsError(
        found.path,
        `tensor '${name}' has shape ${fmtShape(found.info.shape)}, config.json says ${
          fmtShape(shape)
        }`,
      );
    }
  }
}

/**
 * Open a model directory's config and checkpoint headers and check them against each other,
 * reading no weights (the file sizes are checked against the headers).
 */
export async function openQwenCheckpoint(
  dir: string,
): Promise<{ config: Qwen2Config; checkpoint: Checkpoint }> {
  const config = await readQwen2Config(dir);
  const checkpoint = await Checkpoint.open(dir);
  try {
    checkTensors(checkpoint, config);
  } catch (e) {
    checkpoint.close();
    throw e;
  }
  return { config, checkpoint };
}

/**
 * What a command does with a model, which decides the weights it reads: `"all"`; `"dp"`
 * (DP statistics only: no LM head, no final norm, no last-layer MLP, as `decoder(…, { dp:
 * "only" })` skips them); `"hidden"` (hidden states and embeddings: no untied LM head).
 */
export type ModelUse = "all" | "dp" | "hidden";

/** Whether a weight is read for `use`. Every weight's presence and shape is checked anyway. */
export function neededBy(use: ModelUse, config: Qwen2Config): (name: string) => boolean {
  const lastLayer = `model.layers.${config.numHiddenLayers - 1}.`;
  switch (use) {
    case "all":
      return () => true;
    case "hidden":
      return (name) => name !== "lm_head.weight";
    case "dp":
      return (name) =>
        name !== "lm_head.weight" && name !== "model.norm.weight" &&
        !name.startsWith(`${lastLayer}mlp.`) &&
        name !== `${lastLayer}post_attention_layernorm.weight`;
    default:
      return use satisfies never;
  }
}

/**
 * Load a Hugging Face Qwen2 directory: validate config.json, check every tensor's presence
 * and shape against it, and upload the weights `use` needs (a params tree loaded for `"dp"`
 * lacks the parts DP skips).
 * @example
 * const model = await loadQwen("models/brown-qwen2");
 */
export async function loadQwen(
  dir: string,
  device: Device = defaultDevice(),
  use: ModelUse = "all",
): Promise<QwenModel> {
  const config = await readQwen2Config(dir);
  using ckpt = await Checkpoint.open(dir);
  checkTensors(ckpt, config);
  const loaded = new Map<string, Tensor>();
  const needed = neededBy(use, config);
  try {
    for (const name of expectedShapes(config).keys()) {
      if (!needed(name)) continue;
      const t = await ckpt.load(name, device);
      // Linear weights are only ever multiplied (x · Wᵀ): let the device keep its own layout
      if (/_proj\.weight$|^lm_head\.weight$/.test(name)) device.prepareLinearWeight?.(t);
      loaded.set(name, t);
    }
  } catch (e) {
    for (const t of loaded.values()) t.dispose();
    throw e;
  }
  return { config, params: treeFromNames(loaded) as unknown as QwenParams, dir };
}
