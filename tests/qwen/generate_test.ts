import { loadQwen } from "../../qwen/checkpoint.ts";
import { decoder } from "../../qwen/decoder.ts";
import { generate, sampleToken } from "../../qwen/generate.ts";
import { tensor } from "../../tensor/create.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { Rng } from "../../tensor/random.ts";
import { scope } from "../../tensor/scope.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { goldenDir, haveGolden } from "../golden.ts";

Deno.test({
  name: "generate() with the KV cache equals greedy decoding by full recomputation",
  ignore: !haveGolden,
  fn: async () => {
    const model = await loadQwen(`${goldenDir}tiny-f32`, referenceDevice);
    const prompt = [5, 17, 300, 42];
    const cached: number[] = [];
    for await (const id of generate(model, prompt, { maxNewTokens: 8 })) cached.push(id);
    const full: number[] = [];
    let ids = [...prompt];
    for (let step = 0; step < 8; step++) {
      const logits = await scope(() => {
        const x = tensor(Int32Array.from(ids), [1, ids.length], { device: referenceDevice });
        return decoder(model.params, x, model.config, { lastLogitsOnly: true }).logits!;
      }).data();
      const next = sampleToken(logits, { temperature: 0, topK: 0, topP: 1, seed: 0 }, new Rng(0));
      full.push(next);
      ids = [...ids, next];
    }
    assertDeepEqual(cached, full);
  },
});

Deno.test("sampleToken() is greedy at temperature 0, with top-k 1 and with a tiny top-p", () => {
  const logits = [0.1, 2.5, -1, 2.4, 0];
  const rng = new Rng(1);
  assertEquals(sampleToken(logits, { temperature: 0, topK: 0, topP: 1, seed: 0 }, rng), 1);
  for (let i = 0; i < 20; i++) {
    assertEquals(sampleToken(logits, { temperature: 1, topK: 1, topP: 1, seed: 0 }, rng), 1);
    assertEquals(sampleToken(logits, { temperature: 1, topK: 0, topP: 0.01, seed: 0 }, rng), 1);
  }
});

Deno.test("sampleToken() draws in proportion to softmax(logits / T), only from the top k", () => {
  const logits = [Math.log(1), Math.log(2), Math.log(3), Math.log(4)];
  const rng = new Rng(7);
  const counts = [0, 0, 0, 0];
  const n = 20000;
  for (let i = 0; i < n; i++) {
    counts[sampleToken(logits, { temperature: 1, topK: 3, topP: 1, seed: 0 }, rng)]!++;
  }
  assertEquals(counts[0], 0);
  // top-3 renormalised: 2/9, 3/9, 4/9
  [2 / 9, 3 / 9, 4 / 9].forEach((p, j) =>
    assert(Math.abs(counts[j + 1]! / n - p) < 0.015, `token ${j + 1}: ${counts[j + 1]! / n}`)
  );
});
