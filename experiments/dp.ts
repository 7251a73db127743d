// `deno task dp`: the paper's attention-dependence metric (DESIGN 3.4, caculate_dp.py) over a
// data set, per token-length bucket, in the layout of the paper's Table 3.
import { dpFromStats, type DpValues, type SampleDp } from "../nn/dp.ts";
import { parseMaskVariant } from "../nn/masks.ts";
import { loadQwen, openQwenCheckpoint, type QwenModel } from "../qwen/checkpoint.ts";
import { decoderAsync } from "../qwen/decoder.ts";
import { LayerStream, memoryNeeds, streamDp } from "../qwen/stream.ts";
import { tensor } from "../tensor/create.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { scopeAsync } from "../tensor/scope.ts";
import { intFlag, parseFlags, runCommand, UserError, writeAtomic } from "./cli.ts";
import { readRows } from "./data.ts";
import { tokenizeRows } from "./tokenize_rows.ts";
import {
  dpJsonText,
  dpReport,
  dpTable,
  type SampleResult,
  summarise,
  type Triple,
} from "./dp_summary.ts";
import { heatmapSvg } from "./heatmap.ts";
import {
  adapterFlag,
  applyAdapter,
  checkIds,
  modelFlags,
  openDevice,
  openTokenizer,
  readCheckedAdapter,
  resolveModel,
} from "./model.ts";
import {
  fmtBytes,
  maxMemoryFlag,
  memoryBudget,
  planMemory,
  streamFlag,
  streamingNotice,
} from "./memory_budget.ts";
import { Progress } from "./progress.ts";
import { inShard, parseShard, shardFlag } from "./shard.ts";

const root = new URL("../", import.meta.url).pathname;

/** One sample: its index among the data set's usable samples, its line, its token ids. */
interface Sample {
  index: number;
  line: number;
  ids: number[];
}
const defaultModel = `${root}models/brown-qwen2`;
const defaultData = `${root}data/prompts/dp_prompts.jsonl`;

const spec = {
  name: "dp",
  summary:
    `Attention dependence DP of a model on a data set (the paper's caculate_dp.py): while the model
runs its own mask, every layer's and head's softmax(q·kᵀ/√d) over ALL keys with NO mask is
averaged into A; DP-M = trace(A)/L, DP-B = Σ_{j<i} A[i,j]/L, DP-A = Σ_{j>i} A[i,j]/L, averaged
over samples, in percent.`,
  flags: {
    ...modelFlags,
    adapter: adapterFlag,
    data: {
      type: "string",
      metavar: "FILE",
      help: 'JSON array or JSONL rows: {"messages"}, {"text"} or {"input_ids"}',
    },
    "max-samples": { type: "number", default: 0, help: "use at most N rows (0 = all)" },
    "max-tokens": { type: "number", default: 2048, help: "truncate longer samples (counted)" },
    buckets: {
      type: "string",
      default: "0,256,512,1024,2048",
      metavar: "EDGES",
      help: "token-length bucket edges",
    },
    mask: {
      type: "string",
      default: "causal",
      metavar: "VARIANT",
      help: "causal, bidirectional, prefix(N), sliding(W)",
    },
    json: {
      type: "string",
      metavar: "OUT",
      help: "write the results as JSON (and a resumable cache OUT.samples.jsonl)",
    },
    heatmap: {
      type: "string",
      metavar: "OUT.svg",
      help: "draw one sample's mean unmasked attention (Figure 3)",
    },
    "heatmap-sample": {
      type: "number",
      default: 0,
      help: "which sample --heatmap draws (0 = first)",
    },
    "max-memory": maxMemoryFlag,
    stream: streamFlag,
    "per-layer": { type: "boolean", help: "also report DP per layer and per head" },
    resume: { type: "boolean", help: "continue from OUT.samples.jsonl after an interruption" },
    strict: { type: "boolean", help: "stop at the first malformed row instead of skipping it" },
    shard: shardFlag,
  },
  epilog: `Examples:
  deno task dp                                     # bundled model and prompts
  deno task dp --model ~/Qwen2.5-0.5B-Instruct --data chats.jsonl --json dp.json --resume

JSON output (--json): {"dp_main", "dp_before", "dp_after"} in percent, "samples", "buckets":
[{"range": [lo, hi], "count", "dp_main", "dp_before", "dp_after"}], and with --per-layer
"per_layer": [{"layer", "dp_main", "dp_before", "dp_after", "heads": [{…}]}]. With --shard I/N
(samples I, I+N, … counted after dropping malformed and empty rows) it adds "shard": {"index",
"count"} and "per_sample" (the cached samples), which deno task merge joins. See README.md.`,
} as const;

function parseBuckets(text: string): number[] {
  const edges = text.split(",").map((s) => Number(s.trim()));
  if (
    edges.length < 2 || edges.some((e) => !Number.isInteger(e) || e < 0) ||
    edges.some((e, i) => i > 0 && e <= edges[i - 1]!)
  ) {
    throw new UserError(
      `--buckets must be increasing non-negative integers like 0,256,512, got '${text}'`,
      2,
    );
  }
  return edges;
}

await runCommand("dp", async () => {
  const flags = parseFlags(spec, Deno.args);
  const edges = parseBuckets(flags.buckets);
  let variant;
  try {
    variant = parseMaskVariant(flags.mask);
  } catch (e) {
    throw new UserError(`--mask: ${(e as Error).message}`, 2);
  }
  const maxTokens = intFlag("max-tokens", flags["max-tokens"], 1);
  const maxSamples = intFlag("max-samples", flags["max-samples"]);
  if (flags.resume && !flags.json) {
    throw new UserError("--resume needs --json OUT (the cache lives next to it)", 2);
  }
  const shard = parseShard(flags.shard);
  if (shard && flags.heatmap) {
    throw new UserError(
      "--heatmap draws one sample of the whole data set; run it without --shard",
      2,
    );
  }
  const dataPath = flags.data ?? defaultData;
  if (!flags.model) {
    console.error(`dp: model: ${defaultModel} (the bundled default; see its README.md)`);
  }
  const modelRef = await resolveModel("dp", flags.model ?? defaultModel);
  const modelDir = modelRef.dir;
  if (!flags.data) console.error(`dp: data: ${dataPath} (the bundled prompt set)`);

  const budget = memoryBudget(flags["max-memory"]);
  const device = await openDevice(flags.backend);
  // headers first: the memory plan needs the shapes and the samples, not the weights
  const { config, checkpoint } = await openQwenCheckpoint(modelDir);
  const needs = memoryNeeds(config, checkpoint, "dp");
  checkpoint.close();
  console.error(
    `dp: ${config.numHiddenLayers} layers × ${config.numAttentionHeads} heads, mask ${variant.name}, backend ${device.name}`,
  );
  const { rows, problems } = await readRows(dataPath);
  for (const p of problems) {
    if (flags.strict) throw new UserError(`${dataPath}: line ${p.line}: ${p.message}`);
  }
  if (problems.length) {
    console.error(
      `dp: skipped ${problems.length} malformed rows (first: line ${problems[0]!.line}: ${
        problems[0]!.message
      })`,
    );
  }
  const limit = Math.min(maxTokens, config.maxPositionEmbeddings);
  let truncated = 0, empty = 0, usable = 0;
  // with --shard, this worker's samples: their index counts every usable sample of the data
  const samples: Sample[] = [];
  const used = maxSamples ? rows.slice(0, maxSamples) : rows;
  const rowTokens = await tokenizeRows(modelDir, used, dataPath);
  for (const [r, row] of used.entries()) {
    let ids = rowTokens[r]!;
    checkIds(ids, config.vocabSize, `${dataPath}: line ${row.line}`);
    if (ids.length === 0) {
      empty++;
      continue;
    }
    const index = usable++;
    if (!inShard(shard, index)) continue;
    if (ids.length > limit) {
      ids = ids.slice(0, limit);
      truncated++;
    }
    samples.push({ index, line: row.line, ids });
  }
  if (usable === 0) throw new UserError(`${dataPath}: no usable samples`);
  if (shard) {
    console.error(
      `dp: shard ${shard.index}/${shard.count}: ${samples.length} of ${usable} samples`,
    );
  }
  if (truncated) console.error(`dp: ${truncated} samples truncated to ${limit} tokens`);
  if (empty) console.error(`dp: ${empty} empty samples skipped`);

  const plan = planMemory(needs, samples.map((s) => s.ids.length), budget.bytes, flags.stream);
  const loadStart = performance.now();
  let model: QwenModel | null = null, stream: LayerStream | null = null;
  if (plan.stream) {
    if (flags.heatmap) {
      throw new UserError(
        `--heatmap needs the model in memory: ${
          fmtBytes(needs.weightBytes)
        } of weights exceed the memory budget ${fmtBytes(budget.bytes)}; raise --max-memory`,
      );
    }
    console.error(
      streamingNotice("dp", flags.stream, needs, budget, plan.chunks.length, "samples"),
    );
    const adapter = flags.adapter
      ? await readCheckedAdapter(flags.adapter, config, device)
      : undefined;
    stream = await LayerStream.open(modelDir, device, { adapter }).catch((e) => {
      throw adapter ? new UserError(`${flags.adapter}: ${(e as Error).message}`) : e;
    });
    if (flags.adapter) {
      console.error(`dp: adapter ${flags.adapter} merged into each layer as it is read`);
    }
  } else {
    const loaded = await loadQwen(modelDir, device, "dp");
    // the paper measures DP of the bidirectionally trained model: the adapter merged in
    model = flags.adapter ? await applyAdapter(loaded, flags.adapter, { consume: true }) : loaded;
    if (flags.adapter) console.error(`dp: adapter ${flags.adapter} merged into the model`);
  }
  let readSeconds = (performance.now() - loadStart) / 1000;

  // resumable cache: a header line (what this run computes), then one line per finished sample
  const cachePath = flags.json ? `${flags.json}.samples.jsonl` : null;
  const header = JSON.stringify({
    cache: "dp-samples/1",
    model: await Deno.realPath(modelDir),
    adapter: flags.adapter ? await Deno.realPath(flags.adapter) : null,
    data: await Deno.realPath(dataPath),
    mask: variant.name,
    max_tokens: limit,
    samples: samples.length,
    per_layer: flags["per-layer"] ?? false,
    ...(shard ? { shard } : {}),
  });
  const done = new Map<number, SampleResult>();
  if (cachePath && flags.resume) {
    const text = await Deno.readTextFile(cachePath).catch(() => null);
    if (text !== null) {
      const lines = text.split("\n").filter((l) => l.trim());
      if (lines[0] !== header) {
        throw new UserError(
          `${cachePath}: made by a different run (model, data or flags differ); drop --resume to start over`,
        );
      }
      for (const l of lines.slice(1)) {
        try {
          const r = JSON.parse(l) as SampleResult;
          done.set(r.index, r);
        } catch {
          // a line cut short by a crash: that sample is recomputed
        }
      }
      console.error(`dp: resuming: ${done.size} of ${samples.length} samples already done`);
    }
  }
  if (cachePath) {
    await writeAtomic(
      cachePath,
      [header, ...[...done.values()].map((r) => JSON.stringify(r))].join("\n") + "\n",
    );
  }

  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  Deno.addSignalListener("SIGINT", onSigint);
  const progress = new Progress("dp", samples.length, "tokens");
  const record = async (s: Sample, dp: SampleDp, counted = false) => {
    const result: SampleResult = {
      index: s.index,
      line: s.line,
      length: s.ids.length,
      dp_m: dp.values.dpM,
      dp_b: dp.values.dpB,
      dp_a: dp.values.dpA,
    };
    if (flags["per-layer"]) {
      result.heads = dp.perHead.map((l) => l.map((v: DpValues) => [v.dpM, v.dpB, v.dpA]));
    }
    done.set(s.index, result);
    if (cachePath) {
      await Deno.writeTextFile(cachePath, JSON.stringify(result) + "\n", { append: true });
    }
    progress.update(done.size, counted ? 0 : s.ids.length);
  };
  const forwardStart = performance.now();
  const todo = samples.filter((s) => !done.has(s.index));
  try {
    if (model) {
      for (const s of todo) {
        if (interrupted) break;
        const [dp] = await scopeAsync(async () => {
          const x = tensor(Int32Array.from(s.ids), [1, s.ids.length], { device });
          const out = await decoderAsync(model!.params, x, model!.config, {
            mask: variant,
            dp: "only",
            keepCache: false,
          });
          return await dpFromStats(out.dpStats!, [s.ids.length]);
        });
        await record(s, dp!);
      }
    } else {
      // layer-major: each chunk of samples goes through every layer read once
      // the samples left (after --resume) in chunks that fit the budget
      const chunks = planMemory(needs, todo.map((s) => s.ids.length), budget.bytes, true);
      const groups = chunks.stream ? chunks.chunks : [];
      for (const [c, group] of groups.entries()) {
        if (interrupted) break;
        const chunk = group.map((i) => todo[i]!);
        const chunkTokens = chunk.reduce((a, s) => a + s.ids.length, 0);
        const dps = await streamDp(stream!, chunk.map((s) => s.ids), {
          mask: variant,
          onLayer: (layer) =>
            progress.update(
              done.size + chunk.length * (layer + 1) / config.numHiddenLayers,
              chunkTokens / config.numHiddenLayers,
              `chunk ${c + 1}/${groups.length}, layer ${layer + 1}/${config.numHiddenLayers}`,
            ),
          stop: () => interrupted,
        });
        if (!dps) break;
        for (const [k, s] of chunk.entries()) await record(s, dps[k]!, true);
      }
      readSeconds = stream!.readSeconds;
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    progress.done();
    stream?.close();
  }
  const forwardSeconds = (performance.now() - forwardStart) / 1000;
  const tokens = todo.filter((s) => done.has(s.index)).reduce((a, s) => a + s.ids.length, 0);
  console.error(
    `dp: forward ${forwardSeconds.toFixed(2)} s for ${tokens} tokens (${
      (tokens / forwardSeconds).toFixed(1)
    } tokens/s), reading weights ${readSeconds.toFixed(2)} s${
      stream ? " (streamed, included in the forward)" : ""
    }`,
  );

  const results = [...done.values()].sort((a, b) => a.index - b.index);
  const summary = summarise(results, edges, flags["per-layer"] ?? false);
  console.log(dpTable(summary));
  if (interrupted) {
    console.error(
      `dp: interrupted after ${results.length} of ${samples.length} samples${
        cachePath ? "; rerun with --resume to continue" : ""
      }`,
    );
    Deno.exit(130);
  }
  if (flags["per-layer"] && summary.per_layer) {
    for (const l of summary.per_layer as (Triple & { layer: number })[]) {
      console.log(
        `layer ${String(l.layer).padStart(3)}  DP-M ${l.dp_main.toFixed(2)}  DP-B ${
          l.dp_before.toFixed(2)
        }  DP-A ${l.dp_after.toFixed(2)}`,
      );
    }
  }
  if (flags.json) {
    const report = dpReport({
      model: modelRef.arg,
      ...(modelRef.repoId ? { model_dir: modelDir } : {}),
      adapter: flags.adapter ?? null,
      data: dataPath,
      mask: variant.name,
      max_tokens: limit,
      truncated,
      skipped_rows: problems.length + empty,
    }, summary);
    if (shard) Object.assign(report, { shard, per_sample: results });
    await writeAtomic(flags.json, dpJsonText(report));
    console.error(`dp: wrote ${flags.json}`);
  }
  if (flags.heatmap && model) {
    const tokenizer = await openTokenizer(modelDir);
    const k = intFlag("heatmap-sample", flags["heatmap-sample"]);
    const s = samples[k];
    if (!s) throw new UserError(`--heatmap-sample ${k}: only ${samples.length} samples`, 2);
    const ids = s.ids.slice(0, 512);
    const a = await scopeAsync(async () => {
      const x = tensor(Int32Array.from(ids), [1, ids.length], { device });
      const out = await decoderAsync(model.params, x, model.config, {
        mask: variant,
        dp: "only",
        keepCache: false,
        dpMatrices: true,
      });
      const total = out.dpMatrices!.reduce((acc, m) => add(acc, m));
      return Array.from(await total.data(), (v) => v / out.dpMatrices!.length);
    });
    const r = done.get(s.index)!;
    const svg = heatmapSvg(a, ids.length, {
      title: `${
        modelRef.arg.split("/").filter(Boolean).pop()
      } — sample ${k} (line ${s.line}), mask ${variant.name}`,
      tokens: tokenizer ? ids.map((id) => tokenizer.decode([id])) : undefined,
      dp: ids.length === s.ids.length
        ? { dpM: r.dp_m * 100, dpB: r.dp_b * 100, dpA: r.dp_a * 100 }
        : undefined,
    });
    await writeAtomic(flags.heatmap, svg);
    console.error(
      `dp: wrote ${flags.heatmap}${ids.length < s.ids.length ? " (first 512 tokens)" : ""}`,
    );
  }
});
