// The trimmed Brown tokenizer (models/brown-qwen2) round-trips any text and, on the corpus,
// emits exactly the full Qwen2.5 tokenizer's tokens; the build is a fixed point.
import fc from "fast-check";
import { brownCorpus, documentText } from "../../experiments/corpus/brown.ts";
import {
  type BpeTokenizerJson,
  byteLevelAlphabet,
  mergeClosure,
  mergeParts,
  tokenizerConfigText,
  tokenizerJsonText,
  trimTokenizer,
} from "../../experiments/corpus/trim_tokenizer.ts";
import { type ChatMessage, QwenTokenizer } from "../../qwen/tokenizer.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { assertProperty } from "../fc.ts";

const trimmedDir = new URL("../../models/brown-qwen2", import.meta.url).pathname;
const fullDir = new URL("../../../shared/tokenizer/qwen2.5", import.meta.url).pathname;
const haveFull = await Deno.stat(`${fullDir}/tokenizer.json`).then(() => true, () => false);
if (!haveFull) {
  console.warn(
    "trim_tokenizer_test: ../shared/tokenizer is absent; comparisons with Qwen2.5 skipped",
  );
}

const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(path));
const trimmedJson: BpeTokenizerJson = await readJson(`${trimmedDir}/tokenizer.json`);
const trimmed = await QwenTokenizer.load(trimmedDir);
const full = haveFull ? await QwenTokenizer.load(fullDir) : undefined;

/** Token strings of ids, from a tokenizer.json's vocabulary and added tokens. */
function tokenStrings(json: BpeTokenizerJson): (ids: number[]) => string[] {
  const byId: string[] = [];
  for (const [t, id] of Object.entries(json.model.vocab)) byId[id] = t;
  for (const t of json.added_tokens) byId[t.id] = t.content;
  return (ids) => ids.map((id) => byId[id]!);
}
const trimmedTokens = tokenStrings(trimmedJson);
const fullTokens = haveFull ? tokenStrings(await readJson(`${fullDir}/tokenizer.json`)) : () => [];

/** A deterministic sample of corpus texts: every 10th sentence, every 25th document. */
const corpusSample = await (async () => {
  const docs = await brownCorpus();
  const sentences = docs.flatMap((d) => d.paragraphs.flat()).filter((_, i) => i % 10 === 0);
  return [...sentences, ...docs.filter((_, i) => i % 25 === 0).map(documentText)];
})();

const specials = trimmedJson.added_tokens.map((t) => t.content);

/** What decode(encode(text)) must give: NFC applied between added tokens, which are kept. */
function normalizedAroundSpecials(text: string): string {
  const pattern = new RegExp(
    `(${specials.map((s) => s.replace(/[|[\]\\^$.*+?(){}]/g, "\\$&")).join("|")})`,
  );
  return text.split(pattern).map((piece, i) => i % 2 === 1 ? piece : piece.normalize("NFC"))
    .join("");
}

Deno.test("byteLevelAlphabet() is 256 distinct characters, printable bytes as themselves", () => {
  const alphabet = byteLevelAlphabet();
  assertEquals(new Set(alphabet).size, 256);
  assertEquals(alphabet[65], "A");
  assertEquals(alphabet[32], "Ġ");
  assertEquals(alphabet[10], "Ċ");
});

Deno.test("mergeClosure() adds both parts of every merged token, recursively", () => {
  const merges: (string | [string, string])[] = ["a b", ["ab", "c"], "x y", "abc d"];
  assertDeepEqual([...mergeClosure(["abc"], merges)].sort(), ["a", "ab", "abc", "b", "c"]);
  assertDeepEqual(mergeParts("Ġ t"), ["Ġ", "t"]);
});

Deno.test("trimTokenizer() keeps bytes, closure, merge order and added tokens, with dense ids", () => {
  const bytes = byteLevelAlphabet();
  const vocab: Record<string, number> = {};
  bytes.forEach((b, i) => vocab[b] = i);
  for (const t of ["in", "Ġt", "Ġin", "er", "Ġth", "the"]) vocab[t] = Object.keys(vocab).length;
  const source: BpeTokenizerJson = {
    added_tokens: [{ id: 262, content: "<|endoftext|>" }, { id: 263, content: "<|im_end|>" }],
    model: { type: "BPE", vocab, merges: ["i n", "Ġ t", "Ġ in", "e r", "Ġt h", "t he"] },
  };
  const config = {
    eos_token: "<|im_end|>",
    added_tokens_decoder: { "262": { content: "<|endoftext|>" }, "263": { content: "<|im_end|>" } },
  };
  const out = trimTokenizer(source, config, new Set(["Ġin"]));
  const v = out.tokenizerJson.model.vocab;
  assertEquals(Object.keys(v).length, 258);
  assertDeepEqual([v["in"], v["Ġin"], v["Ġt"]], [256, 257, undefined]);
  assertDeepEqual(out.tokenizerJson.model.merges, ["i n", "Ġ in"]);
  assertDeepEqual(out.tokenizerJson.added_tokens.map((t) => [t.id, t.content]), [
    [258, "<|endoftext|>"],
    [259, "<|im_end|>"],
  ]);
  assertDeepEqual(Object.keys(out.tokenizerConfig.added_tokens_decoder as object), ["258", "259"]);
  assertEquals(out.tokenizerConfig.eos_token, "<|im_end|>");
});

Deno.test("models/brown-qwen2: dense ids, bytes first, every merge's parts and result kept", () => {
  const { vocab, merges } = trimmedJson.model;
  const ids = Object.values(vocab).sort((a, b) => a - b);
  assertDeepEqual(ids, ids.map((_, i) => i));
  assertDeepEqual(
    new Set(Object.keys(vocab).filter((t) => vocab[t]! < 256)),
    new Set(byteLevelAlphabet()),
  );
  assertDeepEqual(
    trimmedJson.added_tokens.map((t) => t.id),
    specials.map((_, i) => ids.length + i),
  );
  assertEquals(merges.length, ids.length - 256);
  for (const m of merges) {
    const [a, b] = mergeParts(m);
    assert(a in vocab && b in vocab && a + b in vocab, `merge ${m}`);
  }
  assertEquals(trimmed.size, ids.length + specials.length);
});

Deno.test("models/brown-qwen2: special tokens are single tokens; eos and pad are added tokens", async () => {
  for (const s of specials) assertDeepEqual(trimmed.encode(s), [trimmed.tokenId(s)!]);
  const config = await readJson(`${trimmedDir}/tokenizer_config.json`);
  assertEquals(config.eos_token, "<|im_end|>");
  assertEquals(config.pad_token, "<|endoftext|>");
  for (const t of trimmedJson.added_tokens) {
    assertEquals(config.added_tokens_decoder[String(t.id)].content, t.content);
  }
  assertDeepEqual(trimmed.encode("a<|im_end|>\n"), [
    trimmed.tokenId("a")!,
    trimmed.tokenId("<|im_end|>")!,
    trimmed.tokenId("Ċ")!,
  ]);
});

Deno.test("models/brown-qwen2: decode(encode(text)) gives the NFC text back, corpus and arbitrary", async () => {
  for (const text of corpusSample) assertEquals(trimmed.decode(trimmed.encode(text)), text);
  const piece = fc.oneof(
    fc.string({ unit: "binary" }),
    fc.string({ unit: "grapheme" }),
    fc.constantFrom(...specials, " ", "  ", "\n\n", "\t", "'s", "The", " jury", "é", "e\u0301"),
  );
  await assertProperty(
    fc.property(fc.array(piece, { maxLength: 8 }), (pieces) => {
      const text = pieces.join("");
      assertEquals(trimmed.decode(trimmed.encode(text)), normalizedAroundSpecials(text));
    }),
    300,
  );
});

Deno.test({
  name: "models/brown-qwen2 emits the full Qwen2.5 tokenizer's tokens on corpus text",
  ignore: !haveFull,
  fn: () => {
    for (const text of corpusSample) {
      assertDeepEqual(trimmedTokens(trimmed.encode(text)), fullTokens(full!.encode(text)), text);
    }
  },
});

Deno.test({
  name: "models/brown-qwen2 renders chats like Qwen2.5, to the same tokens",
  ignore: !haveFull,
  fn: () => {
    const chats: ChatMessage[][] = [
      [{ role: "user", content: "Who said it?" }],
      [
        { role: "system", content: "You write like a 1961 newspaper." },
        { role: "user", content: "The jury said what?" },
        { role: "assistant", content: 'It said "no evidence" was found.' },
      ],
      [{ role: "user", content: "Hello" }, { role: "assistant", content: "Hi there!" }],
    ];
    for (const messages of chats) {
      for (const addGenerationPrompt of [false, true]) {
        const text = trimmed.applyChatTemplate(messages, { addGenerationPrompt });
        assertEquals(text, full!.applyChatTemplate(messages, { addGenerationPrompt }));
        assertDeepEqual(trimmedTokens(trimmed.encode(text)), fullTokens(full!.encode(text)));
      }
    }
    const tools = [{ type: "function", function: { name: "count", parameters: {} } }];
    const messages = [{ role: "user", content: "Count." }];
    assertEquals(
      trimmed.applyChatTemplate(messages, { tools }),
      full!.applyChatTemplate(messages, { tools }),
    );
  },
});

Deno.test({
  name: "trimTokenizer() on Qwen2.5 with the committed vocabulary rebuilds the committed files",
  ignore: !haveFull,
  fn: async () => {
    const source = await readJson(`${fullDir}/tokenizer.json`);
    const sourceConfig = await readJson(`${fullDir}/tokenizer_config.json`);
    const rebuilt = trimTokenizer(
      source,
      sourceConfig,
      new Set(Object.keys(trimmedJson.model.vocab)),
    );
    assertEquals(
      tokenizerJsonText(rebuilt.tokenizerJson),
      await Deno.readTextFile(`${trimmedDir}/tokenizer.json`),
    );
    assertEquals(
      tokenizerConfigText(rebuilt.tokenizerConfig),
      await Deno.readTextFile(`${trimmedDir}/tokenizer_config.json`),
    );
  },
});
