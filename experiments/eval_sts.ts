// `deno task eval-sts`: semantic textual similarity as the paper evaluates its embedding
// models (Table 2): the prompt, the bidirectional forward, mean pooling, cosine similarity,
// and Spearman × 100 against the graded scores (Pearson × 100 in the JSON).
import { pearson, spearman } from "../nn/metrics.ts";
import { bidirectional, causal } from "../nn/masks.ts";
import { cleanSentence, cosine, embedTexts } from "../qwen/embed.ts";
import type { QwenModel } from "../qwen/checkpoint.ts";
import type { QwenTokenizer } from "../qwen/tokenizer.ts";
import type { Device } from "../tensor/device.ts";
import { intFlag, parseFlags, runCommand, UserError } from "./cli.ts";
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
    backend: modelFlags.backend,
  },
  epilog:
    `The default sets are offline proxies (data/sts/README.md), marked * in the table: held-out
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

/** Spearman and Pearson × 100 of one model on one set. */
export async function evaluateSet(
  model: QwenModel,
  tokenizer: QwenTokenizer,
  rows: readonly StsRow[],
  device: Device,
  options: { batch: number; maxTokens: number; mask: "bidirectional" | "causal"; clean: boolean },
): Promise<{ spearman: number; pearson: number }> {
  const prep = (s: string) => options.clean ? cleanSentence(s) : s;
  const unique = [...new Set(rows.flatMap((r) => [prep(r.sentence1), prep(r.sentence2)]))];
  const vectors = await embedTexts(model.params, model.config, tokenizer, unique, device, {
    batchSize: options.batch,
    maxTokens: options.maxTokens,
    mask: options.mask === "causal" ? causal : bidirectional,
  });
  const index = new Map(unique.map((s, i) => [s, vectors[i]!]));
  const sims = rows.map((r) =>
    cosine(index.get(prep(r.sentence1))!, index.get(prep(r.sentence2))!)
  );
  const gold = rows.map((r) => r.score);
  return { spearman: 100 * spearman(sims, gold), pearson: 100 * pearson(sims, gold) };
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

if (import.meta.main) {
  await runCommand("eval-sts", async () => {
    const flags = parseFlags(spec, Deno.args);
    if (flags.mask !== "bidirectional" && flags.mask !== "causal") {
      throw new UserError(`--mask must be bidirectional or causal, got '${flags.mask}'`, 2);
    }
    const options = {
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
    const { model: base, tokenizer } = await openModel(modelRef.dir, device);
    if (!tokenizer) {
      throw new UserError(`${modelRef.dir}: no tokenizer.json (needed for sentences)`);
    }
    const variants: { label: string; adapter: string | null }[] = [
      { label: "base", adapter: null },
      ...(flags.adapter ?? []).map((a) => ({ label: a, adapter: a })),
    ];
    const results: { label: string; adapter: string | null; sets: StsResult[] }[] = [];
    for (const v of variants) {
      const model = v.adapter ? await applyAdapter(base, v.adapter) : base;
      const figures: StsResult[] = [];
      for (const [set, rows] of sets) {
        const started = performance.now();
        const r = await evaluateSet(model, tokenizer, rows, device, options);
        figures.push({ set, rows: rows.length, ...r });
        console.error(
          `eval-sts: ${v.label} on ${set}: Spearman ${r.spearman.toFixed(2)}, Pearson ${
            r.pearson.toFixed(2)
          } (${rows.length} pairs, ${((performance.now() - started) / 1000).toFixed(1)} s)`,
        );
      }
      results.push({ ...v, sets: figures });
    }
    const isProxy = (s: string) => proxySets.some((p) => s.endsWith(p));
    console.log(stsTable(results, isProxy));
    if (flags.json) {
      const report = {
        model: flags.model,
        ...(modelRef.repoId ? { model_dir: modelRef.dir } : {}),
        mask: options.mask,
        clean: options.clean,
        metric: "Spearman and Pearson correlation × 100 of cosine similarity vs score",
        proxySets: [...sets.keys()].filter(isProxy),
        results,
      };
      await Deno.writeTextFile(flags.json, JSON.stringify(report, null, 2) + "\n");
    }
  });
}
