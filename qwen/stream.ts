// Layer streaming for forward-only work (DESIGN 5.2): when a model's weights do not fit the
// memory budget, a chunk of samples is embedded (reading only the embedding rows it needs),
// then each layer's weights are read once, applied to every sample of the chunk, and freed
// while the next layer loads. Each sample's arithmetic is the in-memory arithmetic (the same
// kernels on the same shapes), so results are the same bit for bit.
import { dpFromRowSums, dpRowSums, type SampleDp } from "../nn/dp.ts";
import { embedding } from "../nn/linear.ts";
import { nextTokenLosses } from "./score.ts";
import type { MaskVariant } from "../nn/masks.ts";
import { isEmbeddingModule, type LoraConfig, type LoraParams, mergeLora } from "../nn/lora.ts";
import { nodeAt, treeFromNames } from "../nn/params.ts";
import { forEachTensor } from "../tensor/pytree.ts";
import { scope, scopeAsync } from "../tensor/scope.ts";
import { rmsNorm } from "../tensor/ops/norm.ts";
import { ropeTables } from "../nn/rope.ts";
import { tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { SafetensorsError } from "../tensor/safetensors.ts";
import { type Checkpoint, type LayerParams, neededBy, openQwenCheckpoint } from "./checkpoint.ts";
import { expectedShapes, type Qwen2Config } from "./config.ts";
import { decoderLayer, layerContext, routeOnHost } from "./decoder.ts";

/** Bytes of one element of a safetensors dtype as loaded (16-bit floats stay 16-bit). */
const fileBytes = (dtype: string) => (dtype === "BF16" || dtype === "F16" ? 2 : 4);

/**
 * Memory a forward-only run needs, by the model's shapes: the weights it reads, the largest
 * layer, the LM head, and the activations of one sample (estimates, in bytes).
 */
export interface MemoryNeeds {
  /** Every weight the run reads (DP: no LM head, final norm or last-layer MLP). */
  weightBytes: number;
  /** The largest layer's weights. */
  layerBytes: number;
  /** The final norm and LM head a streamed run reads after the layers (0 for DP). */
  headBytes: number;
  /** One embedding row. */
  embeddingRowBytes: number;
  /** Activations of one sample of `tokens` while a layer runs (pool slack included). */
  workingSet(tokens: number): number;
  /** Activations of one sample of `tokens` in the LM head: logits and the loss's. */
  headWorkingSet(tokens: number): number;
  /** What a streamed sample keeps between layers: hidden states, RoPE tables, DP sums. */
  kept(tokens: number): number;
}

/** The memory a run that reads weights for `use` needs, from the checkpoint's headers. */
export function memoryNeeds(
  config: Qwen2Config,
  ckpt: Checkpoint,
  use: "dp" | "all",
): MemoryNeeds {
  const needed = neededBy(use, config);
  let weightBytes = 0, embeddingRowBytes = 0, headBytes = 0;
  const layers = new Array<number>(config.numHiddenLayers).fill(0);
  const head = config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  for (const [name, shape] of expectedShapes(config)) {
    const info = ckpt.info(name)!.info;
    const bytes = shape.reduce((a, b) => a * b, 1) * fileBytes(info.dtype);
    if (name === "model.embed_tokens.weight") embeddingRowBytes = bytes / config.vocabSize;
    if (use === "all" && (name === head || name === "model.norm.weight")) headBytes += bytes;
    if (!needed(name)) continue;
    weightBytes += bytes;
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) layers[Number(m[1])]! += bytes;
  }
  const { hiddenSize: h, intermediateSize: inter, headDim: d, vocabSize: v } = config;
  return {
    weightBytes,
    layerBytes: Math.max(...layers),
    headBytes,
    embeddingRowBytes,
    // residual, norm, q/k/v, attention out, o_proj and their packed copies: ~8 f32 rows of
    // hidden size per token; the MLP runs ≤ 1023 rows at a time with ~4 f32 rows of
    // intermediate size each; ×1.25 for the pool's size classes (measured on the 1.5B at
    // 2048 tokens: 313 MB, this gives 308 MB)
    workingSet: (l) => 1.25 * (4 * l * h * 8 + 16 * Math.min(l, 1023) * inter),
    // logits of ≤ 511 rows at a time (nextTokenLosses), their packed input and the loss's
    // per-row values: ~3 f32 rows of vocabulary size each
    headWorkingSet: (l) => (use === "all" ? 12 * Math.min(l, 511) * v : 0),
    kept: (l) => 4 * l * h + 8 * l * d + config.numHiddenLayers * config.numAttentionHeads * 12,
  };
}

/** A model's weights read layer by layer from its checkpoint. */
export class LayerStream {
  /** Seconds spent reading weights (file → device). */
  readSeconds = 0;

  private constructor(
    readonly dir: string,
    readonly config: Qwen2Config,
    readonly checkpoint: Checkpoint,
    readonly device: Device,
    private readonly adapter: Adapter | undefined,
    /** Which weights the run reads (`"dp"` skips the LM head and the last layer's MLP). */
    readonly use: "dp" | "all",
  ) {}

  /**
   * Open `dir` (headers checked against config.json; no weight read). An `adapter` (LoRA on
   * layer weights, checked against the model by the caller) is merged into each layer as it
   * is read, module by module as `applyAdapter` merges it into a model in memory.
   */
  static async open(
    dir: string,
    device: Device,
    options: { use?: "dp" | "all"; adapter?: Adapter } = {},
  ): Promise<LayerStream> {
    const { use = "dp", adapter } = options;
    const { config, checkpoint } = await openQwenCheckpoint(dir);
    const embed = checkpoint.info("model.embed_tokens.weight")!.info;
    if (!["F32", "BF16", "F16"].includes(embed.dtype)) {
      checkpoint.close();
      throw new SafetensorsError(
        `${dir}/model.safetensors`,
        `layer streaming reads embedding rows as stored: 'model.embed_tokens.weight' must be F32, BF16 or F16, not ${embed.dtype}`,
      );
    }
    const embeddingLora = Object.keys(adapter?.params ?? {}).find(isEmbeddingModule);
    if (embeddingLora) {
      checkpoint.close();
      throw new Error(
        `layer streaming merges adapters into layers only; '${embeddingLora}' is a LoRA on the embedding: raise --max-memory to run it in memory`,
      );
    }
    return new LayerStream(dir, config, checkpoint, device, adapter, use);
  }

  /** The final norm and the LM head (the embedding when tied), as `loadQwen` loads them. */
  async loadHead(): Promise<{ norm: Tensor; lmHead: Tensor }> {
    const start = performance.now();
    const norm = await this.checkpoint.load("model.norm.weight", this.device);
    const tied = this.config.tieWordEmbeddings;
    const lmHead = await this.checkpoint.load(
      tied ? "model.embed_tokens.weight" : "lm_head.weight",
      this.device,
    ).catch((e) => {
      norm.dispose();
      throw e;
    });
    if (!tied) this.device.prepareLinearWeight?.(lmHead);
    this.readSeconds += (performance.now() - start) / 1000;
    return { norm, lmHead };
  }

  /** Layer `i`'s weights (those `use` reads), on the device and laid out for its matmul. */
  async loadLayer(i: number): Promise<LayerParams> {
    const start = performance.now();
    const prefix = `model.layers.${i}.`;
    const needed = neededBy(this.use, this.config);
    const loaded = new Map<string, Tensor>();
    try {
      for (const name of expectedShapes(this.config).keys()) {
        if (!name.startsWith(prefix) || !needed(name)) continue;
        loaded.set(name, await this.checkpoint.load(name, this.device));
      }
    } catch (e) {
      for (const t of loaded.values()) t.dispose();
      throw e;
    }
    let tree = treeFromNames(loaded);
    for (const [module, ab] of Object.entries(this.adapter?.params ?? {})) {
      const base = nodeAt(tree, module) as { weight?: Tensor } | undefined;
      if (!module.startsWith(prefix) || !base?.weight) continue;
      tree = scope(() => mergeLora(tree, { [module]: ab }, this.adapter!.config));
      base.weight.dispose();
    }
    const layer = (tree as { model: { layers: LayerParams[] } }).model.layers[i]!;
    for (const name of loaded.keys()) {
      if (name.endsWith("_proj.weight")) {
        this.device.prepareLinearWeight?.(nodeAt(tree, name) as Tensor);
      }
    }
    this.readSeconds += (performance.now() - start) / 1000;
    return layer;
  }

  /** The embeddings [1, L, H] of `ids`, reading only their rows of the table. */
  async embed(ids: readonly number[]): Promise<Tensor> {
    const start = performance.now();
    const rows = [...new Set(ids)].sort((a, b) => a - b);
    const name = "model.embed_tokens.weight";
    const { info } = this.checkpoint.info(name)!;
    const rowBytes = (info.end - info.begin) / this.config.vocabSize;
    const bytes = new Uint8Array(rows.length * rowBytes);
    for (const [k, id] of rows.entries()) {
      await this.checkpoint.readInto(
        name,
        id * rowBytes,
        bytes.subarray(k * rowBytes, (k + 1) * rowBytes),
      );
    }
    const h = this.config.hiddenSize;
    const table = info.dtype === "F32"
      ? tensor(new Float32Array(bytes.buffer), [rows.length, h], { device: this.device })
      : tensor(new Uint16Array(bytes.buffer), [rows.length, h], {
        dtype: info.dtype === "BF16" ? "bf16" : "f16",
        device: this.device,
      });
    const at = new Map(rows.map((id, k) => [id, k]));
    const local = tensor(Int32Array.from(ids, (id) => at.get(id)!), [1, ids.length], {
      device: this.device,
    });
    const out = embedding(local, { weight: table });
    table.dispose();
    local.dispose();
    this.readSeconds += (performance.now() - start) / 1000;
    return out;
  }

  close(): void {
    this.checkpoint.close();
  }
}

/** A LoRA adapter to merge into the streamed layers. */
export interface Adapter {
  params: LoraParams;
  config: LoraConfig;
}

/** Options of the streamed forward passes. */
export interface StreamOptions {
  mask: MaskVariant;
  /** Called after each layer has been applied to every sample of the chunk. */
  onLayer?: (layer: number) => void;
  /** Checked between layers: stop early (the chunk's samples are then not returned). */
  stop?: () => boolean;
}

/**
 * Every layer over a chunk of samples, each layer read once and applied to every sample;
 * the next layer is read while the device runs the current one. Returns each sample's
 * residual stream after the last layer (the caller disposes them) and, with `dp`, its
 * per-layer `dpRowSums`; null when `stop()` asked to stop.
 */
async function streamLayers(
  stream: LayerStream,
  samples: readonly (readonly number[])[],
  options: StreamOptions & { dp: boolean },
): Promise<{ hs: Tensor[]; sums: Tensor[][] } | null> {
  const { config, device } = stream;
  const hs: Tensor[] = [];
  const ropes: { cos: Tensor; sin: Tensor }[] = [];
  const sums: Tensor[][] = samples.map(() => []);
  let layer: LayerParams | null = null, finished = false;
  try {
    for (const ids of samples) {
      hs.push(await stream.embed(ids));
      ropes.push(ropeTables(ids.length, config.headDim, config.ropeTheta, device, 0));
    }
    layer = await stream.loadLayer(0);
    const forward = options.dp ? { dp: "only" as const } : {};
    for (let i = 0; i < config.numHiddenLayers; i++) {
      for (const [j, ids] of samples.entries()) {
        const ctx = layerContext(i, options.mask, ropes[j]!, forward, config);
        const out = await routeOnHost(decoderLayer(layer!, hs[j]!, config, ctx), config);
        for (const t of [out.present.k, out.present.v, hs[j]!]) t.dispose();
        hs[j] = out.h;
        if (out.dpStats) {
          sums[j]!.push(dpRowSums(out.dpStats, [ids.length]));
          out.dpStats.dispose();
        }
        out.router?.probs.dispose();
      }
      // reading the next layer submits this one's work first: the device runs it meanwhile
      const next = i + 1 < config.numHiddenLayers ? await stream.loadLayer(i + 1) : null;
      disposeTree(layer);
      layer = next;
      options.onLayer?.(i);
      if (options.stop?.()) return null;
    }
    finished = true;
    return { hs, sums };
  } finally {
    for (const t of ropes.flatMap((r) => [r.cos, r.sin])) t.dispose();
    if (!finished) { for (const t of [...hs, ...sums.flat()]) t.dispose(); }
    if (layer) disposeTree(layer);
  }
}

/**
 * DP of a chunk of samples with the model's layers streamed (`LayerStream` opened for
 * `"dp"`); null when `stop()` asked to stop.
 */
export async function streamDp(
  stream: LayerStream,
  samples: readonly (readonly number[])[],
  options: StreamOptions,
): Promise<SampleDp[] | null> {
  const run = await streamLayers(stream, samples, { ...options, dp: true });
  if (!run) return null;
  try {
    const values = await Promise.all(
      run.sums.map((layers) => Promise.all(layers.map((s) => s.data()))),
    );
    return samples.map((ids, j) =>
      dpFromRowSums(values[j]!, [ids.length], stream.config.numAttentionHeads)[0]!
    );
  } finally {
    for (const t of [...run.hs, ...run.sums.flat()]) t.dispose();
  }
}

/**
 * Per-token log-probabilities log p(token t+1 | tokens ≤ t) of each sample (≥ 2 tokens) with
 * the layers streamed (`LayerStream` opened for `"all"`), then the final norm and LM head;
 * null when `stop()` asked to stop.
 */
export async function streamLogProbs(
  stream: LayerStream,
  samples: readonly (readonly number[])[],
  options: StreamOptions,
): Promise<number[][] | null> {
  const run = await streamLayers(stream, samples, { ...options, dp: false });
  if (!run) return null;
  const head = await stream.loadHead().catch((e) => {
    for (const t of run.hs) t.dispose();
    throw e;
  });
  const { config } = stream;
  try {
    const out: number[][] = [];
    for (const [j, ids] of samples.entries()) {
      out.push(
        await scopeAsync(async () => {
          const last = rmsNorm(run.hs[j]!, head.norm, config.rmsNormEps);
          return Array.from(await nextTokenLosses(last, head.lmHead, ids).data(), (l) => -l);
        }),
      );
    }
    return out;
  } finally {
    for (const t of run.hs) t.dispose();
    head.norm.dispose();
    head.lmHead.dispose();
  }
}

function disposeTree(tree: unknown): void {
  forEachTensor(tree, (t) => t.dispose());
}
