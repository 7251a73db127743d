// `deno task score`: per-token log-probabilities, mean NLL per row, overall perplexity.
import { causal } from "../nn/masks.ts";
import { loadQwen, openQwenCheckpoint } from "../qwen/checkpoint.ts";
import { decoderAsync, lmHeadWeight } from "../qwen/decoder.ts";
import { nextTokenLosses } from "../qwen/score.ts";
import { LayerStream, memoryNeeds, streamLogProbs } from "../qwen/stream.ts";
import { tensor } from "../tensor/create.ts";
import { scopeAsync } from "../tensor/scope.ts";
import { intFlag, parseFlags, runCommand, UserError, writeAtomic } from "./cli.ts";
import { readRows } from "./data.ts";
import {
  maxMemoryFlag,
  memoryBudget,
  planMemory,
  streamFlag,
  streamingNotice,
} from "./memory_budget.ts";
import { checkIds, modelFlags, openDevice, resolveModel } from "./model.ts";
import { tokenizeRows } from "./tokenize_rows.ts";
import {
  rowNll,
  type ScoredRow,
  scoreJsonText,
  scoreReport,
  scoreTotals,
} from "./score_summary.ts";
import { parseShard, shardFlag, shardItems } from "./shard.ts";

const spec = {
  name: "score",
  summary:
    "Score every row of a data file: log p(token t+1 | tokens ≤ t), mean NLL, and perplexity.",
  flags: {
    ...modelFlags,
    data: {
      type: "string",
      metavar: "FILE",
      help: 'JSON array or JSONL of {"text"}, {"messages"} or {"input_ids"} rows',
    },
    json: {
      type: "string",
      metavar: "OUT",
      help:
        "write {format, model, data, max_tokens, samples: [{n_tokens, nll_mean, logprobs}], perplexity}",
    },
    "max-tokens": {
      type: "number",
      default: 0,
      help: "truncate rows to this many tokens (0 = the model's maximum)",
    },
    strict: { type: "boolean", help: "stop at the first malformed row instead of skipping it" },
    shard: shardFlag,
    "max-memory": maxMemoryFlag,
    stream: streamFlag,
  },
  epilog: `Output JSON: logprobs[t] = log p(token t+1 | tokens ≤ t); nll_mean = −mean(logprobs);
perplexity = exp(Σ NLL / Σ scored tokens) over all rows, summed in row order. With --shard I/N
(rows I, I+N, … of the well-formed rows) it adds "shard": {"index", "count"} and each sample's
"row"; deno task merge joins the shards.`,
} as const;

await runCommand("score", async () => {
  const flags = parseFlags(spec, Deno.args);
  const shard = parseShard(flags.shard);
  if (!flags.model) throw new UserError("--model DIR is required (see --help)", 2);
  if (!flags.data) throw new UserError("--data FILE is required (see --help)", 2);
  const { dir, repoId } = await resolveModel("score", flags.model);
  const budget = memoryBudget(flags["max-memory"]);
  const device = await openDevice(flags.backend);
  // headers first: the memory plan needs the shapes and the rows, not the weights
  const { config, checkpoint } = await openQwenCheckpoint(dir);
  const needs = memoryNeeds(config, checkpoint, "all");
  checkpoint.close();
  const { rows, problems } = await readRows(flags.data);
  for (const p of problems) {
    if (flags.strict) throw new UserError(`${flags.data}: line ${p.line}: ${p.message}`);
    console.error(`score: skipped ${flags.data} line ${p.line}: ${p.message}`);
  }
  if (rows.length === 0) throw new UserError(`${flags.data}: no usable rows`);
  const limit = Math.min(
    intFlag("max-tokens", flags["max-tokens"]) || Infinity,
    config.maxPositionEmbeddings,
  );
  const picked = shardItems(rows, shard);
  const rowTokens = await tokenizeRows(dir, picked.map((p) => p.item), flags.data);
  let truncated = 0;
  const inputs = picked.map(({ item: row }, k) => {
    let ids = rowTokens[k]!;
    checkIds(ids, config.vocabSize, `${flags.data}: line ${row.line}`);
    if (ids.length > limit) {
      ids = ids.slice(0, limit);
      truncated++;
    }
    return { line: row.line, ids };
  });
  const scored = inputs.filter((r) => r.ids.length >= 2);
  const plan = planMemory(needs, scored.map((r) => r.ids.length), budget.bytes, flags.stream);
  const logprobs = new Map<number, number[]>();
  if (plan.stream) {
    console.error(
      streamingNotice("score", flags.stream, needs, budget, plan.chunks.length, "rows"),
    );
    const stream = await LayerStream.open(dir, device, { use: "all" });
    try {
      for (const [c, group] of plan.chunks.entries()) {
        const chunk = group.map((i) => scored[i]!);
        const out = await streamLogProbs(stream, chunk.map((r) => r.ids), {
          mask: causal,
          onLayer: (layer) =>
            console.error(
              `score: chunk ${c + 1}/${plan.chunks.length}, layer ${
                layer + 1
              }/${config.numHiddenLayers}`,
            ),
        });
        chunk.forEach((r, k) => logprobs.set(inputs.indexOf(r), out![k]!));
      }
    } finally {
      stream.close();
    }
  } else {
    const model = await loadQwen(dir, device, "all");
    for (const r of scored) {
      const losses = await scopeAsync(async () => {
        const x = tensor(Int32Array.from(r.ids), [1, r.ids.length], { device });
        const out = await decoderAsync(model.params, x, model.config, {
          keepCache: false,
          logits: false,
        });
        const head = lmHeadWeight(model.params, model.config);
        return Array.from(await nextTokenLosses(out.lastHiddenState, head, r.ids).data());
      });
      logprobs.set(inputs.indexOf(r), losses.map((l) => -l));
    }
  }
  const samples: ScoredRow[] = inputs.map((r, k) => {
    const lp = logprobs.get(k);
    if (!lp) return { n_tokens: r.ids.length, nll_mean: NaN, logprobs: [] };
    const nllMean = rowNll(lp) / lp.length;
    console.log(
      `line ${String(r.line).padStart(5)}  tokens ${String(r.ids.length).padStart(6)}  nll ${
        nllMean.toFixed(4)
      }`,
    );
    return { n_tokens: r.ids.length, nll_mean: nllMean, logprobs: lp };
  });
  console.log(scoreTotals(samples));
  if (truncated) console.error(`score: ${truncated} rows truncated to ${limit} tokens`);
  if (flags.json) {
    const run = {
      model: flags.model,
      ...(repoId ? { model_dir: dir } : {}),
      data: flags.data,
      max_tokens: limit,
    };
    const report = shard
      ? {
        ...scoreReport(run, samples.map((s, k) => ({ row: picked[k]!.index, ...s }))),
        shard,
      }
      : scoreReport(run, samples);
    await writeAtomic(flags.json, scoreJsonText(report));
  }
});
