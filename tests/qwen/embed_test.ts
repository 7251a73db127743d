// Sentence embeddings (qwen/embed.ts, DESIGN 3.5): the paper's sentence clean-up and prompt,
// right padding, and embedTexts giving each text the same vector whatever its batch. (Parity
// of the bidirectional mean-pooled embeddings with PyTorch is in golden_test.ts.)
import { loadQwen } from "../../qwen/checkpoint.ts";
import {
  applyPrompt,
  cleanSentence,
  cosine,
  embeddingPrompt,
  embedTexts,
  groupedEmbeddings,
  padRows,
  promptIds,
  sentenceEmbeddings,
} from "../../qwen/embed.ts";
import { valueAndGrad } from "../../autograd/grad.ts";
import { nodeAt, withTensors } from "../../nn/params.ts";
import { tensor } from "../../tensor/create.ts";
import { cast, mul } from "../../tensor/ops/elementwise.ts";
import { sum } from "../../tensor/ops/reduce.ts";
import { Rng } from "../../tensor/random.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { QwenTokenizer } from "../../qwen/tokenizer.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { assertClose } from "../all_close.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { webgpuBackends } from "../backends.ts";

const modelDir = new URL("../../models/brown-qwen2", import.meta.url).pathname;

Deno.test("cleanSentence() follows PromptEOL's batcher: '.' unless the end is . ? \" ', \" → ', final '?' → '.'", () => {
  const cases: [string, string][] = [
    ["Is it raining?", "Is it raining."],
    ["It is raining", "It is raining."],
    ["  It is raining  ", "It is raining."],
    ["It is raining.", "It is raining."],
    ["It is raining!", "It is raining!."],
    ['He said "no"', "He said 'no'"],
    ['Is it "raining"?', "Is it 'raining'."],
    ["Why? Because it rains?", "Why? Because it rains."],
    ["3 men eat", "3 men eat."],
  ];
  for (const [input, expected] of cases) assertEquals(cleanSentence(input), expected, input);
});

Deno.test("applyPrompt() wraps the text in the paper's prompt", () => {
  assertEquals(embeddingPrompt, 'The representative word for sentence {text} is:"');
  assertEquals(
    applyPrompt("A man plays the guitar."),
    'The representative word for sentence A man plays the guitar. is:"',
  );
  assertEquals(applyPrompt("x", "[{text}]"), "[x]");
});

Deno.test("padRows() right-pads with id 0 and masks the padding", async () => {
  const { ids, mask } = padRows([[1, 2, 3], [4], [5, 6]], referenceDevice);
  assertDeepEqual([...ids.shape], [3, 3]);
  assertEquals(ids.dtype, "i32");
  assertEquals(mask.dtype, "i32");
  assertDeepEqual([...await ids.data()], [1, 2, 3, 4, 0, 0, 5, 6, 0]);
  assertDeepEqual([...await mask.data()], [1, 1, 1, 1, 0, 0, 1, 1, 0]);
  const empty = padRows([[]], referenceDevice);
  assertDeepEqual([...empty.ids.shape], [1, 1]);
  assertDeepEqual([...await empty.mask.data()], [0]);
});

Deno.test("cosine() of vectors: 1 for parallel, −1 for opposite, 0 for orthogonal or zero", () => {
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-12;
  assert(close(cosine([1, 2, 3], [2, 4, 6]), 1));
  assert(close(cosine([1, 2, 3], [-1, -2, -3]), -1));
  assertEquals(cosine([1, 0], [0, 5]), 0);
  assertEquals(cosine([0, 0], [1, 1]), 0);
  assert(close(cosine([1, 0], [1, 1]), Math.SQRT1_2));
});

const device = webgpuBackends[0] ?? referenceDevice;

Deno.test(`promptIds() encodes the prompted text and truncates it on the right`, async () => {
  const tokenizer = await QwenTokenizer.load(modelDir);
  const text = "The jury said the election was conducted well.";
  const full = promptIds(tokenizer, text, 1024);
  assertDeepEqual(full, tokenizer.encode(applyPrompt(text)));
  assertDeepEqual(promptIds(tokenizer, text, 5), full.slice(0, 5));
});

Deno.test(`embedTexts() gives a text the same vector whatever its batch on ${device.name}`, () =>
  scopeAsync(async () => {
    const model = await loadQwen(modelDir, device);
    const tokenizer = await QwenTokenizer.load(modelDir);
    const texts = [
      "The cat sat.",
      "The jury said the election was conducted well and fairly.",
      "He went home.",
      "A long sentence about the senate, the governor and the new highway bill passed in the spring.",
      "Rain.",
      "She wrote to her mother every week from the city.",
    ];
    const embed = (list: string[], batchSize: number) =>
      embedTexts(model.params, model.config, tokenizer, list, device, { batchSize });
    const all = await embed(texts, 32);
    assertEquals(all.length, texts.length);
    for (const v of all) assertEquals(v.length, model.config.hiddenSize);
    const distinct = new Set(all.map((v) => v.join(",")));
    assertEquals(distinct.size, texts.length, "texts share a vector");
    const tol = { atol: 1e-4, rtol: 1e-4 };
    // one per batch, pairs in reverse order, and among other neighbours
    const alone = await embed(texts, 1);
    const reversed = (await embed([...texts].reverse(), 2)).reverse();
    const neighbours = [
      "Another sentence entirely, longer than most of the others in this little test.",
      "Yes.",
    ];
    const mixed = await embed([neighbours[0]!, ...texts, neighbours[1]!], 3);
    texts.forEach((text, i) => {
      assertClose(alone[i]!, all[i]!, tol, `'${text}' alone`);
      assertClose(reversed[i]!, all[i]!, tol, `'${text}' reversed, batch 2`);
      assertClose(mixed[i + 1]!, all[i]!, tol, `'${text}' among neighbours, batch 3`);
    });
  }));

for (const dev of [referenceDevice, ...webgpuBackends]) {
  Deno.test(`groupedEmbeddings() equals one padded batch, values and gradients, on ${dev.name}`, () =>
    scopeAsync(async () => {
      const model = await loadQwen(modelDir, dev);
      const rng = new Rng(11);
      // lengths 3…40 in no order, so the groups permute the rows
      const rows = Array.from(
        { length: 9 },
        () => Array.from({ length: 3 + rng.int(38) }, () => 1 + rng.int(5000)),
      );
      const name = "model.norm.weight";
      const norm = cast(nodeAt(model.params, name) as Tensor, "f32");
      const weights = tensor(
        Float32Array.from({ length: rows.length * model.config.hiddenSize }, () => rng.normal()),
        [rows.length, model.config.hiddenSize],
        { device: dev },
      );
      const embed = (w: Tensor, ids: Tensor, mask: Tensor) =>
        sentenceEmbeddings(withTensors(model.params, { [name]: w }), ids, mask, model.config);
      const onePadded = (w: Tensor) => {
        const { ids, mask } = padRows(rows, dev);
        return embed(w, ids, mask);
      };
      const groups: number[] = [];
      const grouped = (w: Tensor) =>
        groupedEmbeddings(rows, dev, (ids, mask, group) => {
          groups.push(group);
          assertEquals(ids.shape[1]! % 16, 0, "group width is a multiple of 16");
          return embed(w, ids, mask);
        }, { groupRows: 4 });
      const loss = (f: (w: Tensor) => Tensor) => (w: Tensor) => sum(mul(f(w), weights));
      const [lossA, gradA] = valueAndGrad(loss(onePadded))(norm);
      const [lossB, gradB] = valueAndGrad(loss(grouped))(norm);
      assertDeepEqual(groups, [0, 1, 2], "9 rows in groups of 4");
      const tol = { atol: 1e-4, rtol: 1e-4 };
      assertClose(await grouped(norm).data(), await onePadded(norm).data(), tol, "embeddings");
      assertClose(await lossB.data(), await lossA.data(), tol, "loss");
      assertClose(await gradB.data(), await gradA.data(), tol, "gradient of the final norm");
    }));
}
