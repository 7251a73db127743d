// `deno task eval-sts`: semantic textual similarity as the paper evaluates its embedding
// models (Table 2): the prompt, the bidirectional forward, mean pooling, cosine similarity,
// and Spearman × 100 against the graded scores (Pearson × 100 in the JSON).
import { pearson, spearman } from "../nn/metrics.ts";
import { bidirectional, causal } from "../nn/masks.ts";
import { cleanSentence, cosine, embedTexts } from "../qwen/embed.ts";
import type { QwenModel } from "../qwen/checkpoint.ts";
import type { QwenTokenizer } from "../qwen/tokenizer.ts";
import type { Device } from "../tensor/device.ts";
import { intFlag, parseFlags, runCommand, UserError, writeAtomic } from "./cli.ts";
import {
  adapterFlag,
  applyAdapter,
  modelFlags,
  openDevice,
  openModel,
  resolveModel,
} from "./model.ts";
import { readStsRows, type StsRow } from "./pair_data.ts";
import { markdownTable, setLabel } from "./markdown_table.ts";
import { parseShard, shardFlag, shardItems } from "./shard.ts";

/** The proxy sets shipped in data/sts (see its README): not the real STS benchmarks. */
export const proxySets = ["data/sts/bible-graded.jsonl", "data/sts/wordnet-sim.jsonl"];

const spec = {
  name: "eval-sts",
  summary:
    "STS evaluation of sentence embeddings (the paper's Table 2): Spearman × 100 of cosine\n" +
    "similarity against graded scores, per set, then the average.",
  flags: {
    model: { ...modelFlags.model, default: "models/brown-qwen2" },
    adapter: {
      ...adapterFlag,
      multiple: true,
      help: adapterFlag.help + "; repeat for several rows (the base model is always a row)",
    },
    data: {
      type: "string",
      metavar: "FILE",
      multiple: true,
      default: proxySets.join(","),
      help: 'sets of {"sentence1", "sentence2", "score"} rows (JSONL or JSON array); repeatable',
    },
    mask: {
      type: "string",
      metavar: "NAME",
      default: "bidirectional",
      help: "attention mask of the embedding forward: bidirectional (the paper) or causal",
    },
    "no-clean": {
      type: "boolean",
      help: "skip the paper's clean-up (final '?' → '.', '.' added if no final punctuation)",
    },
    batch: { type: "number", default: 32, help: "sentences per forward pass" },
    "max-rows": { type: "number", default: 0, help: "use at most N rows per set (0 = all)" },
    "max-tokens": { type: "number", default: 1024, help: "truncate each prompt to N tokens" },
    json: { type: "string", metavar: "OUT", help: "write every figure as JSON to OUT" },
    shard: shardFlag,
    backend: modelFlags.backend,
  },
  epilog: `With --shard I/N only pairs I, I+N, … of each set (after --max-rows) are embedded and the
JSON adds "shard": {"index", "count"} and each set's per-pair "items" (row, cosine, score);
deno task merge recomputes Spearman and Pearson over all pairs.

The default sets are offline proxies (data/sts/README.md), marked * in the table: held-out
Bible verse pairs with graded relatedness and WordNet word pairs scored by Wu-Palmer
similarity. Real STS12-16 / STS-B / SICK-R files work when converted to the same rows.

Example:
  deno task eval-sts --adapter runs/embed-ffn --adapter runs/embed-att`,
} as const;

/** One model row's figures on one set. */
export interface StsResult {
  set: string;
  rows: number;
  spearman: number;
  pearson: number;
}

/** Options of an STS forward. */
export interface StsOptions {
  batch: number;
  maxTokens: number;
  mask: "bidirectional" | "causal";
  clean: boolean;
}

/** The cosine similarity of each pair's two embeddings, in row order. */
export async function pairCosines(
  model: QwenModel,
  tokenizer: QwenTokenizer,
  rows: readonly StsRow[],
  device: Device,
  options: StsOptions,
): Promise<number[]> {
  const prep = (s: string) => options.clean ? cleanSentence(s) : s;
  const unique = [...new Set(rows.flatMap((r) => [prep(r.sentence1), prep(r.sentence2)]))];
  const vectors = await embedTexts(model.params, model.config, tokenizer, unique, device, {
    batchSize: options.batch,
    maxTokens: options.maxTokens,
    mask: options.mask === "causal" ? causal : bidirectional,
  });
  const index = new Map(unique.map((s, i) => [s, vectors[i]!]));
  return rows.map((r) => cosine(index.get(prep(r.sentence1))!, index.get(prep(r.sentence2))!));
}

/** Spearman and Pearson × 100 of cosines against gold scores (eval-sts and merge share it). */
export function stsFigures(
  cosines: readonly number[],
  gold: readonly number[],
): { spearman: number; pearson: number } {
  return { spearman: 100 * spearman(cosines, gold), pearson: 100 * pearson(cosines, gold) };
}

/** Spearman and Pearson × 100 of one model on one set. */
export async function evaluateSet(
  model: QwenModel,
  tokenizer: QwenTokenizer,
  rows: readonly StsRow[],
  device: Device,
  options: StsOptions,
): Promise<{ spearman: number; pearson: number }> {
  const sims = await pairCosines(model, tokenizer, rows, device, options);
  return stsFigures(sims, rows.map((r) => r.score));
}

/** The table in the layout of the paper's Table 2: one row per model, one column per set, Avg. */
export function stsTable(
  results: { label: string; sets: StsResult[] }[],
  proxy: (set: string) => boolean,
): string {
  const sets = results[0]?.sets.map((s) => s.set) ?? [];
  const name = (s: string) => setLabel(s) + (proxy(s) ? "*" : "");
  const header = ["Model", ...sets.map(name), "Avg."];
  const body = results.map((r) => {
    const v = r.sets.map((s) => s.spearman);
    const avg = v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
    return [r.label, ...v.map((x) => x.toFixed(2)), avg.toFixed(2)];
  });
  const note = sets.some(proxy)
    ? "\n\n\\* proxy set generated offline (data/sts/README.md), not a real STS benchmark."
    : "";
  return markdownTable(header, body) + note;
}

/** The `format` of eval-sts's --json output. */
export const stsFormat = "ubmoe-deno eval-sts/1";

/** One model row's figures (with --shard, each set also lists its pairs' cosines and scores). */
export interface StsModelResult {
  label: string;
  adapter: string | null;
  sets: (StsResult & { items?: { row: number; cosine: number; score: number }[] })[];
}

/** Whether a set is one of the bundled proxies (starred in the table). */
export function isProxySet(set: string): boolean {
  return proxySets.some((p) => set.endsWith(p));
}

/** eval-sts's --json object (README "Bidirectional fine-tuning and STS"). */
export function stsReport(
  settings: {
    model: string;
    /** The snapshot directory a repo id resolved to. */
    modelDir?: string;
    options: Pick<StsOptions, "mask" | "clean" | "maxTokens">;
    maxRows: number;
    sets: readonly string[];
  },
  results: readonly StsModelResult[],
): Record<string, unknown> {
  return {
    format: stsFormat,
    model: settings.model,
    ...(settings.modelDir ? { model_dir: settings.modelDir } : {}),
    mask: settings.options.mask,
    clean: settings.options.clean,
    maxRows: settings.maxRows,
    maxTokens: settings.options.maxTokens,
    metric: "Spearman and Pearson correlation × 100 of cosine similarity vs score",
    proxySets: settings.sets.filter(isProxySet),
    results,
  };
}

/** The text of eval-sts's --json file. */
export function stsJsonText(report: Record<string, unknown>): string {
  return JSON.stringify(report, null, 2) + "\n";
}

if (import.meta.main) {
  await runCommand("eval-sts", async () => {
    const flags = parseFlags(spec, Deno.args);
    const shard = parseShard(flags.shard);
    if (flags.mask !== "bidirectional" && flags.mask !== "causal") {
      throw new UserError(`--mask must be bidirectional or causal, got '${flags.mask}'`, 2);
    }
    const options: StsOptions = {
      batch: intFlag("batch", flags.batch, 1),
      maxTokens: intFlag("max-tokens", flags["max-tokens"], 8),
      mask: flags.mask as "bidirectional" | "causal",
      clean: !(flags["no-clean"] ?? false),
    };
    const sets = new Map<string, StsRow[]>();
    const maxRows = intFlag("max-rows", flags["max-rows"]) || Infinity;
    for (const path of flags.data) sets.set(path, (await readStsRows(path)).slice(0, maxRows));
    const modelRef = await resolveModel("eval-sts", flags.model);
    const device = await openDevice(flags.backend);
    const { model: base, tokenizer } = await openModel(modelRef.dir, device, "hidden");
    if (!tokenizer) {
      throw new UserError(`${modelRef.dir}: no tokenizer.json (needed for sentences)`);
    }
    const variants: { label: string; adapter: string | null }[] = [
      { label: "base", adapter: null },
      ...(flags.adapter ?? []).map((a) => ({ label: a, adapter: a })),
    ];
    const results: StsModelResult[] = [];
    for (const v of variants) {
      const model = v.adapter ? await applyAdapter(base, v.adapter) : base;
      const figures: StsModelResult["sets"] = [];
      for (const [set, rows] of sets) {
        const started = performance.now();
        const picked = shardItems(rows, shard).map((p) => ({ row: p.index, ...p.item }));
        const cosines = await pairCosines(model, tokenizer, picked, device, options);
        const r = stsFigures(cosines, picked.map((p) => p.score));
        const items = picked.map((p, k) => ({ row: p.row, cosine: cosines[k]!, score: p.score }));
        figures.push({ set, rows: picked.length, ...r, ...(shard ? { items } : {}) });
        console.error(
          `eval-sts: ${v.label} on ${set}: Spearman ${r.spearman.toFixed(2)}, Pearson ${
            r.pearson.toFixed(2)
          } (${picked.length} pairs, ${((performance.now() - started) / 1000).toFixed(1)} s)`,
        );
      }
      results.push({ ...v, sets: figures });
    }
    console.log(stsTable(results, isProxySet));
    if (flags.json) {
      const settings = {
        model: flags.model,
        ...(modelRef.repoId ? { modelDir: modelRef.dir } : {}),
        options,
        maxRows: flags["max-rows"],
        sets: [...sets.keys()],
      };
      const report = stsReport(settings, results);
      if (shard) report.shard = shard;
      await writeAtomic(flags.json, stsJsonText(report));
    }
  });
}
