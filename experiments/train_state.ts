// Checkpoints of the fine-tuning loops (train-embed, ubmoe train): the trained tensors and
// their AdamW moments in f32 (exact), and a `train_state.json` pointer written last, so a
// crash at any moment leaves one complete checkpoint and `--resume` continues to the same
// bytes as an uninterrupted run.
import { Checkpoint } from "../qwen/checkpoint.ts";
import type { Device } from "../tensor/device.ts";
import { adamw, type AdamWState, type Optimizer } from "../nn/optim.ts";
import type { Schedule } from "../nn/schedules.ts";
import { leaves, type PyTree, unflatten } from "../tensor/pytree.ts";
import { concat } from "../tensor/ops/layout.ts";
import { scope } from "../tensor/scope.ts";
import { writeSafetensors } from "../tensor/safetensors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { foldIn, Rng } from "../tensor/random.ts";

/** What every fine-tuning run's options hold (saved with it; a resume must match them). */
export interface RunOptions {
  lr: number;
  /** Pairs or conversations per (micro-)batch. */
  batch: number;
  warmup: number;
  maxTokens: number;
  seed: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clip: number;
  saveEvery: number;
  logEvery: number;
  /** Identifies the data and base model (file names and sizes), so a resume cannot mix them. */
  dataId: string;
  modelId: string;
}

/** AdamW with a run's β, ε and weight decay, its rate from `schedule`. */
export function runOptimizer(o: RunOptions, schedule: Schedule): Optimizer<AdamWState> {
  return adamw({
    lr: schedule,
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    weightDecay: o.weightDecay,
  });
}

/** train_state.json: the run's options, how far it got and its newest checkpoint folder. */
export interface RunState<O> {
  options: O;
  step: number;
  seconds: number;
  checkpoint: string;
}

/** The run state in `out`, or null when there is none. */
export async function readRunState<O>(out: string): Promise<RunState<O> | null> {
  const text = await Deno.readTextFile(`${out}/train_state.json`).catch(() => null);
  if (text === null) return null;
  try {
    return JSON.parse(text) as RunState<O>;
  } catch (e) {
    throw new Error(`${out}/train_state.json: invalid JSON (${(e as Error).message})`);
  }
}

/**
 * Write `params` (leaves named by `names`, in leaf order) and the moments to a fresh
 * `checkpoint-<step>` folder, point train_state.json at it (temp + rename), then delete the
 * older folder.
 */
export async function saveRunState<O>(
  out: string,
  params: PyTree,
  state: AdamWState,
  names: readonly string[],
  info: Omit<RunState<O>, "checkpoint">,
): Promise<void> {
  const name = `checkpoint-${info.step}`;
  const dir = `${out}/${name}`;
  const previous = await readRunState<O>(out);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const tensors: Record<string, { dtype: "F32"; shape: number[]; data: Float32Array }> = {};
  const groups = [["param", params], ["m", state.m], ["v", state.v]] as const;
  for (const [prefix, tree] of groups) {
    const ls = leaves(tree);
    for (let i = 0; i < ls.length; i++) {
      tensors[`${prefix}.${names[i]}`] = {
        dtype: "F32",
        shape: [...ls[i]!.shape],
        data: Float32Array.from(await ls[i]!.data()),
      };
    }
  }
  await writeSafetensors(`${dir}/train_state.safetensors`, tensors);
  const saved: RunState<O> = { ...info, checkpoint: name };
  const tmp = `${out}/train_state.json.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, JSON.stringify(saved, null, 2) + "\n");
  await Deno.rename(tmp, `${out}/train_state.json`);
  if (previous && previous.checkpoint !== name) {
    await Deno.remove(`${out}/${previous.checkpoint}`, { recursive: true }).catch(() => {});
  }
}

/** Params and moments of a checkpoint, shaped like `template` (leaves named by `names`). */
export async function loadRunState<P extends PyTree>(
  dir: string,
  template: P,
  names: readonly string[],
  step: number,
  device: Device,
): Promise<{ params: P; state: AdamWState<P> }> {
  using ckpt = await Checkpoint.open(dir, "train_state");
  const load = async (prefix: string) => {
    const out: Tensor[] = [];
    for (const n of names) out.push(await ckpt.load(`${prefix}.${n}`, device));
    return unflatten(template, out);
  };
  return { params: await load("param"), state: { step, m: await load("m"), v: await load("v") } };
}

/**
 * Open a run in `out`: a fresh log, or — with `resume` and a checkpoint there saved with the
 * same options — the checkpoint's params and moments (the given fresh ones are disposed),
 * its step and time, and the log cut back to that step.
 */
export async function openRun<O, P extends PyTree>(
  out: string,
  options: O,
  fresh: { params: P; state: AdamWState },
  names: readonly string[],
  resume: boolean,
  device: Device,
): Promise<{ params: P; state: AdamWState; step: number; seconds: number; logPath: string }> {
  await Deno.mkdir(out, { recursive: true });
  const logPath = `${out}/train_log.jsonl`;
  const saved = resume ? await readRunState<O>(out) : null;
  if (!saved) {
    await Deno.writeTextFile(logPath, "");
    return { ...fresh, step: 0, seconds: 0, logPath };
  }
  if (JSON.stringify(saved.options) !== JSON.stringify(options)) {
    throw new Error(
      `${out}/train_state.json: saved with different options or data; start a fresh --out`,
    );
  }
  const restored = await loadRunState(
    `${out}/${saved.checkpoint}`,
    fresh.params,
    names,
    saved.step,
    device,
  );
  for (const t of leaves([fresh.params, fresh.state.m, fresh.state.v])) t.dispose();
  await truncateLog(logPath, saved.step);
  return { ...restored, step: saved.step, seconds: saved.seconds, logPath };
}

/** Keep the log lines up to `step` (a resumed run rewrites what came after). */
export async function truncateLog(path: string, step: number): Promise<void> {
  const text = await Deno.readTextFile(path).catch(() => "");
  const kept = text.split("\n").filter((l) => l.trim() !== "" && JSON.parse(l).step <= step);
  await Deno.writeTextFile(path, kept.map((l) => l + "\n").join(""));
}

/**
 * The item indices of batch `index` (0-based over the whole run) of `n` items: a seeded
 * Fisher–Yates shuffle per epoch, `size` items per batch (the last batch of an epoch may be
 * short), `perEpoch` batches per epoch.
 */
export function shuffledBatch(
  n: number,
  index: number,
  size: number,
  seed: number,
  perEpoch: number,
): number[] {
  const epoch = Math.floor(index / perEpoch), j = index % perEpoch;
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(foldIn(seed, epoch));
  for (let i = n - 1; i > 0; i--) {
    const k = rng.int(i + 1);
    [order[i], order[k]] = [order[k]!, order[i]!];
  }
  return order.slice(j * size, (j + 1) * size);
}

/** One line of a training log: the step's loss and gradient norm, the loop's own fields, the time. */
export type StepRecord<E> = { step: number; loss: number; gradNorm: number } & E & {
  seconds: number;
};

/**
 * A training loop's log: each step's [loss, gradient norm] stays on the device until `flush`
 * reads a batch back at once (a read-back costs ~10 ms on lavapipe) and appends JSON lines.
 */
export class StepLog<E extends Record<string, unknown>> {
  #pending: { step: number; record: Tensor; extra: E }[] = [];
  /** Every loss flushed so far, in step order. */
  readonly losses: number[] = [];
  /** The newest flushed loss. */
  lastLoss: number | undefined;

  constructor(
    readonly path: string,
    readonly command: string,
    readonly seconds: () => number,
  ) {}

  /** Queue a step's one-element-per-entry [loss, gradNorm] tensor (the log owns it). */
  push(step: number, record: Tensor, extra: E): void {
    this.#pending.push({ step, record, extra });
  }

  /** Read the queued steps back, check them and append them to the log. */
  async flush(): Promise<StepRecord<E>[]> {
    const pending = this.#pending;
    if (pending.length === 0) return [];
    this.#pending = [];
    // in a scope: concat's own temporaries are freed with it
    const joined = scope(() => concat(pending.map((p) => p.record), 0));
    const values = await joined.data();
    joined.dispose();
    for (const p of pending) p.record.dispose();
    const seconds = Math.round(this.seconds() * 10) / 10;
    const records = pending.map((p, i) => ({
      step: p.step,
      loss: values[2 * i]!,
      gradNorm: values[2 * i + 1]!,
      ...p.extra,
      seconds,
    })) as StepRecord<E>[];
    const bad = records.find((r) => !Number.isFinite(r.loss));
    if (bad) throw new Error(`${this.command}: the loss is not finite at step ${bad.step}`);
    for (const r of records) this.losses.push(r.loss);
    this.lastLoss = records.at(-1)!.loss;
    await Deno.writeTextFile(this.path, records.map((r) => JSON.stringify(r) + "\n").join(""), {
      append: true,
    });
    return records;
  }
}

/**
 * End a training step: wait for the device (textures freed during the step are destroyed
 * once the queue is idle, in a promise callback), then run V8's garbage collector when the
 * process has it (`--v8-flags=--expose-gc`, as the training tasks run): WebGPU objects hold
 * native memory that V8 does not see, and without a collection train-embed grew about
 * 1 GB a step until the OOM killer stopped it.
 */
export async function settleStep(device: Device): Promise<void> {
  await device.sync();
  (globalThis as { gc?: () => void }).gc?.();
  if (memoryLog) {
    const s = device.stats(), mb = (b: number) => (b / 2 ** 20).toFixed(0);
    console.error(
      `memory: rss ${mb(Deno.memoryUsage().rss)} MB, live ${
        mb(s.liveBytes)
      } MB in ${s.liveCount}, pooled ${mb(s.pooledBytes)} MB`,
    );
  }
}

/** TENSOR_MEMORY_LOG=1: one line per training step with the process's and the device's memory. */
const memoryLog = (() => {
  try {
    return Deno.env.get("TENSOR_MEMORY_LOG") === "1";
  } catch {
    return false;
  }
})();
