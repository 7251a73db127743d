// `deno task eval-mc`: multiple-choice evaluation as lm-evaluation-harness does it (the
// paper's Table 4): the log-likelihood of each choice as a continuation of the context;
// acc = argmax of the sum, acc_norm = argmax of the sum divided by the choice's length in
// characters, and TruthfulQA-MC2's normalised probability mass of the true answers.
import { choiceLength, mc2, mcAccuracy, mcAccuracyNorm } from "../nn/metrics.ts";
import type { QwenModel } from "../qwen/checkpoint.ts";
import { decoderAsync } from "../qwen/decoder.ts";
import type { QwenTokenizer } from "../qwen/tokenizer.ts";
import { tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { crossEntropy } from "../tensor/ops/cross_entropy.ts";
import { reshape } from "../tensor/ops/layout.ts";
import { scopeAsync } from "../tensor/scope.ts";
import { intFlag, parseFlags, runCommand, UserError, writeAtomic } from "./cli.ts";
import { modelFlags, openDevice, openModel, resolveModel } from "./model.ts";
import { Progress } from "./progress.ts";
import { readJsonItems } from "./pair_data.ts";
import { markdownTable, setLabel } from "./markdown_table.ts";
import { parseShard, shardFlag, shardItems } from "./shard.ts";

/** The generated stand-in task files in data/mc (see its README): not the real benchmarks. */
export const generatedTasks = [
  "data/mc/wordnet-define.jsonl",
  "data/mc/bible-modern.jsonl",
  "data/mc/quiz.jsonl",
  "data/mc/brown-next.jsonl",
  "data/mc/quiz-mc2.jsonl",
];

/** One multiple-choice row: a single label (acc) or 0/1 labels (MC2). */
export interface McRow {
  context: string;
  choices: string[];
  label?: number;
  labels?: number[];
  line: number;
}

/** Read MC rows (JSONL or JSON array); malformed rows are fatal, with their line. */
export async function readMcRows(path: string): Promise<McRow[]> {
  const items = await readJsonItems(path);
  return items.map(({ value, line, where }) => {
    const v = value as Record<string, unknown>;
    if (v === null || typeof v !== "object") throw new UserError(`${where}: row is not an object`);
    if (typeof v.context !== "string") throw new UserError(`${where}: 'context' must be a string`);
    const choices = v.choices;
    if (!Array.isArray(choices) || choices.length === 0) {
      throw new UserError(`${where}: 'choices' must be a non-empty list`);
    }
    if (!choices.every((c) => typeof c === "string" && c !== "")) {
      throw new UserError(`${where}: every choice must be a non-empty string`);
    }
    const row: McRow = { context: v.context, choices: choices as string[], line };
    if (Array.isArray(v.labels)) {
      const labels = v.labels;
      if (labels.length !== choices.length || !labels.every((x) => x === 0 || x === 1)) {
        throw new UserError(`${where}: 'labels' must be 0/1, one per choice`);
      }
      if (!labels.includes(1) || !labels.includes(0)) {
        throw new UserError(`${where}: 'labels' needs at least one 1 and one 0`);
      }
      row.labels = labels as number[];
    } else {
      const label = v.label;
      if (typeof label !== "number" || !Number.isInteger(label)) {
        throw new UserError(`${where}: 'label' must be an integer (or give 'labels')`);
      }
      if (label < 0 || label >= choices.length) {
        throw new UserError(
          `${where}: label ${label} is out of range for ${choices.length} choices`,
        );
      }
      row.label = label;
    }
    return row;
  });
}

/**
 * The harness's token split of a (context, continuation) pair: trailing spaces of the context
 * move to the continuation; the continuation's tokens are those of context + continuation
 * after the context's own tokens. An empty context becomes the prefix token (the harness's
 * BOS, or EOS `<|endoftext|>` for Qwen, which has no BOS), so the first token is scored too.
 */
export function encodePair(
  tokenizer: QwenTokenizer,
  context: string,
  continuation: string,
  prefixTokenId?: number,
): { context: number[]; continuation: number[] } {
  const prefix = context === "" ? prefixTokenId ?? tokenizer.tokenId("<|endoftext|>") : undefined;
  if (prefix !== undefined) {
    return { context: [prefix], continuation: tokenizer.encode(continuation) };
  }
  const spaces = context.length - context.trimEnd().length;
  if (spaces > 0) {
    continuation = context.slice(context.length - spaces) + continuation;
    context = context.slice(0, context.length - spaces);
  }
  const whole = tokenizer.encode(context + continuation);
  const ctx = tokenizer.encode(context);
  return { context: ctx, continuation: whole.slice(ctx.length) };
}

/** Log-likelihood of each choice of a row given its context (one batched forward). */
export async function choiceLoglikelihoods(
  model: QwenModel,
  tokenizer: QwenTokenizer,
  row: McRow,
  device: Device,
  maxTokens: number,
): Promise<number[]> {
  const seqs = row.choices.map((c) => {
    const { context, continuation } = encodePair(tokenizer, row.context, c);
    // the harness cuts from the left when too long; the model reads all but the last token
    const all = [...context, ...continuation].slice(-(maxTokens + 1));
    return { all, n: Math.min(continuation.length, all.length - 1) };
  });
  const b = seqs.length, t = Math.max(...seqs.map((s) => s.all.length - 1));
  const ids = new Int32Array(b * t), mask = new Int32Array(b * t);
  const targets = new Int32Array(b * t).fill(ignored);
  seqs.forEach(({ all, n }, i) => {
    const len = all.length - 1;
    ids.set(all.slice(0, len), i * t);
    mask.fill(1, i * t, i * t + len);
    // position p predicts token p+1: the continuation is the last n of them
    for (let p = len - n; p < len; p++) targets[i * t + p] = all[p + 1]!;
  });
  const losses = await scopeAsync(async () => {
    const x = tensor(ids, [b, t], { dtype: "i32", device });
    const m = tensor(mask, [b, t], { dtype: "i32", device });
    const { logits } = await decoderAsync(model.params, x, model.config, { attentionMask: m });
    const v = model.config.vocabSize;
    const y = tensor(targets, [b * t], { dtype: "i32", device });
    return await crossEntropy(reshape(logits!, [b * t, v]), y, ignored).data();
  });
  return seqs.map((_, i) => {
    let ll = 0;
    for (let p = 0; p < t; p++) if (targets[i * t + p] !== ignored) ll -= losses[i * t + p]!;
    return ll;
  });
}

const ignored = -100;

/** Figures of one model on one task file. */
export interface McResult {
  task: string;
  rows: number;
  /** "acc" rows: accuracy and length-normalised accuracy (percent). */
  acc?: number;
  accNorm?: number;
  /** "labels" rows: TruthfulQA-MC2 (percent). */
  mc2?: number;
}

/** One row's figures: acc and accNorm (0 or 1) for a label row, mc2 (0–1) for a labels row. */
export type McRowFigures = { acc: number; accNorm: number } | { mc2: number };

/** The figures of each row of a task, in order. */
export async function evaluateRows(
  model: QwenModel,
  tokenizer: QwenTokenizer,
  rows: readonly McRow[],
  device: Device,
  maxTokens: number,
  onRow?: () => void,
): Promise<McRowFigures[]> {
  const figures: McRowFigures[] = [];
  for (const row of rows) {
    const ll = await choiceLoglikelihoods(model, tokenizer, row, device, maxTokens);
    figures.push(
      row.labels ? { mc2: mc2(ll, row.labels) } : {
        acc: mcAccuracy(ll, row.label!),
        accNorm: mcAccuracyNorm(ll, row.choices.map(choiceLength), row.label!),
      },
    );
    onRow?.();
  }
  return figures;
}

/**
 * A task's figures from its rows' figures (summed in row order, so eval-mc and a merge of
 * its shards agree to the last digit).
 */
export function taskResult(task: string, figures: readonly McRowFigures[]): McResult {
  let acc = 0, accNorm = 0, mc2Sum = 0, single = 0, multi = 0;
  for (const f of figures) {
    if ("mc2" in f) {
      mc2Sum += f.mc2;
      multi++;
    } else {
      acc += f.acc;
      accNorm += f.accNorm;
      single++;
    }
  }
  const r: McResult = { task, rows: figures.length };
  if (single) {
    r.acc = (100 * acc) / single;
    r.accNorm = (100 * accNorm) / single;
  }
  if (multi) r.mc2 = (100 * mc2Sum) / multi;
  return r;
}

/** Evaluate one model on one task's rows. */
export async function evaluateTask(
  model: QwenModel,
  tokenizer: QwenTokenizer,
  task: string,
  rows: readonly McRow[],
  device: Device,
  maxTokens: number,
  onRow?: () => void,
): Promise<McResult> {
  return taskResult(task, await evaluateRows(model, tokenizer, rows, device, maxTokens, onRow));
}

/** The headline figure of a task: acc, or MC2 for a labels task. */
function headline(r: McResult): number {
  return r.acc ?? r.mc2 ?? NaN;
}

/** A table in the layout of the paper's Table 4: one row per model, one column per task, Average. */
export function mcTable(
  results: { label: string; tasks: McResult[] }[],
  generated: (task: string) => boolean,
): string {
  const tasks = results[0]?.tasks ?? [];
  const name = (r: McResult) =>
    setLabel(r.task) +
    (r.mc2 !== undefined && r.acc === undefined ? " (mc2)" : "") +
    (generated(r.task) ? "*" : "");
  const header = ["Model", ...tasks.map(name), "Average"];
  const body = results.map((m) => {
    const v = m.tasks.map(headline);
    return [
      m.label,
      ...v.map((x) => x.toFixed(2)),
      (v.reduce((a, b) => a + b, 0) / v.length).toFixed(2),
    ];
  });
  const note = tasks.some((t) => generated(t.task))
    ? "\n\n\\* generated stand-in task (data/mc/README.md), not MMLU / Winogrande / TruthfulQA. acc in percent; (mc2) = TruthfulQA-MC2 score."
    : "";
  return markdownTable(header, body) + note;
}

/** The `format` of eval-mc's --json output. */
export const mcFormat = "ubmoe-deno eval-mc/1";

/** One model's figures, one entry per task (with --shard, each also lists its rows' figures). */
export interface McModelResult {
  label: string;
  tasks: (McResult & { items?: ({ row: number } & McRowFigures)[] })[];
}

/** eval-mc's --json object (README "UBMoE"). */
export function mcReport(
  settings: { maxRows: number; maxTokens: number; tasks: readonly string[] },
  results: readonly McModelResult[],
): Record<string, unknown> {
  return {
    format: mcFormat,
    metric: "acc and acc_norm (percent) as lm-evaluation-harness; mc2 for multi-label rows",
    maxRows: settings.maxRows,
    maxTokens: settings.maxTokens,
    generatedTasks: settings.tasks.filter(isGeneratedTask),
    results,
  };
}

/** The text of eval-mc's --json file. */
export function mcJsonText(report: Record<string, unknown>): string {
  return JSON.stringify(report, null, 2) + "\n";
}

/** Whether a task file is one of the generated stand-ins (starred in the table). */
export function isGeneratedTask(task: string): boolean {
  return generatedTasks.some((g) => task.endsWith(g));
}

const spec = {
  name: "eval-mc",
  summary:
    "Multiple-choice evaluation as lm-evaluation-harness (the paper's Table 4): log-likelihood\n" +
    "of each choice given the context; acc, acc_norm (per character), MC2 for multi-label rows.",
  flags: {
    model: {
      ...modelFlags.model,
      multiple: true,
      default: "models/brown-qwen2",
      help: "model directory or cached repo id; repeat to compare (e.g. the base and its UBMoE)",
    },
    data: {
      type: "string",
      metavar: "FILE",
      multiple: true,
      default: generatedTasks.join(","),
      help:
        'task files of {"context", "choices", "label"} or {…, "labels": [0/1…]} rows; repeatable',
    },
    "max-rows": { type: "number", default: 0, help: "use at most N rows per task (0 = all)" },
    "max-tokens": {
      type: "number",
      default: 1024,
      help: "truncate context + choice from the left",
    },
    json: { type: "string", metavar: "OUT", help: "write every figure as JSON to OUT" },
    shard: shardFlag,
    backend: modelFlags.backend,
  },
  epilog: `With --shard I/N only rows I, I+N, … of each task (after --max-rows) are evaluated and
the JSON adds "shard": {"index", "count"} and each task's per-row "items"; deno task merge
joins the shards into the single run's JSON.

The default task files are generated stand-ins (data/mc/README.md), marked * in the
table. Real MMLU / TruthfulQA-MC2 files work when converted to the same rows; Winogrande
(whose harness task scores one continuation after per-option contexts) fits only as
whole-sentence choices with an empty context, an approximation of the harness's figure.

Example:
  deno task eval-mc --model models/brown-qwen2 --model runs/ubmoe-trained`,
} as const;

if (import.meta.main) {
  await runCommand("eval-mc", async () => {
    const flags = parseFlags(spec, Deno.args);
    const shard = parseShard(flags.shard);
    const maxRows = intFlag("max-rows", flags["max-rows"]) || Infinity;
    const maxTokens = intFlag("max-tokens", flags["max-tokens"], 2);
    const tasks = new Map<string, McRow[]>();
    for (const path of flags.data) tasks.set(path, (await readMcRows(path)).slice(0, maxRows));
    const refs = [];
    for (const arg of flags.model) refs.push(await resolveModel("eval-mc", arg));
    const device = await openDevice(flags.backend);
    const results: McModelResult[] = [];
    for (const { arg: label, dir } of refs) {
      const { model, tokenizer } = await openModel(dir, device);
      if (!tokenizer) throw new UserError(`${dir}: no tokenizer.json (needed for text rows)`);
      const figures: McModelResult["tasks"] = [];
      for (const [task, rows] of tasks) {
        const picked = shardItems(rows, shard);
        const progress = new Progress(`eval-mc ${label} ${task}`, picked.length, "rows");
        let done = 0;
        const perRow = await evaluateRows(
          model,
          tokenizer,
          picked.map((p) => p.item),
          device,
          maxTokens,
          () => progress.update(++done, 1),
        );
        progress.done();
        const result = taskResult(task, perRow);
        figures.push(
          shard
            ? { ...result, items: perRow.map((f, k) => ({ row: picked[k]!.index, ...f })) }
            : result,
        );
      }
      results.push({ label, tasks: figures });
    }
    console.log(mcTable(results, isGeneratedTask));
    if (flags.json) {
      const settings = { maxRows: flags["max-rows"], maxTokens, tasks: [...tasks.keys()] };
      const report = mcReport(settings, results);
      if (shard) report.shard = shard;
      await writeAtomic(flags.json, mcJsonText(report));
    }
  });
}
