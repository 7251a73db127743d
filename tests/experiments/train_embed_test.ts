// Bidirectional contrastive training (experiments/embed_train_loop.ts, `deno task
// train-embed`): AnglE's duplicate filter, the seeded data order and the schedule; a short run
// on the default model lowers the loss; a run stopped and resumed ends with the bytes of an
// uninterrupted one (LoRA and full fine-tuning); bad input is one line on stderr.
import {
  dropDuplicates,
  type EmbedTrainOptions,
  microBatchIndices,
  schedulePlan,
  trainEmbed,
} from "../../experiments/embed_train_loop.ts";
import type { Pair } from "../../experiments/pair_data.ts";
import type { LoraParams } from "../../nn/lora.ts";
import { namesFromTree, nodeAt } from "../../nn/params.ts";
import { loadQwen, type QwenModel } from "../../qwen/checkpoint.ts";
import { writeAdapter } from "../../qwen/peft.ts";
import { QwenTokenizer } from "../../qwen/tokenizer.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { SafetensorsFile } from "../../tensor/safetensors.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { webgpuBackends } from "../backends.ts";
import { runScript } from "../commands.ts";
import { goldenDir, haveGolden } from "../golden.ts";

const modelDir = new URL("../../models/brown-qwen2", import.meta.url).pathname;

/** Token pairs from short id lists. */
const tp = (a: number[], p: number[]) => ({ a, p });

Deno.test("dropDuplicates() keeps distinct pairs in order and drops repeats and self-pairs", () => {
  const distinct = [tp([1, 2], [3]), tp([4], [5, 6]), tp([7], [8])];
  assertDeepEqual(dropDuplicates(distinct), distinct);
  const pairs = [
    tp([1, 2], [3]), // kept
    tp([9], [9]), // its anchor is its positive
    tp([1, 2], [10]), // an earlier anchor again
    tp([11], [3]), // an earlier positive as positive
    tp([3], [12]), // an earlier positive as anchor
    tp([13], [1, 2]), // an earlier anchor as positive
    tp([1], [2]), // tokens of earlier sequences, but not whole sequences
  ];
  assertDeepEqual(dropDuplicates(pairs), [tp([1, 2], [3]), tp([1], [2])]);
  assertDeepEqual(dropDuplicates([]), []);
});

Deno.test("dropDuplicates() follows AnglE: a pair dropped at its anchor does not mark its positive as seen", () => {
  // AngleDataCollator walks a pair's texts and breaks at the first one already seen, so the
  // positive of a pair dropped for its anchor never enters the set: [z, w] stays
  const pairs = [tp([1], [2]), tp([2], [3]), tp([3], [4])];
  assertDeepEqual(dropDuplicates(pairs), [tp([1], [2]), tp([3], [4])]);
});

Deno.test("schedulePlan() counts micro-batches per epoch and optimizer steps", () => {
  const o = { batch: 3, gradAccum: 2, epochs: 3, maxSteps: 0 };
  assertDeepEqual(schedulePlan(10, o), {
    microPerEpoch: 4,
    stepsPerEpoch: 2,
    scheduled: 6,
    total: 6,
  });
  assertEquals(schedulePlan(10, { ...o, maxSteps: 4 }).total, 4);
  assertEquals(schedulePlan(10, { ...o, maxSteps: 100 }).total, 6);
  assertDeepEqual(schedulePlan(16, { batch: 8, gradAccum: 1, epochs: 1, maxSteps: 0 }), {
    microPerEpoch: 2,
    stepsPerEpoch: 2,
    scheduled: 2,
    total: 2,
  });
  assertEquals(schedulePlan(17, { batch: 8, gradAccum: 4, epochs: 2, maxSteps: 0 }).scheduled, 2);
});

Deno.test("microBatchIndices() visits every pair once per epoch, in a seeded order", () => {
  const pairs = 10, o = { batch: 3, seed: 5 };
  const { microPerEpoch } = schedulePlan(pairs, { ...o, gradAccum: 1, epochs: 1, maxSteps: 0 });
  const epoch = (e: number, seed = o.seed) =>
    Array.from(
      { length: microPerEpoch },
      (_, j) => microBatchIndices(pairs, e * microPerEpoch + j, { ...o, seed }, microPerEpoch),
    );
  const all = Array.from({ length: pairs }, (_, i) => i);
  for (const e of [0, 1, 2]) {
    const batches = epoch(e);
    assertDeepEqual(batches.map((b) => b.length), [3, 3, 3, 1]);
    assertDeepEqual(batches.flat().sort((a, b) => a - b), all, `epoch ${e}`);
    assertDeepEqual(epoch(e), batches, `epoch ${e} is not deterministic`);
  }
  const flat = (e: number, seed?: number) => epoch(e, seed).flat().join(",");
  assert(flat(0) !== flat(1), "two epochs share an order");
  assert(flat(0) !== flat(0, 6), "two seeds share an order");
  assert(flat(0) !== all.join(","), "epoch 0 is not shuffled");
});

/** 16 pairs of simple sentences with a paraphrase each. */
const pairs: Pair[] = [
  ["The cat sat on the mat.", "A cat was sitting on the mat."],
  ["He drove the car to the city.", "He took his car into town."],
  ["The children played in the garden.", "Kids were playing in the yard."],
  ["She wrote a long letter to her mother.", "She sent her mother a long letter."],
  ["The river flooded the village.", "Water from the river covered the village."],
  ["The old man walked slowly home.", "The elderly man went home slowly."],
  ["They ate bread and cheese for lunch.", "Lunch was bread with cheese."],
  ["The soldiers marched across the bridge.", "Troops crossed the bridge on foot."],
  ["The church bells rang at noon.", "At midday the church bells were ringing."],
  ["A storm broke over the hills.", "A storm came over the hills."],
  ["The doctor examined the patient.", "The physician looked at the sick man."],
  ["The teacher read a story to the class.", "The class heard a story from the teacher."],
  ["The farmer sold his cattle at the market.", "At the market the farmer sold cows."],
  ["The ship sailed out of the harbor.", "The boat left the port."],
  ["The senator gave a speech in Washington.", "In Washington the senator spoke."],
  ["The dog barked at the stranger.", "The dog barked at a man it did not know."],
].map(([text, positive]) => ({ text: text!, positive: positive! }));

/** A short LoRA run; the lr is above the paper's 3e-4 so that a dozen steps move the loss. */
const options: EmbedTrainOptions = {
  target: "FFN",
  full: false,
  lora: { r: 8, alpha: 16, dropout: 0.05, rslora: true },
  loss: "ibn",
  lr: 1e-2,
  batch: 8,
  gradAccum: 1,
  warmup: 0,
  epochs: 6,
  maxSteps: 0,
  maxTokens: 64,
  tau: 20,
  seed: 1,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-3,
  weightDecay: 0,
  clip: 1,
  saveEvery: 0,
  logEvery: 1,
  dataId: "16 test pairs",
  modelId: "models/brown-qwen2",
};

// the default model on the reference backend is too slow for a training run
const gpu = webgpuBackends[0];
const noGpu = gpu === undefined;
if (noGpu) console.warn("train_embed_test: no WebGPU adapter; the training runs are skipped");
const brown: { model: QwenModel; tokenizer: QwenTokenizer } | null = gpu
  ? { model: await loadQwen(modelDir, gpu), tokenizer: await QwenTokenizer.load(modelDir) }
  : null;

async function withTempDirs(n: number, fn: (dirs: string[]) => Promise<void>): Promise<void> {
  const dirs = await Promise.all(
    Array.from({ length: n }, () => Deno.makeTempDir({ prefix: "train-embed-test-" })),
  );
  try {
    await fn(dirs);
  } finally {
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
}

/** The log's records without wall-clock seconds. */
async function logRecords(dir: string): Promise<Record<string, number>[]> {
  const text = await Deno.readTextFile(`${dir}/train_log.jsonl`);
  return text.trim().split("\n").map((l) => {
    const { seconds: _, ...rest } = JSON.parse(l);
    return rest;
  });
}

Deno.test({
  name: "trainEmbed() with FFN LoRA on models/brown-qwen2 lowers the contrastive loss",
  ignore: noGpu,
  fn: () =>
    withTempDirs(1, async ([out]) => {
      const { model, tokenizer } = brown!;
      const result = await trainEmbed(model, tokenizer, pairs, options, out!, gpu!, false);
      const losses = result.losses;
      assertEquals(result.steps, 12);
      assertEquals(losses.length, 12);
      assertEquals(result.pairsSeen, 16 * 6);
      assertDeepEqual((await logRecords(out!)).map((r) => r.loss), losses);
      // 16 rows of 15 negatives each: the untrained loss is near ln 15 ≈ 2.7
      assert(losses[0]! > 1.5, `first loss ${losses[0]}`);
      const epochMean = (e: number) => (losses[2 * e]! + losses[2 * e + 1]!) / 2;
      assert(
        epochMean(5) < 0.7 * epochMean(0) && epochMean(5) < losses[0]! - 0.5,
        `mean loss of the first epoch ${epochMean(0)}, of the last ${epochMean(5)}: ${losses}`,
      );
    }),
});

Deno.test({
  name: "trainEmbed() stopped after step 3 and resumed writes the uninterrupted adapter's bytes",
  ignore: noGpu,
  fn: () =>
    withTempDirs(2, async ([whole, split]) => {
      const { model, tokenizer } = brown!;
      // accumulation over micro-batches, LoRA dropout and a stop in mid-epoch all matter here
      // 2 steps of 2 micro-batches per epoch: the stop falls in the middle of epoch 2
      const o = { ...options, target: "FFN+ATT", batch: 4, gradAccum: 2, epochs: 2, logEvery: 2 };
      const a = await trainEmbed(model, tokenizer, pairs, o, whole!, gpu!, false);
      assertEquals(a.steps, 4);
      let calls = 0;
      const first = await trainEmbed(model, tokenizer, pairs, o, split!, gpu!, false, {
        shouldStop: () => ++calls === 3,
      });
      assert(first.stopped, "the run did not stop");
      assertEquals(first.steps, 3);
      const state = JSON.parse(await Deno.readTextFile(`${split}/train_state.json`));
      assertEquals(state.step, 3);
      const b = await trainEmbed(model, tokenizer, pairs, o, split!, gpu!, true);
      assertEquals(b.steps, 4);
      assert(!b.stopped);
      assertDeepEqual(await logRecords(split!), await logRecords(whole!));
      await writeAdapter(`${whole}/adapter`, a.trainable as LoraParams, a.loraConfig!);
      await writeAdapter(`${split}/adapter`, b.trainable as LoraParams, b.loraConfig!);
      const bytes = (dir: string) => Deno.readFile(`${dir}/adapter/adapter_model.safetensors`);
      const wholeBytes = await bytes(whole!), splitBytes = await bytes(split!);
      assertEquals(splitBytes.length, wholeBytes.length);
      assert(splitBytes.every((x, i) => x === wholeBytes[i]), "adapter bytes differ");
      assertEquals(
        await Deno.readTextFile(`${split}/adapter/adapter_config.json`),
        await Deno.readTextFile(`${whole}/adapter/adapter_config.json`),
      );
      // the trained adapter is not the initial one: every B moved away from 0
      for (const [module, { B }] of Object.entries(b.trainable as LoraParams)) {
        assert((await B.data()).some((v) => v !== 0), `${module}: B is still zero`);
      }
    }),
});

Deno.test({
  name:
    "trainEmbed() full fine-tuning of FFN stopped and resumed ends with the uninterrupted weights",
  ignore: noGpu,
  fn: () =>
    withTempDirs(2, async ([whole, split]) => {
      const { model, tokenizer } = brown!;
      const o = { ...options, full: true, lr: 1e-3, epochs: 2 };
      const a = await trainEmbed(model, tokenizer, pairs, o, whole!, gpu!, false);
      assertEquals(a.steps, 4);
      let calls = 0;
      await trainEmbed(model, tokenizer, pairs, o, split!, gpu!, false, {
        shouldStop: () => ++calls === 2,
      });
      const b = await trainEmbed(model, tokenizer, pairs, o, split!, gpu!, true);
      assertEquals(b.steps, 4);
      const trainedA = a.trainable as Record<string, Tensor>;
      const trainedB = b.trainable as Record<string, Tensor>;
      assertDeepEqual(Object.keys(trainedB).sort(), Object.keys(trainedA).sort());
      assertEquals(Object.keys(trainedA).length, 3 * model.config.numHiddenLayers);
      const base = namesFromTree(model.params);
      for (const [name, t] of Object.entries(trainedA)) {
        const va = await t.data(), vb = await trainedB[name]!.data();
        assertEquals(t.dtype, "f32");
        assert(va.every((v, i) => v === vb[i]), `${name} differs after resume`);
        const original = await base.get(name)!.data();
        assert(va.some((v, i) => v !== original[i]), `${name} did not train`);
      }
      assertDeepEqual(await logRecords(split!), await logRecords(whole!));
    }),
});

Deno.test({
  name: "trainEmbed() checkpoints name each tensor after its own module",
  ignore: noGpu,
  fn: () =>
    withTempDirs(1, async ([out]) => {
      const { model, tokenizer } = brown!;
      const o = { ...options, target: "FFN", maxSteps: 1 };
      const result = await trainEmbed(model, tokenizer, pairs, o, out!, gpu!, false);
      const state = JSON.parse(await Deno.readTextFile(`${out}/train_state.json`));
      using file = await SafetensorsFile.open(`${out}/${state.checkpoint}/train_state.safetensors`);
      for (const [module, { A, B }] of Object.entries(result.trainable as LoraParams)) {
        for (const [role, t] of [["lora_A", A], ["lora_B", B]] as const) {
          const info = file.info(`param.${module}.${role}`);
          assertDeepEqual(
            info ? [...info.shape] : null,
            [...t.shape],
            `param.${module}.${role} holds another module's tensor`,
          );
          const { bytes } = await file.read(`param.${module}.${role}`);
          const stored = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
          const values = await t.data();
          assert(stored.every((v, i) => v === values[i]), `param.${module}.${role} values`);
        }
      }
    }),
});

Deno.test({
  name:
    "trainEmbed() full fine-tuning of an f32 model leaves the caller's weights alive and unchanged",
  ignore: !haveGolden,
  fn: () =>
    withTempDirs(1, async ([out]) => {
      // tiny-f32 has no tokenizer: a stand-in maps characters to ids of its 384-token vocabulary
      const tokenizer = {
        encode: (s: string) => [...s].map((c) => c.charCodeAt(0) % 384),
      } as unknown as QwenTokenizer;
      const model = await loadQwen(`${goldenDir}tiny-f32`, referenceDevice);
      const up = nodeAt(model.params, "model.layers.0.mlp.up_proj.weight") as Tensor;
      const before = Float32Array.from(await up.data());
      const o = { ...options, full: true, batch: 4, epochs: 1, maxSteps: 2 };
      const result = await trainEmbed(
        model,
        tokenizer,
        pairs.slice(0, 8),
        o,
        out!,
        referenceDevice,
        false,
      );
      assertEquals(result.losses.length, 2, "no training step ran");
      const trained =
        (result.trainable as Record<string, Tensor>)["model.layers.0.mlp.up_proj.weight"]!;
      assert(
        trained !== up && (await trained.data()).some((v, i) => v !== before[i]),
        "up_proj did not train",
      );
      assert(up.alive, "trainEmbed disposed the model's own up_proj weight");
      const after = Array.from(await up.data());
      assert(after.every((v, i) => v === before[i]), "the model's weight changed");
    }),
});

/** Run the command with a pairs file holding `lines`; returns its result. */
async function withPairsFile(lines: string[], args: string[] = []) {
  const dir = await Deno.makeTempDir({ prefix: "train-embed-cmd-" });
  try {
    await Deno.writeTextFile(`${dir}/pairs.jsonl`, lines.join("\n") + "\n");
    const r = await runScript("train_embed.ts", [
      "--data",
      `${dir}/pairs.jsonl`,
      "--out",
      `${dir}/out`,
      ...args,
    ]);
    return { ...r, file: `${dir}/pairs.jsonl` };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("train-embed reports a bad pairs file or --target in one line, without a stack trace", async () => {
  const good = JSON.stringify({ text: "A cat sat.", positive: "A cat was sitting." });
  const cases: [string[], string[], number | null, RegExp][] = [
    [[good, JSON.stringify({ text: "only a text" })], [], null, /line 2: missing field 'positive'/],
    [
      [good, good, JSON.stringify({ text: " ", positive: "b" })],
      [],
      null,
      /line 3: field 'text' is empty/,
    ],
    [[good, "{ not json", good], [], null, /line 2: not valid JSON/],
    [[good], ["--target", "XYZ"], 2, /--target: unknown target 'XYZ'/],
    [[good], ["--target", "FFN+FFN"], 2, /--target: .*names FFN twice/],
  ];
  for (const [lines, args, code, pattern] of cases) {
    const r = await withPairsFile(lines, args);
    if (code === null) assert(r.code !== 0, `exit 0 for ${lines.join(" | ")}`);
    else assertEquals(r.code, code, r.stderr);
    const errors = r.stderr.trim().split("\n").filter((l) => l.startsWith("train-embed: error"));
    assertEquals(errors.length, 1, r.stderr);
    assert(pattern.test(errors[0]!), errors[0]);
    if (code === null) assert(errors[0]!.includes(r.file), `${errors[0]} does not name the file`);
    assert(!r.stderr.includes("    at "), `stack trace in: ${r.stderr}`);
  }
});
