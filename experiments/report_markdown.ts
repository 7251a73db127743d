// REPORT.md of `deno task report`: the paper's tables in its layouts, the figures, which of
// its claims hold on this model (with the numbers), and how every number was produced.
import { markdownTable, setLabel } from "./markdown_table.ts";

/** A DP triple in percent. */
interface Triple {
  dp_main: number;
  dp_before: number;
  dp_after: number;
}

/** Where the report ran. */
export interface Machine {
  deno: string;
  os: string;
  cpus: { count: number; model: string };
  /** The WebGPU adapter's description, or "none". */
  adapter: string;
}

/** Everything the report shows (also written as report.json). */
export interface ReportData {
  model: string;
  /** The snapshot a Hugging Face repo id `model` resolved to (absent for a directory). */
  modelDir?: string;
  settings: Record<string, unknown>;
  machine: Machine;
  stages: Record<string, { command: string; seconds: number }>;
  dp: ({
    target: string;
    samples: number;
    buckets: ({ range: (number | null)[]; count: number } & Triple)[];
  } & Triple)[];
  sts: {
    target: string;
    sets: { set: string; rows: number; spearman: number; pearson: number }[];
  }[];
  training: {
    target: string;
    full: boolean;
    steps: number;
    pairs: number;
    seconds: number;
    firstLoss: number | null;
    finalLoss: number | null;
  }[];
  mc: {
    results: {
      label: string;
      tasks: { task: string; acc?: number; accNorm?: number; mc2?: number }[];
    }[];
  };
  routing: { layers: { layer: number; biFraction: number; meanBiProb: number }[]; samples: number };
  totalSeconds?: number;
}

const f2 = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(2);

/** Mean Spearman of a Table 2 row. */
export function stsAverage(row: ReportData["sts"][number]): number {
  return row.sets.reduce((a, s) => a + s.spearman, 0) / Math.max(1, row.sets.length);
}

/** The paper's claims checked on this run: statement, whether it holds, the numbers. */
export function claims(d: ReportData): { claim: string; holds: boolean; evidence: string }[] {
  const trained = d.dp.filter((r) => r.target !== "base");
  const base = d.dp.find((r) => r.target === "base")!;
  const byDpA = [...trained].sort((a, b) => a.dp_after - b.dp_after);
  const ffn = trained.find((r) => r.target === "FFN")!;
  const att = trained.find((r) => r.target === "ATT")!;
  const out = [
    {
      claim: "Bidirectional training of FFN gives the lowest DP-A of all targets (Table 3)",
      holds: byDpA[0]!.target === "FFN",
      evidence: `lowest DP-A: ${byDpA[0]!.target} ${f2(byDpA[0]!.dp_after)}; ` +
        (byDpA[0] === ffn
          ? `next: ${byDpA[1]?.target ?? "–"} ${byDpA[1] ? f2(byDpA[1].dp_after) : "–"}; `
          : `FFN ${f2(ffn.dp_after)}; `) +
        `highest: ${byDpA.at(-1)!.target} ${f2(byDpA.at(-1)!.dp_after)}`,
    },
    {
      claim: "Training attention raises the dependence on later tokens: DP-A(ATT) > DP-A(base)",
      holds: att.dp_after > base.dp_after,
      evidence: `ATT ${f2(att.dp_after)} vs base ${f2(base.dp_after)}`,
    },
    {
      claim: "DP-A(FFN) stays closer to the base than DP-A(ATT)",
      holds: Math.abs(ffn.dp_after - base.dp_after) < Math.abs(att.dp_after - base.dp_after),
      evidence: `|FFN − base| ${f2(Math.abs(ffn.dp_after - base.dp_after))} vs |ATT − base| ${
        f2(Math.abs(att.dp_after - base.dp_after))
      }`,
    },
  ];
  const stsBase = d.sts.find((r) => r.target === "base")!,
    stsFfn = d.sts.find((r) => r.target === "FFN")!;
  out.push({
    claim:
      "Bidirectional contrastive training of FFN improves the embeddings over the base (Table 2)",
    holds: stsAverage(stsFfn) > stsAverage(stsBase),
    evidence: `STS avg FFN ${f2(stsAverage(stsFfn))} vs base ${f2(stsAverage(stsBase))}`,
  });
  const [mcBase, mcMoe] = d.mc.results;
  if (mcBase && mcMoe) {
    const avg = (m: typeof mcBase) =>
      m.tasks.reduce((a, t) => a + (t.acc ?? t.mc2 ?? 0), 0) / Math.max(1, m.tasks.length);
    out.push({
      claim: "UBMoE keeps (or improves) the base model's multiple-choice accuracy (Table 4)",
      holds: avg(mcMoe) >= avg(mcBase),
      evidence: `average UBMoE ${f2(avg(mcMoe))} vs base ${f2(avg(mcBase))}`,
    });
  }
  return out;
}

/** REPORT.md from the collected data. */
export function reportMarkdown(d: ReportData): string {
  const lines: string[] = [];
  lines.push(`# Reproduction report: ${d.model}`, "");
  if (d.modelDir) lines.push(`Model files: \`${d.modelDir}\` (the Hugging Face cache).`, "");
  lines.push(
    "Produced by `deno task report` with this project's own commands (listed at the end). " +
      "STS sets and multiple-choice tasks marked * are offline stand-ins (data/sts, data/mc), " +
      "not the paper's benchmarks; the numbers are this model's, on this machine.",
    "",
  );
  lines.push("## Which of the paper's findings hold here", "");
  for (const c of claims(d)) {
    lines.push(`- **${c.holds ? "holds" : "does not hold"}** — ${c.claim}: ${c.evidence}`);
  }
  lines.push("");

  lines.push("## Table 2 — STS (Spearman × 100, bidirectional mean-pooled embeddings)", "");
  const sets = d.sts[0]?.sets.map((s) => setLabel(s.set) + "*") ?? [];
  lines.push(
    markdownTable(
      ["Target", ...sets, "Avg."],
      d.sts.map((r) => [r.target, ...r.sets.map((s) => f2(s.spearman)), f2(stsAverage(r))]),
    ),
    "",
  );

  lines.push("## Table 3 — DP (percent; causal forward, unmasked attention averaged)", "");
  const buckets = d.dp[0]!.buckets.filter((b) =>
    d.dp.some((r) => r.buckets.find((x) => x.range[0] === b.range[0])!.count > 0)
  );
  const bucketName = (b: { range: (number | null)[] }) => `${b.range[0]}–${b.range[1] ?? "∞"}`;
  const header = ["Model", "samples", "DP-M", "DP-B", "DP-A"];
  for (const b of buckets) header.push(`${bucketName(b)} DP-M`, "DP-B", "DP-A");
  lines.push(
    markdownTable(
      header,
      d.dp.map((r) => {
        const row = [r.target, String(r.samples), f2(r.dp_main), f2(r.dp_before), f2(r.dp_after)];
        for (const b of buckets) {
          const x = r.buckets.find((y) => y.range[0] === b.range[0])!;
          row.push(f2(x.dp_main), f2(x.dp_before), f2(x.dp_after));
        }
        return row;
      }),
    ),
    "",
  );

  lines.push("## Training", "");
  lines.push(
    markdownTable(
      ["Target", "method", "steps", "pairs", "time", "loss (first → last)"],
      d.training.map((t) => [
        t.target,
        t.full ? "full" : "LoRA r 8",
        String(t.steps),
        String(t.pairs),
        `${Math.round(t.seconds)} s`,
        `${f2(t.firstLoss)} → ${f2(t.finalLoss)}`,
      ]),
    ),
    "",
  );

  lines.push("## Table 4 — multiple choice (acc, percent; mc2 for multi-label tasks)", "");
  const tasks = d.mc.results[0]?.tasks ?? [];
  lines.push(
    markdownTable(
      ["Model", ...tasks.map((t) => setLabel(t.task) + "*"), "Average"],
      d.mc.results.map((m) => {
        const v = m.tasks.map((t) => t.acc ?? t.mc2 ?? NaN);
        return [m.label, ...v.map(f2), f2(v.reduce((a, b) => a + b, 0) / Math.max(1, v.length))];
      }),
    ),
    "",
  );
  lines.push(
    "acc_norm (per character): " +
      d.mc.results.map((m) =>
        `${m.label}: ${m.tasks.map((t) => `${setLabel(t.task)} ${f2(t.accNorm)}`).join(", ")}`
      ).join("; "),
    "",
  );

  lines.push("## UBMoE routing (not in the paper)", "");
  lines.push(
    markdownTable(
      ["Layer", "tokens to the bidirectional expert", "mean p(bidirectional)"],
      d.routing.layers.map((
        l,
      ) => [String(l.layer), `${(100 * l.biFraction).toFixed(1)}%`, l.meanBiProb.toFixed(3)]),
    ),
    "",
    `![routing](figures/routing.svg)`,
    "",
  );

  lines.push("## Figure 3 — mean unmasked attention of one sample", "");
  lines.push(
    "| base | ATT | FFN |",
    "| --- | --- | --- |",
    "| ![base](figures/heatmap-base.svg) | ![ATT](figures/heatmap-att.svg) | ![FFN](figures/heatmap-ffn.svg) |",
    "",
  );

  lines.push("## How it was produced", "");
  const m = d.machine;
  lines.push(
    `Machine: ${m.cpus.count} × ${m.cpus.model} (${m.os}), Deno ${m.deno}, WebGPU adapter: ${m.adapter}`,
    "",
  );
  lines.push(`Settings: ${JSON.stringify(d.settings)}`, "");
  const stageSeconds = Object.values(d.stages).reduce((a, r) => a + r.seconds, 0);
  lines.push(
    `Stage times add up to ${Math.round(stageSeconds)} s` +
      (d.totalSeconds === undefined
        ? "."
        : `; this invocation took ${Math.round(d.totalSeconds)} s (stages done by an earlier ` +
          "run are reused and count with their recorded times above)."),
    "",
  );
  lines.push(
    markdownTable(
      ["Stage", "wall time", "command"],
      Object.entries(d.stages).map((
        [name, s],
      ) => [name, `${Math.round(s.seconds)} s`, "`" + s.command + "`"]),
    ),
    "",
  );
  return lines.join("\n");
}
