// STS evaluation (experiments/eval_sts.ts, the paper's Table 2) and `--adapter` on the
// measuring commands: the table's layout, Spearman 100 when the scores are a monotone function
// of the model's own cosines, one clear line for an adapter that does not fit the model, and
// `dp --adapter` with a fresh (B = 0) adapter giving the base model's numbers.
import { evaluateSet, type StsResult, stsTable } from "../../experiments/eval_sts.ts";
import type { StsRow } from "../../experiments/pair_data.ts";
import { bidirectional } from "../../nn/masks.ts";
import { initLora, type LoraConfig, type LoraParams } from "../../nn/lora.ts";
import { loadQwen } from "../../qwen/checkpoint.ts";
import { readQwen2Config } from "../../qwen/config.ts";
import { cosine, embedTexts } from "../../qwen/embed.ts";
import { writeAdapter } from "../../qwen/peft.ts";
import { parseTarget, targetModuleShapes, targetSuffixes } from "../../qwen/targets.ts";
import { QwenTokenizer } from "../../qwen/tokenizer.ts";
import { tensor } from "../../tensor/create.ts";
import { Rng } from "../../tensor/random.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { webgpuBackends } from "../backends.ts";
import { runScript } from "../commands.ts";
import { goldenDir, haveGolden } from "../golden.ts";

const modelDir = new URL("../../models/brown-qwen2", import.meta.url).pathname;

const result = (set: string, spearman: number): StsResult => ({
  set,
  rows: 10,
  spearman,
  pearson: 0,
});

Deno.test("stsTable() lays out Table 2: a row per model, a column per set, Avg., proxies starred", () => {
  const results = [
    {
      label: "base",
      sets: [result("data/sts/bible-graded.jsonl", 50), result("/tmp/x/sick-r.jsonl", 70.125)],
    },
    {
      label: "runs/embed-ffn",
      sets: [result("data/sts/bible-graded.jsonl", 61), result("/tmp/x/sick-r.jsonl", 80)],
    },
  ];
  const table = stsTable(results, (s) => s.endsWith("bible-graded.jsonl"));
  const lines = table.split("\n");
  assertDeepEqual(lines.slice(0, 4), [
    "| Model | bible-graded* | sick-r | Avg. |",
    "| --- | --- | --- | --- |",
    "| base | 50.00 | 70.13 | 60.06 |",
    "| runs/embed-ffn | 61.00 | 80.00 | 70.50 |",
  ]);
  assertEquals(lines[4], "");
  assert(/^\\\* proxy set/.test(lines[5]!), `footnote: ${lines[5]}`);
  assertEquals(lines.length, 6);
  // no proxy set, no footnote
  assertEquals(stsTable(results, () => false).split("\n").length, 4);
  assert(!stsTable(results, () => false).includes("*"));
});

const device = webgpuBackends[0] ?? referenceDevice;

Deno.test(`evaluateSet() gives Spearman 100 for scores monotone in the model's cosines on ${device.name}`, () =>
  scopeAsync(async () => {
    const model = await loadQwen(modelDir, device);
    const tokenizer = await QwenTokenizer.load(modelDir);
    const sentences = [
      "The cat sat on the mat.",
      "A cat was sitting on the mat.",
      "The senator gave a speech in Washington.",
      "Rain fell all night over the town.",
      "The children played in the garden.",
      "Stocks fell sharply on Monday.",
      "The ship left the harbor at dawn.",
      "He wrote a long letter to his mother.",
    ];
    const pairs: [number, number][] = [[0, 1], [0, 2], [3, 4], [5, 6], [7, 0], [1, 6], [2, 5]];
    // the cosines evaluateSet will see: the same unique sentences, batch and mask
    const unique = [...new Set(pairs.flat().map((i) => sentences[i]!))];
    const vectors = await embedTexts(model.params, model.config, tokenizer, unique, device, {
      batchSize: 8,
      maxTokens: 1024,
      mask: bidirectional,
    });
    const byText = new Map(unique.map((s, i) => [s, vectors[i]!]));
    const cosines = pairs.map(([a, b]) =>
      cosine(byText.get(sentences[a]!)!, byText.get(sentences[b]!)!)
    );
    assertEquals(new Set(cosines).size, cosines.length, "tied cosines");
    const rows = (score: (c: number) => number): StsRow[] =>
      pairs.map(([a, b], i) => ({
        sentence1: sentences[a]!,
        sentence2: sentences[b]!,
        score: score(cosines[i]!),
      }));
    const options = { batch: 8, maxTokens: 1024, mask: "bidirectional" as const, clean: true };
    const linear = await evaluateSet(model, tokenizer, rows((c) => 3 * c + 2), device, options);
    assert(Math.abs(linear.spearman - 100) < 1e-9, `Spearman ${linear.spearman}`);
    assert(Math.abs(linear.pearson - 100) < 1e-6, `Pearson ${linear.pearson}`);
    const monotone = await evaluateSet(model, tokenizer, rows((c) => Math.exp(40 * c)), device, {
      ...options,
    });
    assert(Math.abs(monotone.spearman - 100) < 1e-9, `Spearman ${monotone.spearman}`);
    assert(monotone.pearson < 99.9, `Pearson ${monotone.pearson} of a non-linear score`);
    const reversed = await evaluateSet(model, tokenizer, rows((c) => -c), device, options);
    assert(Math.abs(reversed.spearman + 100) < 1e-9, `Spearman ${reversed.spearman}`);
  }));

/** Seeded normal values as an f32 tensor on the reference device. */
function randn(shape: number[], seed: number): Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float32Array.from({ length: n }, () => rng.normal()), shape, {
    device: referenceDevice,
  });
}

function loraConfig(targetModules: string[]): LoraConfig {
  return {
    r: 8,
    loraAlpha: 16,
    loraDropout: 0.05,
    useRslora: true,
    targetModules,
    baseModelNameOrPath: modelDir,
  };
}

Deno.test("eval-sts --adapter that does not fit the model: one line naming the module, exit 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eval-sts-test-" });
  try {
    const rows = [
      { sentence1: "A cat sat.", sentence2: "A cat was sitting.", score: 4.5 },
      { sentence1: "A man sang.", sentence2: "Stocks fell.", score: 0.5 },
      { sentence1: "It rained.", sentence2: "Rain fell.", score: 4 },
    ];
    await Deno.writeTextFile(`${dir}/sts.jsonl`, rows.map((r) => JSON.stringify(r)).join("\n"));
    // brown-qwen2: hidden 96, intermediate 256, 4 layers
    const up = (l: number, inF = 96, outF = 256) => ({
      [`model.layers.${l}.mlp.up_proj`]: { A: randn([8, inF], l), B: randn([outF, 8], l + 9) },
    });
    const cases: [string, LoraParams, string[], RegExp][] = [
      [
        "unknown-module",
        { "model.layers.0.mlp.fc_proj": { A: randn([8, 96], 1), B: randn([256, 8], 2) } },
        ["fc_proj"],
        /module 'model\.layers\.0\.mlp\.fc_proj' does not exist in the model/,
      ],
      [
        "missing-layer",
        { ...up(0), ...up(1), ...up(2), ...up(3), ...up(7) },
        ["up_proj"],
        /module 'model\.layers\.7\.mlp\.up_proj' does not exist in the model/,
      ],
      [
        "wrong-in",
        { ...up(0), ...up(1), ...up(2, 95), ...up(3) },
        ["up_proj"],
        /module 'model\.layers\.2\.mlp\.up_proj' A has shape \[8, ?95\], expected \[8, ?96\]/,
      ],
      [
        "wrong-out",
        { ...up(0), ...up(1), ...up(2), ...up(3, 96, 96) },
        ["up_proj"],
        /module 'model\.layers\.3\.mlp\.up_proj' B has shape \[96, ?8\], expected \[256, ?8\]/,
      ],
    ];
    for (const [name, params, targets, pattern] of cases) {
      await writeAdapter(`${dir}/${name}`, params, loraConfig(targets));
      const r = await runScript("eval_sts.ts", [
        "--model",
        modelDir,
        "--data",
        `${dir}/sts.jsonl`,
        "--adapter",
        `${dir}/${name}`,
      ]);
      assertEquals(r.code, 1, `${name}: ${r.stderr}`);
      const errors = r.stderr.trim().split("\n").filter((l) => l.startsWith("eval-sts: error"));
      assertEquals(errors.length, 1, r.stderr);
      assert(pattern.test(errors[0]!), `${name}: ${errors[0]}`);
      assert(errors[0]!.includes(`${dir}/${name}`), `${name}: the adapter is not named`);
      assert(!r.stderr.includes("    at "), `${name}: stack trace in ${r.stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "dp --adapter with a fresh adapter (B = 0) gives the base model's DP; a trained one does not",
  ignore: !haveGolden,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dp-adapter-test-" });
    try {
      const model = `${goldenDir}tiny-f32`;
      const config = await readQwen2Config(model);
      const all = parseTarget("ALL");
      const cfg = { ...loraConfig(targetSuffixes(all)), baseModelNameOrPath: model };
      const fresh = initLora(targetModuleShapes(config, all), cfg, 5, referenceDevice);
      await writeAdapter(`${dir}/fresh`, fresh, cfg);
      // a "trained" adapter: nonzero B everywhere (and A for the embedding)
      const trained: LoraParams = {};
      Object.entries(fresh).forEach(([module, { A, B }], i) => {
        trained[module] = { A: randn([...A.shape], 100 + i), B: randn([...B.shape], 200 + i) };
      });
      await writeAdapter(`${dir}/trained`, trained, cfg);
      const rows = [3, 9, 17, 30].map((n, r) =>
        JSON.stringify({
          input_ids: Array.from({ length: n }, (_, i) => 1 + ((r * 29 + i * 13) % 380)),
        })
      );
      await Deno.writeTextFile(`${dir}/rows.jsonl`, rows.join("\n") + "\n");
      const dp = async (extra: string[], out: string) => {
        const r = await runScript("dp.ts", [
          "--model",
          model,
          "--data",
          `${dir}/rows.jsonl`,
          "--buckets",
          "0,8,64",
          "--per-layer",
          "--json",
          `${dir}/${out}`,
          ...extra,
        ]);
        assertEquals(r.code, 0, r.stderr);
        const { adapter: _a, ...json } = JSON.parse(await Deno.readTextFile(`${dir}/${out}`));
        return json;
      };
      const base = await dp([], "base.json");
      const withFresh = await dp(["--adapter", `${dir}/fresh`], "fresh.json");
      assertEquals(base.samples, 4);
      assertDeepEqual(withFresh, base);
      const withTrained = await dp(["--adapter", `${dir}/trained`], "trained.json");
      assert(
        withTrained.dp_main !== base.dp_main && withTrained.dp_before !== base.dp_before,
        `the trained adapter left DP at ${base.dp_main} / ${base.dp_before}`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
