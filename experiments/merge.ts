// `deno task merge OUT SHARD.json…`: the --json outputs of a sharded dp, score, eval-mc or
// eval-sts run (`--shard I/N`, experiments/shard.ts) joined into the JSON the single run
// writes. Each shard carries its units' values (dp's per_sample, score's samples, eval-mc's and
// eval-sts's per-row items); the summaries are recomputed over all units in data-set order by
// the functions the commands themselves use, so the merged file equals the single run's.
import { readTextFile } from "../qwen/files.ts";
import { type CommandSpec, parseCommandLine, runCommand, UserError, writeAtomic } from "./cli.ts";
import {
  bucketEdges,
  dpFormat,
  dpJsonText,
  dpReport,
  dpTable,
  type SampleResult,
  summarise,
} from "./dp_summary.ts";
import {
  isGeneratedTask,
  mcFormat,
  mcJsonText,
  type McModelResult,
  mcReport,
  type McRowFigures,
  mcTable,
  taskResult,
} from "./eval_mc.ts";
import {
  isProxySet,
  stsFigures,
  stsFormat,
  stsJsonText,
  type StsModelResult,
  stsReport,
  stsTable,
} from "./eval_sts.ts";
import {
  type ScoredRow,
  scoreFormat,
  scoreJsonText,
  scoreReport,
  scoreTotals,
} from "./score_summary.ts";
import { type Shard, unshard } from "./shard.ts";

const spec = {
  name: "merge",
  summary:
    "Join the --json outputs of a sharded run (dp, score, eval-mc or eval-sts with --shard I/N)\n" +
    "into OUT, the JSON the same command writes without --shard.",
  flags: {},
  positionals: { metavar: "OUT SHARD.json…", min: 2 },
  epilog: `Every shard 0/N … N-1/N must be given once, all from one command with the same model,
data and flags; otherwise nothing is written. The command is read from each file's "format".

Example (8 workers of a Slurm array or a Kubernetes Indexed Job, then one merge):
  deno task dp --shard 3/8 --json out/dp.3.json      # on worker 3
  deno task merge out/dp.json out/dp.[0-7].json`,
} satisfies CommandSpec<Record<never, never>>;

/** One shard's JSON, as read. */
interface ShardFile {
  path: string;
  json: Record<string, any>;
  shard: Shard;
}

/** How the shards of one command are checked and joined. */
interface Merger {
  command: string;
  /** What every shard of one run must agree on, by a name the error message shows. */
  settings(json: Record<string, any>): Record<string, unknown>;
  /** The single run's JSON text and stdout table, from the shards in shard order. */
  merge(shards: readonly ShardFile[]): { text: string; table: string };
}

/** A shard's list of units, or an error naming its file. */
function units<T>(file: ShardFile, value: unknown, what: string, command: string): T[] {
  if (!Array.isArray(value)) {
    throw new UserError(`${file.path}: no ${what}: not a complete ${command} shard output`);
  }
  return value as T[];
}

const dp: Merger = {
  command: "dp",
  settings: (j) => ({
    model: j.model,
    adapter: j.adapter,
    data: j.data,
    mask: j.mask,
    "max tokens": j.max_tokens,
    "skipped rows (malformed or empty)": j.skipped_rows,
    "bucket edges": bucketEdges(j.buckets),
  }),
  merge(shards) {
    const parts = shards.map((f) => ({
      path: f.path,
      items: units<SampleResult>(f, f.json.per_sample, "per_sample", "dp"),
    }));
    // --per-layer: every sample carries its heads, or none does
    const layered = parts.filter((p) => p.items.length).map((p) => ({
      path: p.path,
      heads: p.items.every((r) => r.heads),
    }));
    const other = layered.find((p) => p.heads !== layered[0]!.heads);
    if (other) {
      throw new UserError(
        `${
          layered[0]!.path
        } and ${other.path} differ in --per-layer: the shards of one run need the same model, data and flags`,
      );
    }
    const results = unshard(parts, (r) => r.index, "per_sample");
    const first = shards[0]!.json;
    const summary = summarise(results, bucketEdges(first.buckets), layered[0]?.heads ?? false);
    const report = dpReport({
      model: first.model,
      ...(first.model_dir ? { model_dir: first.model_dir } : {}),
      adapter: first.adapter,
      data: first.data,
      mask: first.mask,
      max_tokens: first.max_tokens,
      truncated: shards.reduce((a, f) => a + f.json.truncated, 0),
      skipped_rows: first.skipped_rows,
    }, summary);
    return { text: dpJsonText(report), table: dpTable(summary) };
  },
};

const score: Merger = {
  command: "score",
  settings: (j) => ({ model: j.model, data: j.data, "max tokens": j.max_tokens }),
  merge(shards) {
    type Row = ScoredRow & { row: number };
    const parts = shards.map((f) => ({
      path: f.path,
      items: units<Row>(f, f.json.samples, "samples", "score"),
    }));
    const rows = unshard(parts, (r) => r.row, "samples").map(({ row: _, ...r }) => r);
    const { model, model_dir, data, max_tokens } = shards[0]!.json;
    return {
      text: scoreJsonText(
        scoreReport({ model, ...(model_dir ? { model_dir } : {}), data, max_tokens }, rows),
      ),
      table: scoreTotals(rows),
    };
  },
};

const evalMc: Merger = {
  command: "eval-mc",
  settings: (j) => ({
    metric: j.metric,
    "max rows": j.maxRows,
    "max tokens": j.maxTokens,
    "models and tasks": (j.results as McModelResult[]).map((m) => [
      m.label,
      m.tasks.map((t) => t.task),
    ]),
  }),
  merge(shards) {
    const first = shards[0]!.json.results as McModelResult[];
    const results: McModelResult[] = first.map((m, i) => ({
      label: m.label,
      tasks: m.tasks.map(({ task }, t) => {
        const parts = shards.map((f) => ({
          path: f.path,
          items: units<{ row: number } & McRowFigures>(
            f,
            f.json.results[i].tasks[t].items,
            `items of ${m.label} on ${task}`,
            "eval-mc",
          ),
        }));
        const rows = unshard(parts, (r) => r.row, `${m.label} on ${task}`);
        return taskResult(task, rows.map(({ row: _, ...f }) => f as McRowFigures));
      }),
    }));
    const j = shards[0]!.json;
    const tasks = first[0]?.tasks.map((t) => t.task) ?? [];
    const report = mcReport({ maxRows: j.maxRows, maxTokens: j.maxTokens, tasks }, results);
    return { text: mcJsonText(report), table: mcTable(results, isGeneratedTask) };
  },
};

const evalSts: Merger = {
  command: "eval-sts",
  settings: (j) => ({
    model: j.model,
    mask: j.mask,
    clean: j.clean,
    "max rows": j.maxRows,
    "max tokens": j.maxTokens,
    metric: j.metric,
    "adapters and sets": (j.results as StsModelResult[]).map((m) => [
      m.label,
      m.adapter,
      m.sets.map((s) => s.set),
    ]),
  }),
  merge(shards) {
    type Item = { row: number; cosine: number; score: number };
    const first = shards[0]!.json.results as StsModelResult[];
    const results: StsModelResult[] = first.map((m, i) => ({
      label: m.label,
      adapter: m.adapter,
      sets: m.sets.map(({ set }, s) => {
        const parts = shards.map((f) => ({
          path: f.path,
          items: units<Item>(
            f,
            f.json.results[i].sets[s].items,
            `items of ${m.label} on ${set}`,
            "eval-sts",
          ),
        }));
        const pairs = unshard(parts, (p) => p.row, `${m.label} on ${set}`);
        const figures = stsFigures(pairs.map((p) => p.cosine), pairs.map((p) => p.score));
        return { set, rows: pairs.length, ...figures };
      }),
    }));
    const j = shards[0]!.json;
    const sets = first[0]?.sets.map((s) => s.set) ?? [];
    const report = stsReport({
      model: j.model,
      ...(j.model_dir ? { modelDir: j.model_dir } : {}),
      options: { mask: j.mask, clean: j.clean, maxTokens: j.maxTokens },
      maxRows: j.maxRows,
      sets,
    }, results);
    return { text: stsJsonText(report), table: stsTable(results, isProxySet) };
  },
};

const mergers: Record<string, Merger> = {
  [dpFormat]: dp,
  [scoreFormat]: score,
  [mcFormat]: evalMc,
  [stsFormat]: evalSts,
};

/** Read one shard's JSON; anything but a shard output of a known command is an error. */
async function readShard(path: string): Promise<ShardFile & { merger: Merger }> {
  const text = await readTextFile(path, UserError);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const j = json as Record<string, any>;
  const merger = j !== null && typeof j === "object" && typeof j.format === "string"
    ? mergers[j.format]
    : undefined;
  if (!merger) {
    throw new UserError(
      `${path}: not the --json output of dp, score, eval-mc or eval-sts (no known "format")`,
    );
  }
  const s = j.shard;
  if (
    s === null || typeof s !== "object" || !Number.isInteger(s.count) || s.count < 1 ||
    !Number.isInteger(s.index) || s.index < 0 || s.index >= s.count
  ) {
    throw new UserError(
      `${path}: not a shard output (no "shard" field; run ${merger.command} with --shard I/N)`,
    );
  }
  return { path, json: j, shard: { index: s.index, count: s.count }, merger };
}

const name = (f: ShardFile) => `${f.path} (shard ${f.shard.index}/${f.shard.count})`;

/** Shards in shard order, after checking they are one complete run of one command. */
function checkRun(files: readonly (ShardFile & { merger: Merger })[]): ShardFile[] {
  const first = files[0]!;
  for (const f of files) {
    if (f.merger !== first.merger) {
      throw new UserError(
        `${first.path} is a ${first.merger.command} output but ${f.path} is a ${f.merger.command} output: merge the shards of one command`,
      );
    }
    if (f.shard.count !== first.shard.count) {
      throw new UserError(
        `${name(first)} and ${name(f)} have different shard counts: the shards of one run share N`,
      );
    }
  }
  const n = first.shard.count;
  const byIndex: (ShardFile | undefined)[] = new Array(n);
  for (const f of files) {
    const seen = byIndex[f.shard.index];
    if (seen) {
      throw new UserError(`${seen.path} and ${f.path} are both shard ${f.shard.index}/${n}`);
    }
    byIndex[f.shard.index] = f;
  }
  const missing = [...byIndex.keys()].filter((i) => !byIndex[i]);
  if (missing.length) {
    throw new UserError(
      `shard${missing.length > 1 ? "s" : ""} ${missing.map((i) => `${i}/${n}`).join(", ")} ${
        missing.length > 1 ? "are" : "is"
      } missing (given: ${files.map(name).join(", ")})`,
    );
  }
  const settings = files.map((f) => {
    try {
      return first.merger.settings(f.json);
    } catch (e) {
      throw new UserError(
        `${f.path}: not a complete ${first.merger.command} shard output (${(e as Error).message})`,
      );
    }
  });
  const show = (v: unknown) => {
    const t = JSON.stringify(v) ?? "none";
    return t.length > 60 ? `${t.slice(0, 57)}...` : t;
  };
  for (const [k, want] of Object.entries(settings[0]!)) {
    files.forEach((f, i) => {
      const got = settings[i]![k];
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        throw new UserError(
          `${first.path} and ${f.path} differ in ${k} (${show(want)} vs ${
            show(got)
          }): the shards of one run need the same model, data and flags`,
        );
      }
    });
  }
  return byIndex as ShardFile[];
}

if (import.meta.main) {
  await runCommand("merge", async () => {
    const { positionals } = parseCommandLine(spec, Deno.args);
    const [out, ...inputs] = positionals as [string, ...string[]];
    if (inputs.includes(out)) {
      throw new UserError(`OUT ${out} is also given as a shard; OUT comes first (see --help)`, 2);
    }
    const files = [];
    for (const path of inputs) files.push(await readShard(path));
    const shards = checkRun(files);
    const merger = files[0]!.merger;
    let merged;
    try {
      merged = merger.merge(shards);
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(
        `${inputs.join(", ")}: not complete ${merger.command} shard outputs (${
          (e as Error).message
        })`,
      );
    }
    console.log(merged.table);
    await writeAtomic(out, merged.text);
    console.error(`merge: wrote ${out} (${merger.command}, ${shards.length} shards)`);
  });
}
