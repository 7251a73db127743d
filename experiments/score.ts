// `deno task score`: per-token log-probabilities, mean NLL per row, overall perplexity.
import { decoderAsync } from "../qwen/decoder.ts";
import { tensor } from "../tensor/create.ts";
import { crossEntropy } from "../tensor/ops/cross_entropy.ts";
import { reshape, slice } from "../tensor/ops/layout.ts";
import { scopeAsync } from "../tensor/scope.ts";
import { intFlag, parseFlags, runCommand, UserError, writeAtomic } from "./cli.ts";
import { readRows, rowIds } from "./data.ts";
import { checkIds, modelFlags, openDevice, openModel, resolveModel } from "./model.ts";
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
  const device = await openDevice(flags.backend);
  const { model, tokenizer } = await openModel(dir, device);
  const { rows, problems } = await readRows(flags.data);
  for (const p of problems) {
    if (flags.strict) throw new UserError(`${flags.data}: line ${p.line}: ${p.message}`);
    console.error(`score: skipped ${flags.data} line ${p.line}: ${p.message}`);
  }
  if (rows.length === 0) throw new UserError(`${flags.data}: no usable rows`);
  const limit = Math.min(
    intFlag("max-tokens", flags["max-tokens"]) || Infinity,
    model.config.maxPositionEmbeddings,
  );
  const picked = shardItems(rows, shard);
  const samples: ScoredRow[] = [];
  let truncated = 0;
  for (const { item: row } of picked) {
    let ids = rowIds(row, tokenizer, flags.data);
    checkIds(ids, model.config.vocabSize, `${flags.data}: line ${row.line}`);
    if (ids.length > limit) {
      ids = ids.slice(0, limit);
      truncated++;
    }
    if (ids.length < 2) {
      samples.push({ n_tokens: ids.length, nll_mean: NaN, logprobs: [] });
      continue;
    }
    const losses = await scopeAsync(async () => {
      const x = tensor(Int32Array.from(ids), [1, ids.length], { device });
      const { logits } = await decoderAsync(model.params, x, model.config);
      const v = model.config.vocabSize, n = ids.length - 1;
      const flat = reshape(slice(logits!, [0, 0, 0], [1, n, v]), [n, v]);
      const targets = tensor(Int32Array.from(ids.slice(1)), [n], { device });
      return Array.from(await crossEntropy(flat, targets).data());
    });
    const logprobs = losses.map((l) => -l);
    const nllMean = rowNll(logprobs) / logprobs.length;
    samples.push({ n_tokens: ids.length, nll_mean: nllMean, logprobs });
    console.log(
      `line ${String(row.line).padStart(5)}  tokens ${String(ids.length).padStart(6)}  nll ${
        nllMean.toFixed(4)
      }`,
    );
  }
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
