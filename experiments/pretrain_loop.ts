// The pre-training loop (DESIGN 4, 5): a pure step — valueAndGrad of the causal LM loss, global
// norm clipping, AdamW — encoded without awaits inside a scope, so device memory stays flat;
// losses are read back in batches; checkpoints (params, optimizer moments, step) are written
// atomically, and a resumed run repeats the uninterrupted one exactly.
import { settleStep } from "./train_state.ts";
import { valueAndGrad } from "../autograd/grad.ts";
import { adamw, type AdamWState, clipFactor } from "../nn/optim.ts";
import { warmupCosine } from "../nn/schedules.ts";
import { causalLmLoss } from "../nn/losses.ts";
import { namesFromTree, treeFromNames } from "../nn/params.ts";
import { Checkpoint, loadQwen, type QwenParams } from "../qwen/checkpoint.ts";
import { parseQwen2Config, type Qwen2Config } from "../qwen/config.ts";
import { decoder } from "../qwen/decoder.ts";
import { initQwenParams } from "../qwen/init.ts";
import { saveModelDir } from "../qwen/save.ts";
import { tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { concat, reshape } from "../tensor/ops/layout.ts";
import { leaves } from "../tensor/pytree.ts";
import { writeSafetensors } from "../tensor/safetensors.ts";
import { scope } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { PackedSequences } from "./pretrain_data.ts";

/** The architecture of the model to train (a Qwen2 with tied embeddings). */
export interface ModelShape {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  maxPositionEmbeddings: number;
  eosTokenId: number;
}

/** Everything a run depends on; two runs with equal options give equal loss curves. */
export interface PretrainOptions {
  model: ModelShape;
  steps: number;
  batch: number;
  seqLen: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  clip: number;
  seed: number;
  /** Held-out evaluation every N steps on `evalSequences` sequences (0 = never). */
  evalEvery: number;
  evalSequences: number;
  /** Checkpoint every N steps (0 = only at the end). */
  saveEvery: number;
  /** Read losses back and log every N steps. */
  logEvery: number;
}

/** One line of the JSONL log. */
export type LogRecord =
  | { step: number; loss: number; gradNorm: number; lr: number; tokens: number; seconds: number }
  | { step: number; heldoutLoss: number; heldoutPerplexity: number; sequences: number };

/** What a finished run reports. */
export interface PretrainResult {
  params: QwenParams;
  config: Qwen2Config;
  /** Mean loss of the last logged interval. */
  finalLoss: number;
  losses: number[];
  trainSeconds: number;
  tokensPerSecond: number;
}

/** Hooks for the command: progress and the stop request (Ctrl-C). */
export interface PretrainHooks {
  onLog?: (record: LogRecord) => void;
  onStep?: (step: number, tokens: number, loss: number | undefined) => void;
  shouldStop?: () => boolean;
}

/** The Hugging Face config.json of a model shape. */
export function configJson(shape: ModelShape): Record<string, unknown> {
  return {
    architectures: ["Qwen2ForCausalLM"],
    model_type: "qwen2",
    vocab_size: shape.vocabSize,
    hidden_size: shape.hiddenSize,
    intermediate_size: shape.intermediateSize,
    num_hidden_layers: shape.numHiddenLayers,
    num_attention_heads: shape.numAttentionHeads,
    num_key_value_heads: shape.numKeyValueHeads,
    hidden_act: "silu",
    max_position_embeddings: shape.maxPositionEmbeddings,
    initializer_range: 0.02,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: true,
    use_cache: true,
    use_sliding_window: false,
    sliding_window: shape.maxPositionEmbeddings,
    max_window_layers: shape.numHiddenLayers,
    attention_dropout: 0,
    bos_token_id: shape.eosTokenId,
    eos_token_id: shape.eosTokenId,
  };
}

/** Mean next-token loss of a batch of packed sequences [B, L]. */
export function lmLoss(params: QwenParams, ids: Tensor, config: Qwen2Config): Tensor {
  return causalLmLoss(decoder(params, ids, config).logits!, ids);
}

/**
 * Mean held-out loss per predicted token over the first `maxSequences` packed sequences of
 * `stream` (all when undefined), `batch` at a time; perplexity = exp(loss).
 */
export async function heldoutLoss(
  params: QwenParams,
  config: Qwen2Config,
  stream: Int32Array,
  seqLen: number,
  batch: number,
  maxSequences?: number,
): Promise<{ loss: number; sequences: number }> {
  const device = params.model.embed_tokens.weight.device;
  const data = new PackedSequences(stream, seqLen, 0);
  const n = Math.min(data.count, maxSequences ?? data.count);
  const parts: Tensor[] = [];
  for (let start = 0; start < n; start += batch) {
    const b = Math.min(batch, n - start);
    const ids = new Int32Array(b * seqLen);
    for (let j = 0; j < b; j++) ids.set(data.sequence(start + j), j * seqLen);
    // every sequence has seqLen − 1 targets, so batch means weighted by rows give the token mean
    parts.push(scope(() => {
      const loss = lmLoss(params, tensor(ids, [b, seqLen], { dtype: "i32", device }), config);
      return reshape(loss, [1]);
    }));
  }
  const values = await readAll(parts);
  let total = 0;
  values.forEach((v, i) => total += v * Math.min(batch, n - i * batch));
  return { loss: total / n, sequences: n };
}

/** Read several one-element tensors with one read-back, then free them. */
async function readAll(parts: Tensor[]): Promise<number[]> {
  if (parts.length === 0) return [];
  const joined = scope(() => concat(parts, 0));
  const values = [...await joined.data()];
  joined.dispose();
  for (const p of parts) p.dispose();
  return values;
}

function dispose(tree: unknown): void {
  for (const t of leaves(tree)) t.dispose();
}

/** Train (or resume) in `out`; returns the final params and figures. */
export async function pretrain(
  options: PretrainOptions,
  data: { train: Int32Array; heldout: Int32Array },
  out: string,
  device: Device,
  resume: boolean,
  hooks: PretrainHooks = {},
): Promise<PretrainResult> {
  const o = options;
  const config = parseQwen2Config(configJson(o.model), "pretrain model");
  const train = new PackedSequences(data.train, o.seqLen, o.seed);
  const schedule = warmupCosine({ peak: o.lr, warmup: o.warmup, total: o.steps, min: o.minLr });
  const optimizer = adamw({
    lr: schedule,
    beta1: o.beta1,
    beta2: o.beta2,
    weightDecay: o.weightDecay,
  });
  await Deno.mkdir(out, { recursive: true });
  const logPath = `${out}/log.jsonl`;
  let params: QwenParams, state: AdamWState;
  let step = 0, priorSeconds = 0;
  const saved = resume ? await readState(out) : null;
  if (saved) {
    if (JSON.stringify(saved.options) !== JSON.stringify(o)) {
      throw new Error(`${out}/state.json: saved with different options; start a fresh --out`);
    }
    ({ params, state } = await loadCheckpoint(`${out}/${saved.checkpoint}`, saved.step, device));
    step = saved.step;
    priorSeconds = saved.seconds;
    await truncateLog(logPath, step);
  } else {
    params = initQwenParams(config, o.seed, device);
    state = optimizer.init(params);
    await Deno.writeTextFile(logPath, "");
  }
  const log = async (records: LogRecord[]) => {
    for (const r of records) hooks.onLog?.(r);
    await Deno.writeTextFile(logPath, records.map((r) => JSON.stringify(r) + "\n").join(""), {
      append: true,
    });
  };
  const lossOf = valueAndGrad((p: QwenParams, ids: Tensor) => lmLoss(p, ids, config));
  const tokensPerStep = o.batch * o.seqLen;
  const startedAt = performance.now();
  const seconds = () => priorSeconds + (performance.now() - startedAt) / 1000;
  let pending: { step: number; lr: number; record: Tensor }[] = [];
  const losses: number[] = [];
  let lastLoss: number | undefined;
  const flush = async () => {
    const values = await readAll(pending.map((p) => p.record));
    const records = pending.map((p, i) => ({
      step: p.step,
      loss: values[2 * i]!,
      gradNorm: values[2 * i + 1]!,
      lr: p.lr,
      tokens: p.step * tokensPerStep,
      seconds: Math.round(seconds() * 10) / 10,
    }));
    const bad = records.find((r) => !Number.isFinite(r.loss));
    if (bad) throw new Error(`pretrain: the loss is not finite at step ${bad.step}`);
    for (const r of records) losses.push(r.loss);
    lastLoss = records.at(-1)?.loss ?? lastLoss;
    pending = [];
    await log(records);
  };
  while (step < o.steps) {
    const lr = schedule(step);
    const ids = train.batchAt(step, o.batch);
    const next = scope(() => {
      const [loss, grads] = lossOf(
        params,
        tensor(ids, [o.batch, o.seqLen], { dtype: "i32", device }),
      );
      const [factor, norm] = clipFactor(grads, o.clip);
      const [p2, s2] = optimizer.update(grads, state, params, { gradScale: factor });
      return { params: p2, state: s2, record: concat([reshape(loss, [1]), reshape(norm, [1])], 0) };
    });
    dispose(params);
    dispose([state.m, state.v]);
    params = next.params;
    state = next.state;
    step++;
    pending.push({ step, lr, record: next.record });
    const stop = hooks.shouldStop?.() ?? false;
    if (step % o.logEvery === 0 || step === o.steps || stop) await flush();
    await settleStep(device);
    hooks.onStep?.(step, tokensPerStep, lastLoss);
    if (o.evalEvery > 0 && step % o.evalEvery === 0 && step < o.steps) {
      const e = await heldoutLoss(params, config, data.heldout, o.seqLen, o.batch, o.evalSequences);
      await log([{
        step,
        heldoutLoss: e.loss,
        heldoutPerplexity: Math.exp(e.loss),
        sequences: e.sequences,
      }]);
    }
    if ((o.saveEvery > 0 && step % o.saveEvery === 0) || step === o.steps || stop) {
      await saveCheckpoint(out, config, params, state, { options: o, step, seconds: seconds() });
    }
    if (stop) break;
  }
  await flush();
  const trainSeconds = seconds();
  const tail = losses.slice(-o.logEvery);
  return {
    params,
    config,
    finalLoss: tail.length > 0 ? tail.reduce((a, b) => a + b, 0) / tail.length : NaN,
    losses,
    trainSeconds,
    tokensPerSecond: (step * tokensPerStep) / Math.max(trainSeconds, 1e-9),
  };
}

/** state.json: where the newest complete checkpoint is and how far the run got. */
interface SavedState {
  options: PretrainOptions;
  step: number;
  /** Packed sequences consumed so far (step · batch): the data position. */
  dataPosition: number;
  seconds: number;
  checkpoint: string;
}

async function readState(out: string): Promise<SavedState | null> {
  const text = await Deno.readTextFile(`${out}/state.json`).catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as SavedState;
  } catch (e) {
    throw new Error(`${out}/state.json: invalid JSON (${(e as Error).message})`);
  }
}

/**
 * Write params (float32, an ordinary HF directory) and the AdamW moments into a fresh
 * `checkpoint-<step>` folder, then point state.json at it (temp + rename), then delete the
 * older folder: a crash at any moment leaves one complete checkpoint.
 */
async function saveCheckpoint(
  out: string,
  config: Qwen2Config,
  params: QwenParams,
  state: AdamWState,
  info: { options: PretrainOptions; step: number; seconds: number },
): Promise<void> {
  const name = `checkpoint-${info.step}`;
  const dir = `${out}/${name}`;
  const previous = await readState(out);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await saveModelDir(dir, { ...config.raw }, params, "float32");
  const moments: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  for (const [which, tree] of [["m", state.m], ["v", state.v]] as const) {
    for (const [n, t] of namesFromTree(tree)) {
      moments[`${which}.${n}`] = {
        dtype: "F32",
        shape: [...t.shape],
        data: Float32Array.from(await t.data()),
      };
    }
  }
  await writeSafetensors(`${dir}/optimizer.safetensors`, moments);
  const saved: SavedState = {
    options: info.options,
    step: info.step,
    dataPosition: info.step * info.options.batch,
    seconds: info.seconds,
    checkpoint: name,
  };
  const tmp = `${out}/state.json.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, JSON.stringify(saved, null, 2) + "\n");
  await Deno.rename(tmp, `${out}/state.json`);
  if (previous && previous.checkpoint !== name) {
    await Deno.remove(`${out}/${previous.checkpoint}`, { recursive: true }).catch(() => {});
  }
}

async function loadCheckpoint(
  dir: string,
  step: number,
  device: Device,
): Promise<{ params: QwenParams; state: AdamWState }> {
  const { params } = await loadQwen(dir, device);
  using ckpt = await Checkpoint.open(dir, "optimizer");
  const m = new Map<string, Tensor>(), v = new Map<string, Tensor>();
  for (const n of namesFromTree(params).keys()) {
    m.set(n, await ckpt.load(`m.${n}`, device));
    v.set(n, await ckpt.load(`v.${n}`, device));
  }
  return { params, state: { step, m: treeFromNames(m), v: treeFromNames(v) } };
}

/** Keep the log lines up to `step` (a resumed run rewrites what came after). */
async function truncateLog(path: string, step: number): Promise<void> {
  const text = await Deno.readTextFile(path).catch(() => "");
  const kept = text.split("\n").filter((l) => l.trim() !== "" && JSON.parse(l).step <= step);
  await Deno.writeTextFile(path, kept.map((l) => l + "\n").join(""));
}
