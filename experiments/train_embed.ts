// `deno task train-embed`: bidirectional contrastive fine-tuning with LoRA or full
// fine-tuning of a target (the paper's train_bi.py, DESIGN 3.5); writes a PEFT adapter
// directory (or, with --full, a model directory).
import { mergeLora } from "../nn/lora.ts";
import { withTensors } from "../nn/params.ts";
import { writeAdapter } from "../qwen/peft.ts";
import { saveModelDir } from "../qwen/save.ts";
import { parseTarget, TargetError } from "../qwen/targets.ts";
import { scope } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { intFlag, parseFlags, runCommand, stopOnInterrupt, UserError } from "./cli.ts";
import { type EmbedTrainOptions, schedulePlan, trainEmbed } from "./embed_train_loop.ts";
import type { LoraParams } from "../nn/lora.ts";
import { describeModel, modelFlags, openDevice, openModel, resolveModel } from "./model.ts";
import { readPairs } from "./pair_data.ts";
import { formatSeconds, Progress } from "./progress.ts";

/** The default model and pairs file of every embedding command. */
export const defaultModel = "models/brown-qwen2";
export const defaultPairs = "data/pairs/train.jsonl";

const spec = {
  name: "train-embed",
  summary:
    "Bidirectional contrastive fine-tuning (the paper's train_bi.py): prompt, bidirectional mask,\n" +
    "mean pooling, AnglE's in-batch-negative loss; LoRA (PEFT format) or full fine-tuning of a target.",
  flags: {
    model: { ...modelFlags.model, default: defaultModel },
    data: {
      type: "string",
      metavar: "FILE",
      default: defaultPairs,
      help: 'pairs, JSONL or JSON array of {"text": …, "positive": …}',
    },
    target: {
      type: "string",
      metavar: "T",
      default: "FFN",
      help: "what learns: ATT, FFN, EMB, a '+' combination (FFN+ATT, …) or ALL",
    },
    full: { type: "boolean", help: "full fine-tuning of the target instead of LoRA" },
    "lora-r": { type: "number", default: 8, help: "LoRA rank" },
    "lora-alpha": { type: "number", default: 16, help: "LoRA α" },
    "lora-dropout": { type: "number", default: 0.05, help: "dropout on the LoRA input path" },
    "no-rslora": { type: "boolean", help: "scale α/r instead of rsLoRA's α/√r" },
    loss: {
      type: "string",
      metavar: "NAME",
      default: "ibn",
      help: "ibn (AnglE in-batch negatives, DESIGN 3.5) or infonce (AnglE format B/C)",
    },
    lr: { type: "number", default: 3e-4, help: "peak learning rate" },
    batch: { type: "number", default: 64, help: "pairs per batch (2× rows)" },
    "grad-accum": { type: "number", default: 1, help: "batches per optimizer step" },
    warmup: { type: "number", default: 120, help: "linear warmup steps (then linear decay)" },
    epochs: { type: "number", default: 1, help: "passes over the data" },
    "max-steps": { type: "number", default: 0, help: "stop after N optimizer steps (0 = all)" },
    "max-pairs": { type: "number", default: 0, help: "use only the first N pairs (0 = all)" },
    "max-tokens": { type: "number", default: 1024, help: "truncate each prompt to N tokens" },
    tau: { type: "number", default: 20, help: "temperature factor τ of the loss" },
    seed: { type: "number", default: 42, help: "seed of LoRA init, data order and dropout" },
    "weight-decay": { type: "number", default: 0, help: "AdamW decoupled weight decay" },
    out: {
      type: "string",
      metavar: "DIR",
      help: "output directory (default runs/embed-<target>[-full])",
    },
    merge: {
      type: "boolean",
      help: "also write OUT/merged: the base model with the adapter merged in",
    },
    resume: { type: "boolean", help: "continue from the newest checkpoint in --out" },
    "save-every": { type: "number", default: 50, help: "checkpoint every N steps" },
    "log-every": { type: "number", default: 5, help: "read losses back and log every N steps" },
    backend: modelFlags.backend,
  },
  epilog:
    `AdamW β (0.9, 0.999), ε 1e-3 and gradient clipping at 1.0, as the paper; the learning rate
warms up linearly from 0 and decays linearly to 0 (transformers' default schedule).

Outputs (in --out):
  adapter_config.json, adapter_model.safetensors   the LoRA adapter in PEFT's format
  config.json, model.safetensors                   instead, with --full
  merged/                                          with --merge: a plain model directory
  train_log.jsonl     {step, loss, gradNorm, lr, pairs, seconds} per step
  train_state.json    newest checkpoint (for --resume); summary.json: final figures

Example:
  deno task train-embed --target ATT --max-steps 20 --out /tmp/att`,
} as const;

if (import.meta.main) {
  await runCommand("train-embed", async () => {
    const flags = parseFlags(spec, Deno.args);
    let target;
    try {
      target = parseTarget(flags.target);
    } catch (e) {
      if (e instanceof TargetError) throw new UserError(`--target: ${e.message}`, 2);
      throw e;
    }
    if (flags.loss !== "ibn" && flags.loss !== "infonce") {
      throw new UserError(`--loss must be ibn or infonce, got '${flags.loss}'`, 2);
    }
    const dropout = flags["lora-dropout"];
    if (!(dropout >= 0 && dropout < 1)) {
      throw new UserError(`--lora-dropout must be in [0, 1), got ${dropout}`, 2);
    }
    const full = flags.full ?? false;
    const out = flags.out ?? `runs/embed-${target.name.toLowerCase()}${full ? "-full" : ""}`;
    const base = await resolveModel("train-embed", flags.model);
    const maxPairs = intFlag("max-pairs", flags["max-pairs"]) || Infinity;
    const pairs = (await readPairs(flags.data)).slice(0, maxPairs);
    const stat = async (p: string) => (await Deno.stat(p).catch(() => null))?.size ?? 0;
    const options: EmbedTrainOptions = {
      target: target.name,
      full,
      lora: {
        r: intFlag("lora-r", flags["lora-r"], 1),
        alpha: flags["lora-alpha"],
        dropout,
        rslora: !(flags["no-rslora"] ?? false),
      },
      loss: flags.loss,
      lr: flags.lr,
      batch: intFlag("batch", flags.batch, 1),
      gradAccum: intFlag("grad-accum", flags["grad-accum"], 1),
      warmup: intFlag("warmup", flags.warmup),
      epochs: intFlag("epochs", flags.epochs, 1),
      maxSteps: intFlag("max-steps", flags["max-steps"]),
      maxTokens: intFlag("max-tokens", flags["max-tokens"], 8),
      tau: flags.tau,
      seed: intFlag("seed", flags.seed),
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-3,
      weightDecay: flags["weight-decay"],
      clip: 1,
      saveEvery: intFlag("save-every", flags["save-every"]),
      logEvery: intFlag("log-every", flags["log-every"], 1),
      dataId: `${flags.data} (${pairs.length} pairs, ${await stat(flags.data)} bytes)`,
      modelId: `${describeModel(base)} (${await stat(`${base.dir}/model.safetensors`)} bytes)`,
    };
    const device = await openDevice(flags.backend);
    const { model, tokenizer } = await openModel(base.dir, device);
    if (!tokenizer) {
      throw new UserError(`${base.dir}: no tokenizer.json (needed for text pairs)`);
    }
    const plan = schedulePlan(pairs.length, options);
    console.error(
      `train-embed: ${device.kind} backend; ${flags.model}; target ${target.name} ${
        full ? "(full fine-tuning)" : `(LoRA r ${options.lora.r}, α ${options.lora.alpha})`
      }; ${pairs.length} pairs from ${flags.data}; ${plan.total} steps × ${options.batch} pairs` +
        `${options.gradAccum > 1 ? ` × ${options.gradAccum}` : ""}; out ${out}` +
        `${flags.resume ? " (resume)" : ""}`,
    );
    const interrupt = stopOnInterrupt("train-embed");
    const progress = new Progress("train-embed", plan.total, "pairs");
    const result = await trainEmbed(
      model,
      tokenizer,
      pairs,
      options,
      out,
      device,
      flags.resume ?? false,
      {
        onStep: (step, _total, n, loss) =>
          progress.update(step, n, loss === undefined ? "" : `loss ${loss.toFixed(4)}`),
        shouldStop: interrupt.requested,
      },
    );
    progress.done();
    interrupt.release();
    if (result.stopped) {
      console.error(
        `train-embed: stopped at step ${result.steps}; continue with --resume --out ${out}`,
      );
      return;
    }
    const copyTokenizer = async (dir: string) => {
      for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
        await Deno.copyFile(`${base.dir}/${f}`, `${dir}/${f}`).catch(() => {});
      }
    };
    if (result.loraConfig) {
      await writeAdapter(out, result.trainable as LoraParams, result.loraConfig);
      if (flags.merge) {
        const merged = scope(() =>
          mergeLora(model.params, result.trainable as LoraParams, result.loraConfig!)
        );
        await saveModelDir(`${out}/merged`, { ...model.config.raw }, merged, "float32");
        await copyTokenizer(`${out}/merged`);
      }
    } else {
      const params = withTensors(model.params, result.trainable as Record<string, Tensor>);
      await saveModelDir(out, { ...model.config.raw }, params, "float32");
      await copyTokenizer(out);
    }
    const tail = result.losses.slice(-10);
    const summary = {
      target: target.name,
      full,
      steps: result.steps,
      pairs: result.pairsSeen,
      trainSeconds: Math.round(result.seconds),
      pairsPerSecond: result.pairsSeen / Math.max(result.seconds, 1e-9),
      firstLoss: result.losses[0] ?? null,
      finalLoss: tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : null,
      backend: device.kind,
      options,
    };
    await Deno.writeTextFile(`${out}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
    console.log(
      `steps ${result.steps}  pairs ${result.pairsSeen}  time ${formatSeconds(result.seconds)}  ` +
        `${summary.pairsPerSecond.toFixed(1)} pairs/s\nloss ${
          summary.firstLoss?.toFixed(4)
        } (first step) → ${summary.finalLoss?.toFixed(4)} (mean of the last ${tail.length})\n` +
        `${result.loraConfig ? "adapter" : "model"} written to ${out}` +
        (flags.merge && result.loraConfig ? `; merged model in ${out}/merged` : ""),
    );
  });
}
