// `deno task pretrain`: train a small Qwen2 (tied embeddings) from scratch on the Brown Corpus
// with this project's engine, and write it as an ordinary Hugging Face directory.
import { QwenTokenizer } from "../qwen/tokenizer.ts";
import { saveModelDir } from "../qwen/save.ts";
import { intFlag, parseFlags, runCommand, stopOnInterrupt, UserError } from "./cli.ts";
import { openDevice } from "./model.ts";
import { formatSeconds, Progress } from "./progress.ts";
import { brownTokenStream, endOfText } from "./pretrain_data.ts";
import { configJson, heldoutLoss, pretrain, type PretrainOptions } from "./pretrain_loop.ts";

const spec = {
  name: "pretrain",
  summary:
    "Pre-train a small Qwen2 causal LM on the Brown Corpus train split (packed sequences, AdamW,\n" +
    "warmup + cosine decay, clipping), evaluate held-out perplexity, save a Hugging Face directory.",
  flags: {
    out: {
      type: "string",
      metavar: "DIR",
      default: "runs/pretrain",
      help: "run directory: log.jsonl, state.json, checkpoints",
    },
    "save-model": {
      type: "string",
      metavar: "DIR",
      default: "models/brown-qwen2",
      help: "where the final model goes (config.json + bf16 model.safetensors); '' = nowhere",
    },
    tokenizer: {
      type: "string",
      metavar: "DIR",
      default: "models/brown-qwen2",
      help: "directory with tokenizer.json / tokenizer_config.json",
    },
    steps: { type: "number", default: 240, help: "optimizer steps" },
    batch: { type: "number", default: 4, help: "sequences per step" },
    "seq-len": { type: "number", default: 128, help: "tokens per packed sequence" },
    lr: { type: "number", default: 3e-3, help: "peak learning rate" },
    "min-lr": { type: "number", default: 3e-4, help: "learning rate at the last step" },
    warmup: { type: "number", default: 20, help: "linear warmup steps" },
    "weight-decay": { type: "number", default: 0.1, help: "AdamW decoupled weight decay" },
    "beta1": { type: "number", default: 0.9, help: "AdamW β₁" },
    "beta2": { type: "number", default: 0.95, help: "AdamW β₂" },
    clip: { type: "number", default: 1, help: "clip gradients to this global L2 norm" },
    seed: { type: "number", default: 0, help: "seed of the initial weights and the data order" },
    hidden: { type: "number", default: 96, help: "hidden size" },
    layers: { type: "number", default: 4, help: "decoder layers" },
    heads: { type: "number", default: 4, help: "attention heads" },
    "kv-heads": { type: "number", default: 2, help: "key/value heads (GQA)" },
    intermediate: { type: "number", default: 256, help: "MLP intermediate size" },
    "vocab-multiple": {
      type: "number",
      default: 64,
      help: "round vocab_size up to a multiple of this (the tokenizer has 37,778 ids)",
    },
    "max-positions": {
      type: "number",
      default: 1024,
      help: "max_position_embeddings written to config.json",
    },
    "eval-every": {
      type: "number",
      default: 80,
      help: "held-out evaluation every N steps (0 = never; the final one always runs)",
    },
    "eval-sequences": {
      type: "number",
      default: 16,
      help: "held-out sequences in the periodic evaluations",
    },
    "save-every": { type: "number", default: 40, help: "checkpoint every N steps" },
    "log-every": { type: "number", default: 10, help: "read losses back and log every N steps" },
    resume: {
      type: "boolean",
      help: "continue from the newest checkpoint in --out (give the same flags)",
    },
    backend: {
      type: "string",
      metavar: "NAME",
      help: "webgpu, reference or auto (default: TENSOR_BACKEND, else auto)",
    },
  },
  epilog: `Outputs:
  DIR/log.jsonl      one JSON object per step {step, loss, gradNorm, lr, tokens, seconds}
                     and per evaluation {step, heldoutLoss, heldoutPerplexity, sequences}
  DIR/state.json     step, data position and the newest checkpoint (for --resume)
  DIR/summary.json   final figures (training loss, held-out perplexity, time, tokens/s)

Example:
  deno task pretrain --steps 20 --out /tmp/pt --save-model ''`,
} as const;

await runCommand("pretrain", async () => {
  const flags = parseFlags(spec, Deno.args);
  const tokenizer = await QwenTokenizer.load(flags.tokenizer).catch((e) => {
    throw new UserError(`--tokenizer: ${(e as Error).message}`);
  });
  const eos = tokenizer.tokenId(endOfText);
  if (eos === undefined) throw new UserError(`${flags.tokenizer}: no ${endOfText} token`);
  const options: PretrainOptions = {
    model: {
      // rounded up as Hugging Face does (151,936 for Qwen2.5's 151,665 ids): the extra rows are
      // never targets, and on lavapipe the WebGPU cross-entropy gives wrong values for rows of
      // 37,778 logits while multiples of 4 are exact
      vocabSize: Math.ceil(tokenizer.size / intFlag("vocab-multiple", flags["vocab-multiple"], 1)) *
        flags["vocab-multiple"],
      hiddenSize: intFlag("hidden", flags.hidden, 2),
      intermediateSize: intFlag("intermediate", flags.intermediate, 1),
      numHiddenLayers: intFlag("layers", flags.layers, 1),
      numAttentionHeads: intFlag("heads", flags.heads, 1),
      numKeyValueHeads: intFlag("kv-heads", flags["kv-heads"], 1),
      maxPositionEmbeddings: intFlag("max-positions", flags["max-positions"], 2),
      eosTokenId: eos,
    },
    steps: intFlag("steps", flags.steps, 1),
    batch: intFlag("batch", flags.batch, 1),
    seqLen: intFlag("seq-len", flags["seq-len"], 2),
    lr: flags.lr,
    minLr: flags["min-lr"],
    warmup: intFlag("warmup", flags.warmup),
    weightDecay: flags["weight-decay"],
    beta1: flags.beta1,
    beta2: flags.beta2,
    clip: flags.clip,
    seed: intFlag("seed", flags.seed),
    evalEvery: intFlag("eval-every", flags["eval-every"]),
    evalSequences: intFlag("eval-sequences", flags["eval-sequences"], 1),
    saveEvery: intFlag("save-every", flags["save-every"]),
    logEvery: intFlag("log-every", flags["log-every"], 1),
  };
  if (options.warmup > options.steps) {
    throw new UserError(`--warmup (${options.warmup}) exceeds --steps (${options.steps})`, 2);
  }
  if (options.seqLen > options.model.maxPositionEmbeddings) {
    throw new UserError(`--seq-len exceeds --max-positions`, 2);
  }
  const device = await openDevice(flags.backend);
  const m = options.model;
  console.error(
    `pretrain: ${device.kind} backend; Qwen2 hidden ${m.hiddenSize}, ${m.numHiddenLayers} layers, ` +
      `${m.numAttentionHeads}/${m.numKeyValueHeads} heads, MLP ${m.intermediateSize}, vocab ` +
      `${m.vocabSize}; ${options.steps} steps × ${options.batch} × ${options.seqLen} tokens, ` +
      `seed ${options.seed}; run dir ${flags.out}${flags.resume ? " (resume)" : ""}`,
  );
  const train = await brownTokenStream(tokenizer, "train");
  const heldout = await brownTokenStream(tokenizer, "heldout");
  console.error(`pretrain: Brown train ${train.length} tokens, held-out ${heldout.length} tokens`);
  const interrupt = stopOnInterrupt("pretrain");
  const progress = new Progress("pretrain", options.steps, "tokens");
  const result = await pretrain(
    options,
    { train, heldout },
    flags.out,
    device,
    flags.resume ?? false,
    {
      onStep: (step, tokens, loss) =>
        progress.update(step, tokens, loss === undefined ? "" : `loss ${loss.toFixed(3)}`),
      onLog: (r) => {
        if ("heldoutLoss" in r) {
          console.error(
            `pretrain: step ${r.step}: held-out loss ${r.heldoutLoss.toFixed(3)}, perplexity ${
              r.heldoutPerplexity.toFixed(1)
            } (${r.sequences} sequences)`,
          );
        }
      },
      shouldStop: interrupt.requested,
    },
  );
  progress.done();
  interrupt.release();
  if (interrupt.requested()) {
    console.error(`pretrain: stopped; continue with --resume --out ${flags.out}`);
    return;
  }
  console.error("pretrain: evaluating on the whole held-out split");
  const evalStart = performance.now();
  const heldoutEval = await heldoutLoss(
    result.params,
    result.config,
    heldout,
    options.seqLen,
    options.batch,
  );
  const summary = {
    steps: options.steps,
    tokens: options.steps * options.batch * options.seqLen,
    trainSeconds: Math.round(result.trainSeconds),
    tokensPerSecond: Math.round(result.tokensPerSecond),
    finalTrainLoss: result.finalLoss,
    heldoutLoss: heldoutEval.loss,
    heldoutPerplexity: Math.exp(heldoutEval.loss),
    heldoutSequences: heldoutEval.sequences,
    heldoutTokens: heldoutEval.sequences * (options.seqLen - 1),
    evalSeconds: Math.round((performance.now() - evalStart) / 1000),
    backend: device.kind,
    options,
  };
  await Deno.writeTextFile(`${flags.out}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
  if (flags["save-model"] !== "") {
    await saveModelDir(flags["save-model"], configJson(options.model), result.params, "bfloat16");
    if (flags["save-model"] !== flags.tokenizer) {
      for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
        await Deno.copyFile(`${flags.tokenizer}/${f}`, `${flags["save-model"]}/${f}`);
      }
    }
  }
  console.log(
    `steps ${summary.steps}  tokens ${summary.tokens}  time ${
      formatSeconds(summary.trainSeconds)
    }  ` +
      `${summary.tokensPerSecond} tokens/s\nfinal training loss ${result.finalLoss.toFixed(4)}\n` +
      `held-out loss ${heldoutEval.loss.toFixed(4)}  perplexity ${
        summary.heldoutPerplexity.toFixed(2)
      } ` +
      `(${heldoutEval.sequences} × ${options.seqLen} tokens)` +
      (flags["save-model"] !== "" ? `\nmodel written to ${flags["save-model"]}` : ""),
  );
});
