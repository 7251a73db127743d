// `deno task report`: the paper's experiments end to end on one model — DP of the base
// (Table 3), bidirectional contrastive training of every target with STS (Table 2) and DP of
// each trained model (Table 3), UBMoE from the FFN model with router training and
// multiple-choice evaluation (Table 4) and its routing, and Figure 3's heat maps. Each stage
// runs this project's own command as a subprocess (the exact command goes into REPORT.md);
// a stage whose command and outputs are already there is not run again, so a re-run after a
// crash recomputes nothing that finished.
import { intFlag, parseFlags, runCommand, UserError } from "./cli.ts";
import { type ModelRef, resolveModel } from "./model.ts";
import { formatSeconds } from "./progress.ts";
import { type Machine, type ReportData, reportMarkdown } from "./report_markdown.ts";

const root = new URL("../", import.meta.url).pathname;

/** The paper's targets in Table 2's order; ALL is full fine-tuning, the others LoRA. */
export const reportTargets = ["ATT", "FFN", "EMB", "FFN+ATT", "FFN+EMB", "ATT+EMB", "ALL"];

const spec = {
  name: "report",
  summary:
    "Reproduce the paper's Tables 2-4 and Figure 3 on a model: DP, contrastive training of\n" +
    "every target, STS, UBMoE with router training, multiple-choice evaluation; REPORT.md + report.json.",
  flags: {
    model: {
      type: "string",
      metavar: "DIR|ID",
      default: "models/brown-qwen2",
      help: "base model (a directory or a repo id in the local Hugging Face cache)",
    },
    out: { type: "string", metavar: "DIR", default: "runs/report", help: "output directory" },
    quick: { type: "boolean", help: "every stage on tiny settings (a few steps and samples)" },
    steps: {
      type: "number",
      default: 60,
      help: "contrastive training steps per target (batch 64; the full set is 157)",
    },
    "router-steps": { type: "number", default: 60, help: "UBMoE router training steps" },
    resume: {
      type: "boolean",
      help: "reuse finished stages (the default; kept for symmetry with the other commands)",
    },
    fresh: { type: "boolean", help: "recompute every stage" },
    backend: {
      type: "string",
      metavar: "NAME",
      help: "webgpu, reference or auto (passed to every stage)",
    },
  },
  epilog: `Outputs in --out: REPORT.md (tables, figures, commands, seeds, wall times, machine),
report.json (every number), and each stage's own outputs (adapters, JSON, SVG, logs).

Example:
  deno task report --quick --out /tmp/report`,
} as const;

/** One stage: a command of this project and the files that say it finished. */
interface Stage {
  name: string;
  script: string;
  args: string[];
  /** Files the command writes last (their presence with the same command = done). */
  outputs: string[];
}

/** What finished stages record. */
interface StageRecord {
  command: string;
  seconds: number;
}

function commandLine(stage: Stage): string {
  return `deno run -A experiments/${stage.script} ${stage.args.map(quote).join(" ")}`;
}

function quote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** Run a stage unless it already finished with the same command. */
async function runStage(
  stage: Stage,
  out: string,
  fresh: boolean,
  backend: string | undefined,
): Promise<StageRecord> {
  const marker = `${out}/stages/${stage.name}.json`;
  const command = commandLine(stage);
  if (!fresh && await exists(marker)) {
    const record = JSON.parse(await Deno.readTextFile(marker)) as StageRecord;
    const done = await Promise.all(stage.outputs.map(exists));
    if (record.command === command && done.every((d) => d)) {
      console.error(`report: ${stage.name}: done earlier (${formatSeconds(record.seconds)})`);
      return record;
    }
  }
  console.error(`report: ${stage.name}: ${command}`);
  const started = performance.now();
  const env: Record<string, string> = backend ? { TENSOR_BACKEND: backend } : {};
  // every stage keeps more textures for reuse: fewer are destroyed and re-created, which
  // matters most in the long training stages
  env.TENSOR_POOL_MB = Deno.env.get("TENSOR_POOL_MB") ?? "6000";
  let result: Deno.CommandStatus, stdout = "", stderr = "";
  for (let attempt = 1;; attempt++) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        `${root}experiments/${stage.script}`,
        ...stage.args,
      ],
      cwd: root,
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    [result, stdout, stderr] = await Promise.all([
      child.status,
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
    ]);
    await Deno.writeTextFile(`${out}/stages/${stage.name}.log`, stderr + stdout);
    // killed for memory (lavapipe's native memory grows over long runs): a resumable stage
    // continues from its newest checkpoint in a fresh process
    if (result.code !== 137 || !stage.args.includes("--resume") || attempt >= 5) break;
    console.error(`report: ${stage.name}: killed (exit 137); resuming from its checkpoint`);
  }
  if (!result.success) {
    const last = stderr.trim().split("\n").at(-1) ?? "";
    throw new UserError(
      `stage ${stage.name} failed (exit ${result.code}): ${last} (log: ${out}/stages/${stage.name}.log)`,
    );
  }
  const record = { command, seconds: (performance.now() - started) / 1000 };
  await Deno.writeTextFile(marker, JSON.stringify(record, null, 2) + "\n");
  return record;
}

const slug = (target: string) => target.toLowerCase().replaceAll("+", "-");

/** Every stage of the report, in order. */
export function reportStages(model: string, out: string, o: {
  quick: boolean;
  steps: number;
  routerSteps: number;
}): Stage[] {
  const q = o.quick;
  const dpData = q ? ["--max-samples", "4"] : [];
  const stages: Stage[] = [];
  const dp = (name: string, extra: string[], heatmap: boolean) => {
    const json = `${out}/dp/${name}.json`, svg = `${out}/figures/heatmap-${name}.svg`;
    stages.push({
      name: `dp-${name}`,
      script: "dp.ts",
      args: [
        ...extra,
        ...dpData,
        "--json",
        json,
        "--resume",
        ...(heatmap ? ["--heatmap", svg, "--heatmap-sample", "0"] : []),
      ],
      outputs: heatmap ? [json, svg] : [json],
    });
  };
  dp("base", ["--model", model], true);
  // one epoch over the first steps × batch pairs, so the schedule ends with the run
  const train = q ? ["--max-pairs", "8", "--batch", "4", "--warmup", "1", "--save-every", "0"] : [
    "--max-pairs",
    String(o.steps * 64),
    "--warmup",
    String(Math.max(1, Math.round(o.steps * 0.1))),
  ];
  const stsRows = q ? ["--max-rows", "24"] : [];
  for (const target of reportTargets) {
    const full = target === "ALL";
    const dir = `${out}/embed/${slug(target)}`;
    stages.push({
      name: `train-${slug(target)}`,
      script: "train_embed.ts",
      args: [
        "--model",
        model,
        "--target",
        target,
        ...(full ? ["--full"] : []),
        ...train,
        "--out",
        dir,
        "--resume",
      ],
      outputs: [`${dir}/summary.json`],
    });
    const which = full ? ["--model", dir] : ["--model", model, "--adapter", dir];
    stages.push({
      name: `sts-${slug(target)}`,
      script: "eval_sts.ts",
      args: [...which, ...stsRows, "--json", `${out}/sts/${slug(target)}.json`],
      outputs: [`${out}/sts/${slug(target)}.json`],
    });
    dp(slug(target), which, target === "ATT" || target === "FFN");
  }
  // the base row of Table 2 comes from the base model alone
  stages.splice(1, 0, {
    name: "sts-base",
    script: "eval_sts.ts",
    args: ["--model", model, ...stsRows, "--json", `${out}/sts/base.json`],
    outputs: [`${out}/sts/base.json`],
  });
  const ubmoe = `${out}/ubmoe`, trained = `${out}/ubmoe-trained`;
  stages.push({
    name: "ubmoe-build",
    script: "ubmoe.ts",
    args: ["build", "--base", model, "--adapter", `${out}/embed/ffn`, "--out", ubmoe],
    outputs: [`${ubmoe}/model.safetensors`],
  });
  const routerTrain = q
    ? ["--steps", "2", "--batch", "2", "--warmup", "0", "--max-tokens", "128"]
    : ["--steps", String(o.routerSteps), "--warmup", String(Math.round(o.routerSteps * 0.1))];
  stages.push({
    name: "ubmoe-train",
    script: "ubmoe.ts",
    args: ["train", "--model", ubmoe, ...routerTrain, "--out", trained, "--resume"],
    outputs: [`${trained}/model.safetensors`],
  });
  stages.push({
    name: "ubmoe-inspect",
    script: "ubmoe.ts",
    args: [
      "inspect",
      "--model",
      trained,
      ...(q ? ["--max-samples", "4"] : []),
      "--json",
      `${out}/ubmoe/routing.json`,
      "--svg",
      `${out}/figures/routing.svg`,
    ],
    outputs: [`${out}/ubmoe/routing.json`, `${out}/figures/routing.svg`],
  });
  stages.push({
    name: "eval-mc",
    script: "eval_mc.ts",
    args: [
      "--model",
      model,
      "--model",
      trained,
      ...(q ? ["--max-rows", "4"] : []),
      "--json",
      `${out}/mc.json`,
    ],
    outputs: [`${out}/mc.json`],
  });
  return stages;
}

/** Gather every stage's JSON into the report's data. */
async function collect(
  out: string,
  model: ModelRef,
  records: Map<string, StageRecord>,
  settings: Record<string, unknown>,
): Promise<ReportData> {
  const read = async (p: string) => JSON.parse(await Deno.readTextFile(p));
  const dp: ReportData["dp"] = [{ target: "base", ...(await read(`${out}/dp/base.json`)) }];
  const sts: ReportData["sts"] = [];
  const base = await read(`${out}/sts/base.json`);
  sts.push({ target: "base", sets: base.results[0].sets });
  for (const t of reportTargets) {
    dp.push({ target: t, ...(await read(`${out}/dp/${slug(t)}.json`)) });
    const s = await read(`${out}/sts/${slug(t)}.json`);
    sts.push({ target: t, sets: s.results.at(-1).sets });
  }
  const training: ReportData["training"] = [];
  for (const t of reportTargets) {
    const s = await read(`${out}/embed/${slug(t)}/summary.json`);
    training.push({
      target: t,
      full: s.full,
      steps: s.steps,
      pairs: s.pairs,
      seconds: s.trainSeconds,
      firstLoss: s.firstLoss,
      finalLoss: s.finalLoss,
    });
  }
  return {
    model: model.arg,
    ...(model.repoId ? { modelDir: model.dir } : {}),
    settings,
    machine: await machine(),
    stages: Object.fromEntries(records),
    dp,
    sts,
    training,
    mc: await read(`${out}/mc.json`),
    routing: await read(`${out}/ubmoe/routing.json`),
  };
}

async function machine(): Promise<Machine> {
  // Deno reads /proc only with --allow-all; the report has --allow-run, so `cat` reads it
  const cpuinfo = await new Deno.Command("cat", { args: ["/proc/cpuinfo"], stdout: "piped" })
    .output().then((o) => new TextDecoder().decode(o.stdout), () => "");
  const cpus = {
    count: navigator.hardwareConcurrency,
    model: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
  };
  let adapter = "none";
  try {
    const a = await navigator.gpu?.requestAdapter();
    if (a) adapter = a.info.description || `${a.info.vendor} ${a.info.device}`.trim();
  } catch {
    // no WebGPU: the stages ran on the reference backend
  }
  return { deno: Deno.version.deno, os: Deno.build.os, cpus, adapter };
}

if (import.meta.main) {
  await runCommand("report", async () => {
    const flags = parseFlags(spec, Deno.args);
    const out = flags.out.replace(/\/$/, "");
    const settings = {
      quick: flags.quick ?? false,
      steps: intFlag("steps", flags.steps, 1),
      routerSteps: intFlag("router-steps", flags["router-steps"], 1),
      seeds: { trainEmbed: 42, ubmoeBuild: 0, ubmoeTrain: 0 },
    };
    // a repo id is resolved once: every stage reads the same snapshot by its path
    const model = await resolveModel("report", flags.model);
    for (const d of ["stages", "dp", "sts", "embed", "ubmoe", "figures"]) {
      await Deno.mkdir(`${out}/${d}`, { recursive: true });
    }
    const started = performance.now();
    const stages = reportStages(model.dir, out, settings);
    const records = new Map<string, StageRecord>();
    for (const [i, stage] of stages.entries()) {
      console.error(`report: stage ${i + 1}/${stages.length}`);
      records.set(stage.name, await runStage(stage, out, flags.fresh ?? false, flags.backend));
    }
    const data = await collect(out, model, records, settings);
    data.totalSeconds = (performance.now() - started) / 1000;
    await Deno.writeTextFile(`${out}/report.json`, JSON.stringify(data, null, 2) + "\n");
    await Deno.writeTextFile(`${out}/REPORT.md`, reportMarkdown(data));
    console.log(
      `report: ${out}/REPORT.md and ${out}/report.json (${formatSeconds(data.totalSeconds)})`,
    );
  });
}
