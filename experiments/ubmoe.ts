// `deno task ubmoe build|train|inspect`: the paper's UBMoE (DESIGN 3.6) — a mixture of the
// base model's causal MLP and a bidirectionally trained MLP in every layer, with a router.
import { mergeLora } from "../nn/lora.ts";
import { loadQwen, type QwenModel } from "../qwen/checkpoint.ts";
import { readQwen2Config } from "../qwen/config.ts";
import { decoderAsync } from "../qwen/decoder.ts";
import { AdapterError, checkAdapterAgainstModel, readAdapter } from "../qwen/peft.ts";
import { saveModelDir } from "../qwen/save.ts";
import type { QwenTokenizer } from "../qwen/tokenizer.ts";
import {
  assembleUbmoe,
  checkBiMatchesBase,
  denseMlp,
  initRouters,
  ubmoeConfigJson,
  UbmoeError,
  withRouters,
} from "../qwen/ubmoe.ts";
import { tensor } from "../tensor/create.ts";
import { scope, scopeAsync } from "../tensor/scope.ts";
import { sftExample } from "./chat_sft.ts";
import { intFlag, parseFlags, runCommand, stopOnInterrupt, UserError } from "./cli.ts";
import { readRows, rowIds } from "./data.ts";
import { describeModel, modelFlags, openDevice, openModel, resolveModel } from "./model.ts";
import { formatSeconds, Progress } from "./progress.ts";
import { routingSvg } from "./routing_svg.ts";
import { trainRouters, type UbmoeTrainOptions } from "./ubmoe_train_loop.ts";

const buildSpec = {
  name: "ubmoe build",
  summary:
    "Build a UBMoE model: every MLP becomes a mixture of the base's (expert 0, causal) and\n" +
    "a bidirectionally trained model's (expert 1), with a new router per layer.",
  flags: {
    base: {
      type: "string",
      metavar: "DIR|ID",
      default: "models/brown-qwen2",
      help: "base model (a directory or a repo id in the local Hugging Face cache)",
    },
    bi: { type: "string", metavar: "DIR|ID", help: "bidirectionally trained model (FFN target)" },
    adapter: {
      type: "string",
      metavar: "DIR",
      help: "or: a PEFT adapter of the base (train-embed), merged to give the bi MLPs",
    },
    out: { type: "string", metavar: "DIR", help: "output model directory (required)" },
    "top-k": { type: "number", default: 1, help: "experts per token (num_experts_per_tok)" },
    "norm-topk-prob": { type: "boolean", help: "renormalise the chosen probabilities to sum 1" },
    seed: { type: "number", default: 0, help: "seed of the routers' N(0, 0.02²) draw" },
    backend: modelFlags.backend,
  },
  epilog: `Writes config.json (Qwen2 fields + num_experts, num_experts_per_tok, norm_topk_prob,
router_aux_loss_coef, architectures ["UBMoEQwen2ForCausalLM"]), model.safetensors with
Qwen2-MoE names (model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight, mlp.gate.weight)
and the base's tokenizer files. Every command (generate, score, dp, eval-mc) accepts it.

Example:
  deno task ubmoe build --adapter runs/embed-ffn --out runs/ubmoe`,
} as const;

const trainSpec = {
  name: "ubmoe train",
  summary:
    "Train only the routers of a UBMoE model by SFT on chat rows (loss on assistant tokens).",
  flags: {
    model: { type: "string", metavar: "DIR|ID", help: "UBMoE model directory (required)" },
    data: {
      type: "string",
      metavar: "FILE",
      default: "data/chat/train.jsonl",
      help: 'chat rows {"messages": [...]} (JSONL or JSON array)',
    },
    out: { type: "string", metavar: "DIR", help: "output directory (default: <model>-trained)" },
    lr: { type: "number", default: 1e-3, help: "peak learning rate" },
    steps: { type: "number", default: 100, help: "optimizer steps" },
    batch: { type: "number", default: 8, help: "conversations per step" },
    warmup: { type: "number", default: 10, help: "linear warmup steps (then linear decay)" },
    "max-tokens": { type: "number", default: 512, help: "truncate conversations to N tokens" },
    "aux-loss-coef": {
      type: "number",
      default: 0,
      help: "weight of the Switch-style load-balancing loss",
    },
    seed: { type: "number", default: 0, help: "seed of the data order" },
    resume: { type: "boolean", help: "continue from the newest checkpoint in --out" },
    "save-every": { type: "number", default: 25, help: "checkpoint every N steps" },
    "log-every": { type: "number", default: 5, help: "read losses back every N steps" },
    backend: modelFlags.backend,
  },
  epilog: `Everything but the routers is frozen: no gradient is computed for it, and the output's
other tensors are byte-identical to the input's. AdamW β (0.9, 0.999), ε 1e-8, clipping at 1.0.
Outputs in --out: the trained model directory, train_log.jsonl ({step, loss, gradNorm, lr,
biFraction per layer, seconds}), train_state.json and a checkpoint for --resume.`,
} as const;

const inspectSpec = {
  name: "ubmoe inspect",
  summary:
    "Routing analysis: per layer the fraction of tokens sent to the bidirectional expert and\n" +
    "the mean router probability of it; one sample's tokens coloured by expert (SVG).",
  flags: {
    model: { type: "string", metavar: "DIR|ID", help: "UBMoE model directory (required)" },
    data: {
      type: "string",
      metavar: "FILE",
      default: "data/chat/heldout.jsonl",
      help: 'rows {"messages"}, {"text"} or {"input_ids"}',
    },
    "max-samples": { type: "number", default: 64, help: "use at most N rows (0 = all)" },
    "max-tokens": { type: "number", default: 512, help: "truncate rows to N tokens" },
    svg: { type: "string", metavar: "OUT", help: "draw one sample's routing as SVG" },
    sample: { type: "number", default: 0, help: "which row --svg draws" },
    json: { type: "string", metavar: "OUT", help: "write the figures as JSON" },
    backend: modelFlags.backend,
  },
} as const;

const usage =
  `deno task ubmoe <build|train|inspect> [flags]   (--help after a subcommand for its flags)

${buildSpec.summary}

  build    ${buildSpec.summary.split("\n")[0]}
  train    ${trainSpec.summary}
  inspect  per-layer routing fractions and an SVG of one sample's routing`;

async function build(args: string[]) {
  const flags = parseFlags(buildSpec, args);
  if (!flags.out) throw new UserError("--out DIR is required", 2);
  if (!flags.bi === !flags.adapter) throw new UserError("give exactly one of --bi or --adapter", 2);
  const topK = intFlag("top-k", flags["top-k"], 1);
  if (topK > 2) throw new UserError(`--top-k must be 1 or 2 (two experts), got ${topK}`, 2);
  const baseDir = (await resolveModel("ubmoe build", flags.base)).dir;
  const biDir = flags.bi ? (await resolveModel("ubmoe build", flags.bi)).dir : undefined;
  const device = await openDevice(flags.backend);
  const { model: base } = await openModel(baseDir, device);
  if (base.config.moe) {
    throw new UserError(`${flags.base}: the base is already a mixture of experts`);
  }
  let biMlps;
  try {
    if (biDir) {
      checkBiMatchesBase(base.config, await readQwen2Config(biDir), flags.bi!);
      const bi = await loadQwen(biDir, device);
      biMlps = bi.params.model.layers.map((_, i) => denseMlp(bi.params, i));
    } else {
      const { params: lora, config } = await readAdapter(flags.adapter!, device);
      checkAdapterAgainstModel(lora, config, base.config, flags.adapter!);
      if (!Object.keys(lora).some((m) => /mlp\.(gate|up|down)_proj$/.test(m))) {
        throw new UserError(
          `${flags.adapter}: the adapter does not adapt any MLP (target_modules ${
            JSON.stringify(config.targetModules)
          }): expert 1 would equal expert 0`,
        );
      }
      const merged = scope(() => mergeLora(base.params, lora, config));
      biMlps = merged.model.layers.map((_, i) => denseMlp(merged, i));
    }
  } catch (e) {
    if (e instanceof UbmoeError || e instanceof AdapterError) throw new UserError(e.message);
    throw e;
  }
  const options = { topK, normTopkProb: flags["norm-topk-prob"] ?? false, routerAuxLossCoef: 0 };
  const params = assembleUbmoe(base.params, biMlps, initRouters(base.config, flags.seed, device));
  await saveModelDir(flags.out, ubmoeConfigJson(base.config, options), params, "preserve");
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${baseDir}/${f}`, `${flags.out}/${f}`).catch(() => {});
  }
  console.log(
    `UBMoE written to ${flags.out}: ${base.config.numHiddenLayers} layers × 2 experts (top-${topK}), ` +
      `expert 1 from ${flags.bi ?? `${flags.base} + ${flags.adapter}`}`,
  );
}

async function train(args: string[]) {
  const flags = parseFlags(trainSpec, args);
  if (!flags.model) throw new UserError("--model DIR is required", 2);
  const ref = await resolveModel("ubmoe train", flags.model);
  // next to the argument as given: a repo id's default output is ./org/name-trained, never
  // inside the Hugging Face cache
  const out = flags.out ?? `${flags.model.replace(/\/$/, "")}-trained`;
  const device = await openDevice(flags.backend);
  const { model, tokenizer } = await openModel(ref.dir, device);
  if (!model.config.moe) {
    throw new UserError(`${flags.model}: not a mixture of experts (no num_experts in config.json)`);
  }
  if (!tokenizer) throw new UserError(`${ref.dir}: no tokenizer.json (needed for chat rows)`);
  const maxTokens = intFlag("max-tokens", flags["max-tokens"], 2);
  const { rows, problems } = await readRows(flags.data);
  const examples = [];
  let noAssistant = 0, notChat = 0;
  for (const row of rows) {
    if (row.kind !== "messages") {
      notChat++;
      continue;
    }
    const e = sftExample(tokenizer, row.messages, maxTokens);
    if (e) examples.push(e);
    else noAssistant++;
  }
  const skipped = [
    problems.length
      ? `${problems.length} malformed (first: line ${problems[0]!.line}: ${problems[0]!.message})`
      : "",
    noAssistant ? `${noAssistant} without an assistant turn` : "",
    notChat ? `${notChat} not chat rows` : "",
  ].filter((s) => s);
  if (skipped.length) console.error(`ubmoe train: skipped rows: ${skipped.join(", ")}`);
  if (examples.length === 0) throw new UserError(`${flags.data}: no usable chat rows`);
  const stat = async (p: string) => (await Deno.stat(p).catch(() => null))?.size ?? 0;
  const o: UbmoeTrainOptions = {
    lr: flags.lr,
    steps: intFlag("steps", flags.steps, 1),
    batch: intFlag("batch", flags.batch, 1),
    warmup: intFlag("warmup", flags.warmup),
    maxTokens,
    auxLossCoef: flags["aux-loss-coef"],
    seed: intFlag("seed", flags.seed),
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    clip: 1,
    saveEvery: intFlag("save-every", flags["save-every"]),
    logEvery: intFlag("log-every", flags["log-every"], 1),
    dataId: `${flags.data} (${examples.length} conversations, ${await stat(flags.data)} bytes)`,
    modelId: `${describeModel(ref)} (${await stat(`${ref.dir}/model.safetensors`)} bytes)`,
  };
  if (o.warmup > o.steps) throw new UserError(`--warmup (${o.warmup}) exceeds --steps`, 2);
  console.error(
    `ubmoe train: ${device.kind} backend; ${flags.model}; ${examples.length} conversations; ` +
      `${o.steps} steps × ${o.batch}; routers only; out ${out}${flags.resume ? " (resume)" : ""}`,
  );
  const interrupt = stopOnInterrupt("ubmoe train");
  const progress = new Progress("ubmoe train", o.steps, "tokens");
  const result = await trainRouters(model, examples, o, out, device, flags.resume ?? false, {
    onStep: (step, _total, tokens, loss) =>
      progress.update(step, tokens, loss === undefined ? "" : `loss ${loss.toFixed(4)}`),
    shouldStop: interrupt.requested,
  });
  progress.done();
  interrupt.release();
  if (result.stopped) {
    console.error(
      `ubmoe train: stopped at step ${result.steps}; continue with --resume --out ${out}`,
    );
    return;
  }
  const params = withRouters(model.params, result.routers);
  await saveModelDir(out, { ...model.config.raw }, params, "preserve");
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(`${ref.dir}/${f}`, `${out}/${f}`).catch(() => {});
  }
  const first = result.losses[0], tail = result.losses.slice(-5);
  console.log(
    `steps ${result.steps}  time ${formatSeconds(result.seconds)}\nloss ${first?.toFixed(4)} → ${
      (tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length)).toFixed(4)
    } (mean of the last ${tail.length})\nmodel written to ${out}`,
  );
}

/** Per-layer routing figures of a model on token rows. */
export async function routingStats(
  model: QwenModel,
  samples: readonly number[][],
  onSample?: (i: number) => void,
): Promise<{ layer: number; biFraction: number; meanBiProb: number }[]> {
  const layers = model.config.numHiddenLayers, k = model.config.moe!.numExpertsPerTok;
  const bi = new Array(layers).fill(0), prob = new Array(layers).fill(0);
  let tokens = 0;
  const device = model.params.model.embed_tokens.weight.device;
  for (const [i, ids] of samples.entries()) {
    await scopeAsync(async () => {
      const x = tensor(Int32Array.from(ids), [1, ids.length], { dtype: "i32", device });
      const out = await decoderAsync(model.params, x, model.config, { logits: false });
      for (let l = 0; l < layers; l++) {
        const p = await out.router!.probs[l]!.data();
        const d = out.router!.decisions[l]!;
        for (let t = 0; t < ids.length; t++) {
          prob[l] += p[t * 2 + 1]!;
          for (let j = 0; j < k; j++) if (d[t * k + j] === 1) bi[l] += 1 / k;
        }
      }
    });
    tokens += ids.length;
    onSample?.(i);
  }
  return bi.map((b, l) => ({ layer: l, biFraction: b / tokens, meanBiProb: prob[l] / tokens }));
}

async function inspect(args: string[]) {
  const flags = parseFlags(inspectSpec, args);
  if (!flags.model) throw new UserError("--model DIR is required", 2);
  const ref = await resolveModel("ubmoe inspect", flags.model);
  const device = await openDevice(flags.backend);
  const { model, tokenizer } = await openModel(ref.dir, device);
  if (!model.config.moe) throw new UserError(`${flags.model}: not a mixture of experts`);
  const { rows } = await readRows(flags.data);
  const limit = intFlag("max-samples", flags["max-samples"]) || Infinity;
  const maxTokens = intFlag("max-tokens", flags["max-tokens"], 1);
  const samples = rows.slice(0, limit).map((r) =>
    rowIds(r, tokenizer, flags.data).slice(0, maxTokens)
  )
    .filter((ids) => ids.length > 0);
  const progress = new Progress("ubmoe inspect", samples.length, "samples");
  const stats = await routingStats(model, samples, (i) => progress.update(i + 1, 1));
  progress.done();
  console.log("layer  to bi expert  mean p(bi)");
  for (const s of stats) {
    console.log(
      `${String(s.layer).padStart(5)}  ${(100 * s.biFraction).toFixed(1).padStart(11)}%  ${
        s.meanBiProb.toFixed(4).padStart(10)
      }`,
    );
  }
  if (flags.json) {
    await Deno.writeTextFile(
      flags.json,
      JSON.stringify(
        {
          model: flags.model,
          ...(ref.repoId ? { model_dir: ref.dir } : {}),
          data: flags.data,
          samples: samples.length,
          layers: stats,
        },
        null,
        2,
      ) +
        "\n",
    );
  }
  if (flags.svg) {
    const ids = samples[intFlag("sample", flags.sample)];
    if (!ids) throw new UserError(`--sample ${flags.sample}: only ${samples.length} samples`, 2);
    const decisions = await scopeAsync(async () => {
      const x = tensor(Int32Array.from(ids), [1, ids.length], { dtype: "i32", device });
      const out = await decoderAsync(model.params, x, model.config, { logits: false });
      return out.router!.decisions;
    });
    const tokens = ids.map((id) => tokenText(tokenizer, id));
    await Deno.writeTextFile(
      flags.svg,
      routingSvg(tokens, decisions, model.config.moe.numExpertsPerTok, `${flags.model}`),
    );
    console.error(`ubmoe inspect: wrote ${flags.svg}`);
  }
}

function tokenText(tokenizer: QwenTokenizer | null, id: number): string {
  return tokenizer ? tokenizer.decode([id]) : String(id);
}

if (import.meta.main) {
  const [sub, ...rest] = Deno.args;
  const commands: Record<string, (args: string[]) => Promise<void>> = { build, train, inspect };
  if (sub === undefined || sub === "--help" || sub === "-h") {
    console.log(usage);
    Deno.exit(sub === undefined ? 2 : 0);
  }
  const run = commands[sub];
  if (!run) {
    console.error(`ubmoe: error: unknown subcommand '${sub}' (build, train or inspect)`);
    Deno.exit(2);
  }
  await runCommand(`ubmoe ${sub}`, () => run(rest));
}
