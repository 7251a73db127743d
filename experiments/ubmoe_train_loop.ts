// Router training of a UBMoE model (the paper's train_ubmoe.py, DESIGN 3.6): SFT on chat
// rows, next-token cross-entropy on the assistant tokens only, only the routers `mlp.gate`
// learn (no gradient is computed for anything else), an optional Switch-style
// load-balancing loss, AdamW with clipping; atomic checkpoints and an exact resume.
// Each step first chooses the experts with the current routers (a forward without the LM
// head, read back per layer), then differentiates the loss with that routing fixed.
import { valueAndGrad } from "../autograd/grad.ts";
import { causalLmLoss, ignoreIndex } from "../nn/losses.ts";
import { clipFactor } from "../nn/optim.ts";
import { hfLinearWarmup } from "../nn/schedules.ts";
import type { QwenModel, QwenParams } from "../qwen/checkpoint.ts";
import { decoder, decoderAsync } from "../qwen/decoder.ts";
import { loadBalancingLoss, type RoutingDecision } from "../qwen/moe.ts";
import { routersOf, withRouters } from "../qwen/ubmoe.ts";
import { tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { add, cast, mul } from "../tensor/ops/elementwise.ts";
import { gather } from "../tensor/ops/gather.ts";
import { concat, reshape } from "../tensor/ops/layout.ts";
import { leaves } from "../tensor/pytree.ts";
import { scope, scopeAsync } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { SftExample } from "./chat_sft.ts";
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

/** Everything that determines a router-training run (saved; a resume must match it). */
export interface UbmoeTrainOptions extends RunOptions {
  steps: number;
  /** Weight of the load-balancing loss (0 = none). */
  auxLossCoef: number;
}

/**
 * One JSONL record of the log; `biFraction` is the fraction of real tokens sent to the
 * bidirectional expert, per layer.
 */
export type UbmoeLogRecord = StepRecord<{ lr: number; biFraction: number[] }>;

/** Callbacks of the loop. */
export interface UbmoeTrainHooks {
  onStep?: (step: number, total: number, tokens: number, loss: number | undefined) => void;
  shouldStop?: () => boolean;
}

/** The loss of a batch with the routing fixed: SFT cross-entropy (+ coef · load balancing). */
export function routerLoss(
  routers: Tensor[],
  params: QwenParams,
  model: QwenModel,
  batch: {
    ids: Tensor;
    mask: Tensor;
    labels: Tensor;
    routing: readonly RoutingDecision[];
    realRows: Tensor;
    realDecisions: RoutingDecision[];
  },
  auxLossCoef: number,
): Tensor {
  const out = decoder(withRouters(params, routers), batch.ids, model.config, {
    attentionMask: batch.mask,
    routing: batch.routing,
  });
  const lm = causalLmLoss(out.logits!, batch.ids, batch.mask, batch.labels);
  if (auxLossCoef === 0) return lm;
  // padding is not a token: the balance counts real rows only (as HF with attention_mask)
  const probs = out.router!.probs.map((p) => gather(p, batch.realRows));
  return add(
    lm,
    mul(loadBalancingLoss(probs, batch.realDecisions, model.config.moe!), auxLossCoef),
  );
}

/** Right-padded ids, mask and labels [B, T] of SFT examples (labels −100 at padding). */
function padExamples(examples: readonly SftExample[], device: Device) {
  const b = examples.length, t = Math.max(...examples.map((e) => e.ids.length));
  const ids = new Int32Array(b * t), mask = new Int32Array(b * t);
  const labels = new Int32Array(b * t).fill(ignoreIndex);
  const real: number[] = [];
  examples.forEach((e, i) => {
    ids.set(e.ids, i * t);
    labels.set(e.labels, i * t);
    mask.fill(1, i * t, i * t + e.ids.length);
    for (let j = 0; j < e.ids.length; j++) real.push(i * t + j);
  });
  const make = (v: Int32Array) => tensor(v, [b, t], { dtype: "i32", device });
  return { ids: make(ids), mask: make(mask), labels: make(labels), real };
}

/** Train the routers of a UBMoE `model` (or resume in `out`); returns the final routers. */
export async function trainRouters(
  model: QwenModel,
  examples: readonly SftExample[],
  o: UbmoeTrainOptions,
  out: string,
  device: Device,
  resume: boolean,
  hooks: UbmoeTrainHooks = {},
): Promise<
  { routers: Tensor[]; steps: number; seconds: number; losses: number[]; stopped: boolean }
> {
  const moe = model.config.moe!;
  const perEpoch = Math.ceil(examples.length / o.batch);
  const schedule = hfLinearWarmup({ peak: o.lr, warmup: o.warmup, total: o.steps });
  const optimizer = runOptimizer(o, schedule);
  const names = model.params.model.layers.map((_, i) => `model.layers.${i}.mlp.gate.weight`);
  // copies, not the model's own tensors (cast to f32 is the identity): the loop disposes them
  const fresh = scope(() => routersOf(model.params).map((r) => mul(cast(r, "f32"), 1)));
  const run = await openRun(
    out,
    o,
    { params: fresh, state: optimizer.init(fresh) },
    names,
    resume,
    device,
  );
  let routers = run.params, state = run.state, step = run.step;
  const priorSeconds = run.seconds, logPath = run.logPath;

  const lossAndGrad = valueAndGrad(routerLoss);
  const startedAt = performance.now();
  const seconds = () => priorSeconds + (performance.now() - startedAt) / 1000;
  const log = new StepLog<{ lr: number; biFraction: number[] }>(logPath, "ubmoe train", seconds);
  const flush = () => log.flush();
  let stopped = false;
  while (step < o.steps) {
    const lr = schedule(step);
    const batch = shuffledBatch(examples.length, step, o.batch, o.seed, perEpoch)
      .map((i) => examples[i]!);
    const { ids, mask, labels, real } = padExamples(batch, device);
    // the routing of this step: the current routers' top-k on the host
    const routing = await scopeAsync(async () => {
      const r = await decoderAsync(withRouters(model.params, routers), ids, model.config, {
        attentionMask: mask,
        logits: false,
      });
      return r.router!.decisions;
    });
    const k = moe.numExpertsPerTok;
    const realDecisions = routing.map((d) =>
      Int32Array.from(real.flatMap((r) => [...d.subarray(r * k, r * k + k)]))
    );
    const biFraction = realDecisions.map((d) => d.filter((x) => x === 1).length / d.length);
    const next = scope(() => {
      const realRows = tensor(Int32Array.from(real), [real.length], { dtype: "i32", device });
      const [loss, grads] = lossAndGrad(
        routers,
        model.params,
        model,
        { ids, mask, labels, routing, realRows, realDecisions },
        o.auxLossCoef,
      );
      const [factor, norm] = clipFactor(grads, o.clip);
      const [r2, s2] = optimizer.update(grads, state, routers, { gradScale: factor });
      return {
        routers: r2,
        state: s2,
        record: concat([reshape(loss, [1]), reshape(norm, [1])], 0),
      };
    });
    for (const t of [ids, mask, labels, ...routers, ...leaves([state.m, state.v])]) t.dispose();
    routers = next.routers;
    state = next.state;
    step++;
    log.push(step, next.record, { lr, biFraction });
    await settleStep(device);
    stopped = hooks.shouldStop?.() ?? false;
    if (step % o.logEvery === 0 || step === o.steps || stopped) await flush();
    hooks.onStep?.(step, o.steps, real.length, log.lastLoss);
    if ((o.saveEvery > 0 && step % o.saveEvery === 0) || step === o.steps || stopped) {
      await saveRunState(out, routers, state, names, { options: o, step, seconds: seconds() });
    }
    if (stopped) break;
  }
  await flush();
  return { routers, steps: step, seconds: seconds(), losses: log.losses, stopped };
}
