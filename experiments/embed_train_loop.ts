// The bidirectional contrastive training loop of `deno task train-embed` (the paper's
// train_bi.py, DESIGN 3.5): seeded batches of pairs, AnglE's duplicate filter, the
// bidirectional forward + mean pooling, the in-batch-negative (or InfoNCE) loss, gradients of
// the trained subtree only, clipping, AdamW, warmup + linear decay; atomic checkpoints that
// a resumed run continues to the same bytes.
import { valueAndGrad } from "../autograd/grad.ts";
import { inBatchNegativeLoss, infoNceLoss } from "../nn/losses.ts";
import { attachLora, initLora, type LoraConfig, type LoraParams } from "../nn/lora.ts";
import { clipFactor } from "../nn/optim.ts";
import { withTensors } from "../nn/params.ts";
import { hfLinearWarmup } from "../nn/schedules.ts";
import type { QwenModel, QwenParams } from "../qwen/checkpoint.ts";
import { groupedEmbeddings, promptIds, sentenceEmbeddings } from "../qwen/embed.ts";
import {
  fullTrainableNames,
  parseTarget,
  targetModuleShapes,
  targetSuffixes,
} from "../qwen/targets.ts";
import type { QwenTokenizer } from "../qwen/tokenizer.ts";
import { namesFromTree } from "../nn/params.ts";
import { add, cast, mul } from "../tensor/ops/elementwise.ts";
import { concat, reshape } from "../tensor/ops/layout.ts";
import { foldIn } from "../tensor/random.ts";
import { leaves, type PyTree, unflatten } from "../tensor/pytree.ts";
import { scope } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { Device } from "../tensor/device.ts";
import type { Pair } from "./pair_data.ts";
import {
  openRun,
  runOptimizer,
  type RunOptions,
  saveRunState,
  settleStep,
  shuffledBatch,
  StepLog,
  type StepRecord,
} from "./train_state.ts";

/** Everything that determines a run (saved in train_state.json; a resume must match it). */
export interface EmbedTrainOptions extends RunOptions {
  /** Canonical target name ("FFN", "FFN+ATT", "ALL"). */
  target: string;
  /** Full fine-tuning instead of LoRA. */
  full: boolean;
  lora: { r: number; alpha: number; dropout: number; rslora: boolean };
  loss: "ibn" | "infonce";
  gradAccum: number;
  epochs: number;
  /** Stop after this many optimizer steps (0 = the whole schedule). */
  maxSteps: number;
  tau: number;
}

/** A pair tokenised inside the prompt. */
interface TokenPair {
  a: number[];
  p: number[];
}

/** The trained parameters: LoRA adapters, or f32 copies of the trained base tensors. */
export type Trainable = LoraParams | Record<string, Tensor>;

/** One JSONL record of the log. */
export type EmbedLogRecord = StepRecord<{ lr: number; pairs: number }>;

/** Callbacks of the loop. */
export interface EmbedTrainHooks {
  onStep?: (step: number, total: number, pairs: number, loss: number | undefined) => void;
  onLog?: (record: EmbedLogRecord) => void;
  shouldStop?: () => boolean;
}

/** What the loop returns. */
export interface EmbedTrainResult {
  trainable: Trainable;
  loraConfig: LoraConfig | null;
  steps: number;
  totalSteps: number;
  pairsSeen: number;
  seconds: number;
  losses: number[];
  stopped: boolean;
}

/** Micro-batches per epoch and optimizer steps in the whole schedule. */
export function schedulePlan(
  pairs: number,
  o: Pick<EmbedTrainOptions, "batch" | "gradAccum" | "epochs" | "maxSteps">,
) {
  const microPerEpoch = Math.ceil(pairs / o.batch);
  const stepsPerEpoch = Math.ceil(microPerEpoch / o.gradAccum);
  const scheduled = stepsPerEpoch * o.epochs;
  return {
    microPerEpoch,
    stepsPerEpoch,
    scheduled,
    total: o.maxSteps > 0 ? Math.min(o.maxSteps, scheduled) : scheduled,
  };
}

/** The pair indices of micro-batch `micro` (0-based over the whole run): a seeded shuffle per epoch. */
export function microBatchIndices(
  pairs: number,
  micro: number,
  o: Pick<EmbedTrainOptions, "batch" | "seed">,
  microPerEpoch: number,
): number[] {
  return shuffledBatch(pairs, micro, o.batch, o.seed, microPerEpoch);
}

/**
 * AnglE's duplicate filter (`AngleDataCollator`): walking the batch in order, a pair is
 * dropped when its anchor already occurred (its positive then is not recorded), or when its
 * positive occurred (its own anchor included).
 */
export function dropDuplicates(pairs: readonly TokenPair[]): TokenPair[] {
  const seen = new Set<string>();
  const kept: TokenPair[] = [];
  for (const pair of pairs) {
    const ka = pair.a.join(","), kp = pair.p.join(",");
    if (seen.has(ka)) continue;
    seen.add(ka);
    const duplicate = seen.has(kp);
    seen.add(kp);
    if (!duplicate) kept.push(pair);
  }
  return kept;
}

/** The LoRA config of a run. */
export function loraConfigOf(o: EmbedTrainOptions, baseModel: string): LoraConfig {
  const target = parseTarget(o.target);
  return {
    r: o.lora.r,
    loraAlpha: o.lora.alpha,
    loraDropout: o.lora.dropout,
    useRslora: o.lora.rslora,
    targetModules: targetSuffixes(target),
    baseModelNameOrPath: baseModel,
  };
}

/** Flat names of the trainable tensors, in leaf order (checkpoint names). */
function trainableNames(trainable: Trainable, isLora: boolean): string[] {
  // leaves() visits object keys sorted: the names follow the same order
  const keys = Object.keys(trainable).sort();
  return isLora ? keys.flatMap((m) => [`${m}.lora_A`, `${m}.lora_B`]) : keys;
}

/** Fresh trainable parameters for a run. */
function initTrainable(model: QwenModel, o: EmbedTrainOptions, device: Device): Trainable {
  const target = parseTarget(o.target);
  if (!o.full) {
    return initLora(
      targetModuleShapes(model.config, target),
      loraConfigOf(o, model.dir),
      o.seed,
      device,
    );
  }
  const named = namesFromTree(model.params);
  const out: Record<string, Tensor> = {};
  for (const n of fullTrainableNames(named.keys(), target)) {
    out[n] = scope(() => mul(cast(named.get(n)!, "f32"), 1)); // a copy: the loop disposes it
  }
  return out;
}

/** A batch of token rows (anchor, positive, anchor, positive, …) and its dropout seed. */
export interface EmbedBatch {
  rows: readonly (readonly number[])[];
  dropoutSeed: number;
  device: Device;
}

/**
 * The contrastive loss of a batch under the current trainable parameters. The rows' forward
 * passes run in length-sorted groups (`groupedEmbeddings`); each group's LoRA dropout has its
 * own seed, folded from the batch's.
 */
export function batchLoss(
  trainable: Trainable,
  base: QwenParams,
  model: QwenModel,
  o: EmbedTrainOptions,
  lora: LoraConfig | null,
  batch: EmbedBatch,
): Tensor {
  const paramsFor = (group: number) =>
    lora
      ? attachLora(base, trainable as LoraParams, lora, {
        dropoutSeed: foldIn(batch.dropoutSeed, group),
      })
      : withTensors(base, trainable as Record<string, Tensor>);
  const e = groupedEmbeddings(
    batch.rows,
    batch.device,
    (ids, mask, group) => sentenceEmbeddings(paramsFor(group), ids, mask, model.config),
    { groupRows: embedGroupRows },
  );
  return o.loss === "ibn" ? inBatchNegativeLoss(e, o.tau) : infoNceLoss(e, o.tau);
}

/**
 * Rows per forward group in training: fewer rows pad less, more rows make fewer and larger
 * dispatches. Only 32 was measured (FFN+ATT, batch 64 pairs: 367 s as one padded batch, 240 s
 * in groups of 32); other sizes were not tried.
 */
const embedGroupRows = 32;

/**
 * Train (or resume) in `out`. Pairs are tokenised once; every batch, dropout mask and
 * learning rate is a function of the step, so a resumed run equals an uninterrupted one.
 */
export async function trainEmbed(
  model: QwenModel,
  tokenizer: QwenTokenizer,
  pairs: readonly Pair[],
  o: EmbedTrainOptions,
  out: string,
  device: Device,
  resume: boolean,
  hooks: EmbedTrainHooks = {},
): Promise<EmbedTrainResult> {
  const tokenPairs: TokenPair[] = pairs.map((p) => ({
    a: promptIds(tokenizer, p.text, o.maxTokens),
    p: promptIds(tokenizer, p.positive, o.maxTokens),
  }));
  if (tokenPairs.every((p) => p.a.join(",") === p.p.join(","))) {
    throw new Error(
      `train-embed: every pair's two texts are the same tokens after truncation to ${o.maxTokens} tokens (raise --max-tokens)`,
    );
  }
  const plan = schedulePlan(pairs.length, o);
  const schedule = hfLinearWarmup({ peak: o.lr, warmup: o.warmup, total: plan.scheduled });
  const optimizer = runOptimizer(o, schedule);
  const lora = o.full ? null : loraConfigOf(o, model.dir);
  const fresh = initTrainable(model, o, device);
  const run = await openRun(
    out,
    o,
    { params: fresh, state: optimizer.init(fresh) },
    trainableNames(fresh, lora !== null),
    resume,
    device,
  );
  let trainable = run.params, state = run.state, step = run.step;
  const priorSeconds = run.seconds, logPath = run.logPath;

  const lossAndGrad = valueAndGrad(batchLoss);
  const startedAt = performance.now();
  const seconds = () => priorSeconds + (performance.now() - startedAt) / 1000;
  const log = new StepLog<{ lr: number; pairs: number }>(logPath, "train-embed", seconds);
  const flush = async () => {
    for (const r of await log.flush()) hooks.onLog?.(r);
  };
  let pairsSeen = 0, stopped = false;
  while (step < plan.total) {
    const lr = schedule(step);
    let stepPairs = 0;
    const next = scope(() => {
      let gradSum: Trainable | null = null, lossSum: Tensor | null = null;
      let micros = 0;
      for (let k = 0; k < o.gradAccum; k++) {
        // micro-batches are grouped within an epoch (as the HF Trainer): an epoch's last
        // step may have fewer than gradAccum of them
        const epoch = Math.floor(step / plan.stepsPerEpoch);
        const local = (step % plan.stepsPerEpoch) * o.gradAccum + k;
        if (local >= plan.microPerEpoch) break;
        const micro = epoch * plan.microPerEpoch + local;
        const idx = microBatchIndices(pairs.length, micro, o, plan.microPerEpoch);
        const kept = dropDuplicates(idx.map((i) => tokenPairs[i]!));
        if (kept.length === 0) continue;
        stepPairs += kept.length;
        const [loss, grads] = lossAndGrad(trainable, model.params, model, o, lora, {
          rows: kept.flatMap((p) => [p.a, p.p]),
          dropoutSeed: foldIn(foldIn(o.seed, 0x10a), micro),
          device,
        });
        gradSum = gradSum === null ? grads : addTrees(gradSum, grads);
        lossSum = lossSum === null ? loss : add(lossSum, loss);
        micros++;
      }
      if (gradSum === null || lossSum === null) return null;
      // Hugging Face Trainer: each micro-batch loss is divided by the accumulation steps
      const grads = micros === 1 ? gradSum : scaleTree(gradSum, 1 / micros);
      // clipping as a scale inside the fused AdamW kernel: no extra pass over the gradients
      const [factor, norm] = clipFactor(grads, o.clip);
      const [p2, s2] = optimizer.update(grads, state, trainable, { gradScale: factor });
      const meanLoss = mul(lossSum, 1 / micros);
      return {
        trainable: p2,
        state: s2,
        record: concat([reshape(meanLoss, [1]), reshape(norm, [1])], 0),
      };
    });
    if (next) {
      for (const t of [...leaves(trainable), ...leaves([state.m, state.v])]) t.dispose();
      trainable = next.trainable;
      state = next.state;
      log.push(step + 1, next.record, { lr, pairs: stepPairs });
    } else state = { ...state, step: state.step + 1 };
    step++;
    pairsSeen += stepPairs;
    stopped = hooks.shouldStop?.() ?? false;
    if (step % o.logEvery === 0 || step === plan.total || stopped) await flush();
    await settleStep(device);
    hooks.onStep?.(step, plan.total, stepPairs, log.lastLoss);
    const save = (o.saveEvery > 0 && step % o.saveEvery === 0) || step === plan.total || stopped;
    if (save) {
      await saveRunState(out, trainable, state, trainableNames(trainable, lora !== null), {
        options: o,
        step,
        seconds: seconds(),
      });
    }
    if (stopped) break;
  }
  await flush();
  return {
    trainable,
    loraConfig: lora,
    steps: step,
    totalSteps: plan.total,
    pairsSeen,
    seconds: seconds(),
    losses: log.losses,
    stopped,
  };
}

function addTrees<T extends PyTree>(a: T, b: T): T {
  const lb = leaves(b);
  return unflatten(a, leaves(a).map((x, i) => add(x, lb[i]!)));
}

function scaleTree<T extends PyTree>(a: T, s: number): T {
  return unflatten(a, leaves(a).map((x) => mul(x, s)));
}
