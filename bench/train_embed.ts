// Contrastive embedding training figures (the paper's train_bi.py): pairs/s of LoRA-FFN
// training on the default model (batch 16 pairs), and the time of one LoRA-FFN optimizer step
// on the Qwen2.5-0.5B shape (8 pairs = 16 sequences × 64 tokens).
import { valueAndGrad } from "../autograd/grad.ts";
import { initLora } from "../nn/lora.ts";
import { adamw, clipFactor } from "../nn/optim.ts";
import { loadQwen } from "../qwen/checkpoint.ts";
import { parseTarget, targetModuleShapes } from "../qwen/targets.ts";
import type { Device } from "../tensor/device.ts";
import { leaves } from "../tensor/pytree.ts";
import { Rng } from "../tensor/random.ts";
import { scope } from "../tensor/scope.ts";
import { openModel } from "../experiments/model.ts";
import {
  batchLoss,
  type EmbedTrainOptions,
  loraConfigOf,
  type Trainable,
  trainEmbed,
} from "../experiments/embed_train_loop.ts";
import { readPairs } from "../experiments/pair_data.ts";
import { settleStep } from "../experiments/train_state.ts";
import { writeQwenShape } from "./qwen_shapes.ts";

const root = new URL("../", import.meta.url).pathname;

function options(batch: number, maxSteps: number): EmbedTrainOptions {
  return {
    target: "FFN",
    full: false,
    lora: { r: 8, alpha: 16, dropout: 0.05, rslora: true },
    loss: "ibn",
    lr: 3e-4,
    batch,
    gradAccum: 1,
    warmup: 0,
    epochs: 1,
    maxSteps,
    maxTokens: 1024,
    tau: 20,
    seed: 42,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-3,
    weightDecay: 0,
    clip: 1,
    saveEvery: 0,
    logEvery: 1000,
    dataId: "bench",
    modelId: "bench",
  };
}

/** pairs/s of LoRA-FFN training on models/brown-qwen2 after the first (compiling) step. */
async function tinyPairsPerS(device: Device): Promise<number> {
  const { model, tokenizer } = await openModel(`${root}models/brown-qwen2`, device);
  const pairs = (await readPairs(`${root}data/pairs/train.jsonl`)).slice(0, 16 * 8);
  const out = await Deno.makeTempDir({ prefix: "bench-embed-" });
  const marks: { t: number; pairs: number }[] = [];
  await trainEmbed(model, tokenizer!, pairs, options(16, 8), out, device, false, {
    onStep: (_step, _total, n) => marks.push({ t: performance.now(), pairs: n }),
  });
  await Deno.remove(out, { recursive: true });
  const timed = marks.slice(1);
  const seconds = (timed.at(-1)!.t - marks[0]!.t) / 1000;
  return timed.reduce((a, m) => a + m.pairs, 0) / seconds;
}

/** Seconds of one LoRA-FFN step (loss, gradients, clipping, AdamW) on the 0.5B shape. */
async function qwen05bStepSeconds(device: Device): Promise<number> {
  const model = await loadQwen(await writeQwenShape("0.5b"), device);
  const o = options(8, 1);
  const lora = loraConfigOf(o, model.dir);
  let trainable: Trainable = initLora(
    targetModuleShapes(model.config, parseTarget("FFN")),
    lora,
    1,
    device,
  );
  const optimizer = adamw({ lr: 3e-4, eps: 1e-3, weightDecay: 0 });
  let state = optimizer.init(trainable);
  const rng = new Rng(3);
  const rows = Array.from(
    { length: 16 },
    () => Array.from({ length: 64 }, () => 1 + rng.int(model.config.vocabSize - 1)),
  );
  const lossAndGrad = valueAndGrad(batchLoss);
  const step = async () => {
    const start = performance.now();
    const next = scope(() => {
      const [loss, grads] = lossAndGrad(trainable, model.params, model, o, lora, {
        rows,
        dropoutSeed: 7,
        device,
      });
      const [factor] = clipFactor(grads, 1);
      const [p, s] = optimizer.update(grads, state, trainable, { gradScale: factor });
      return { p, s, loss };
    });
    await next.loss.data();
    for (const t of [...leaves(trainable), ...leaves([state.m, state.v]), next.loss]) t.dispose();
    trainable = next.p;
    state = next.s;
    return (performance.now() - start) / 1000;
  };
  // the device memory of a 0.5B step is large on lavapipe: settle (sync + GC) between steps
  await step(); // compile
  await settleStep(device);
  const first = await step();
  await settleStep(device);
  const second = await step();
  return Math.min(first, second);
}

export async function benchTrainEmbed(device: Device): Promise<Record<string, number>> {
  return {
    train_embed_tiny_pairs_per_s: await tinyPairsPerS(device),
    // about 14 GB peak RSS on lavapipe (the frozen bf16 weights packed both ways for the
    // forward and backward products, and 24 layers of activations for the backward)
    train_embed_05b_lora_step_s: await qwen05bStepSeconds(device),
  };
}
