// Pre-training: a tiny run lowers the loss, an interrupted run resumed from its checkpoint
// repeats the uninterrupted one exactly, the data order depends only on (seed, step), and the
// committed checkpoint meets the perplexity bound its model card states.
import { brownTokenStream, PackedSequences } from "../../experiments/pretrain_data.ts";
import {
  heldoutLoss,
  type LogRecord,
  pretrain,
  type PretrainOptions,
} from "../../experiments/pretrain_loop.ts";
import { loadQwen } from "../../qwen/checkpoint.ts";
import { QwenTokenizer } from "../../qwen/tokenizer.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";

const device = referenceDevice;

/** A learnable toy stream: a fixed pseudo-random cycle of 48 tokens over a 32-token vocabulary. */
const cycle = Array.from({ length: 48 }, (_, i) => (i * 13 + ((i * i) % 7)) % 32);
const toyStream = Int32Array.from({ length: 4096 }, (_, i) => cycle[i % cycle.length]!);

const tiny: PretrainOptions = {
  model: {
    vocabSize: 32,
    hiddenSize: 16,
    intermediateSize: 32,
    numHiddenLayers: 1,
    numAttentionHeads: 2,
    numKeyValueHeads: 1,
    maxPositionEmbeddings: 64,
    eosTokenId: 0,
  },
  steps: 16,
  batch: 4,
  seqLen: 16,
  lr: 2e-2,
  minLr: 2e-3,
  warmup: 2,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  clip: 1,
  seed: 3,
  evalEvery: 0,
  evalSequences: 4,
  saveEvery: 0,
  logEvery: 4,
};
const data = { train: toyStream, heldout: toyStream.subarray(0, 256) };

async function trainLosses(dir: string): Promise<number[]> {
  const lines = (await Deno.readTextFile(`${dir}/log.jsonl`)).trim().split("\n");
  return lines.map((l) => JSON.parse(l) as LogRecord).flatMap((r) => "loss" in r ? [r.loss] : []);
}

Deno.test("pretrain() on a tiny config lowers the loss and logs every step", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pretrain-test-" });
  try {
    // live device memory after each read-back (every logEvery steps) must not grow
    const live: number[] = [];
    const result = await pretrain(tiny, data, dir, device, false, {
      onStep: (step) => step % tiny.logEvery === 0 && live.push(device.stats().liveBytes),
    });
    assertEquals(live.length, tiny.steps / tiny.logEvery);
    assert(live[0]! > 0 && live.every((b) => b === live[0]), `live bytes changed: ${live}`);
    const losses = await trainLosses(dir);
    assertEquals(losses.length, tiny.steps);
    assertDeepEqual(losses, result.losses);
    const first = (losses[0]! + losses[1]!) / 2, last = (losses.at(-1)! + losses.at(-2)!) / 2;
    assert(losses[0]! > 3, `initial loss ${losses[0]} should be near ln 32 ≈ 3.47`);
    assert(last < first - 1, `loss went from ${first} to ${last}`);
    const state = JSON.parse(await Deno.readTextFile(`${dir}/state.json`));
    assertEquals(state.step, tiny.steps);
    assertEquals(state.dataPosition, tiny.steps * tiny.batch);
    const heldout = await heldoutLoss(result.params, result.config, data.heldout, 16, 4);
    assert(heldout.loss < first, `held-out loss ${heldout.loss} ≥ initial ${first}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pretrain() resumed after a stop gives the uninterrupted losses", async () => {
  const options = { ...tiny, steps: 6, logEvery: 1, saveEvery: 2 };
  const whole = await Deno.makeTempDir({ prefix: "pretrain-whole-" });
  const split = await Deno.makeTempDir({ prefix: "pretrain-split-" });
  try {
    await pretrain(options, data, whole, device, false);
    // stop after step 3 (a checkpoint is written on stop), then resume to the end
    let steps = 0;
    await pretrain(options, data, split, device, false, {
      onStep: () => steps++,
      shouldStop: () => steps >= 2,
    });
    assertEquals(JSON.parse(await Deno.readTextFile(`${split}/state.json`)).step, 3);
    await pretrain(options, data, split, device, true);
    const expected = await trainLosses(whole);
    assertEquals(expected.length, 6);
    assertDeepEqual(await trainLosses(split), expected);
  } finally {
    await Deno.remove(whole, { recursive: true });
    await Deno.remove(split, { recursive: true });
  }
});

Deno.test("PackedSequences.batchAt() visits every sequence once per epoch, seeded", () => {
  const stream = Int32Array.from({ length: 40 }, (_, i) => i);
  const seqs = new PackedSequences(stream, 4, 7); // 10 sequences
  const firsts = (step: number) => [...seqs.batchAt(step, 5)].filter((_, i) => i % 4 === 0);
  const epoch = [...firsts(0), ...firsts(1)].sort((a, b) => a - b);
  assertDeepEqual(epoch, [0, 4, 8, 12, 16, 20, 24, 28, 32, 36]);
  assertDeepEqual(
    firsts(3),
    [...new PackedSequences(stream, 4, 7).batchAt(3, 5)].filter((_, i) => i % 4 === 0),
  );
  assert(
    JSON.stringify(firsts(0)) !==
      JSON.stringify(
        [...new PackedSequences(stream, 4, 8).batchAt(0, 5)].filter((_, i) => i % 4 === 0),
      ),
    "another seed gives another order",
  );
});

/** The bound the model card states, e.g. "Perplexity bound: held-out perplexity < 1000". */
async function statedBound(dir: string): Promise<number> {
  const card = await Deno.readTextFile(`${dir}/README.md`);
  const m = card.match(/perplexity bound[^0-9<]*<\s*([0-9][0-9,]*(?:\.[0-9]+)?)/i);
  if (!m) throw new Error(`${dir}/README.md: no "perplexity bound: … < N" line`);
  return Number(m[1]!.replaceAll(",", ""));
}

Deno.test("the committed models/brown-qwen2 loads and meets its card's perplexity bound", async () => {
  const dir = "models/brown-qwen2";
  const model = await loadQwen(dir, device);
  assertEquals(model.config.tieWordEmbeddings, true);
  const tokenizer = await QwenTokenizer.load(dir);
  const heldout = await brownTokenStream(tokenizer, "heldout");
  // a small deterministic sample: the first 4 packed 128-token sequences of the held-out split
  const { loss, sequences } = await heldoutLoss(model.params, model.config, heldout, 128, 4, 4);
  assertEquals(sequences, 4);
  const bound = await statedBound(dir);
  assert(
    Math.exp(loss) < bound,
    `held-out perplexity ${Math.exp(loss)} ≥ the stated bound ${bound}`,
  );
});
