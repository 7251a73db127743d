// The Qwen2.5 tokenizer and chat template reproduce ../shared/tokenizer's goldens exactly.
import { QwenTokenizer } from "../../qwen/tokenizer.ts";
import { assertDeepEqual, assertEquals } from "../assert.ts";

const dir = new URL("../../../shared/tokenizer/", import.meta.url).pathname;
const have = await Deno.stat(dir).then(() => true, () => false);
if (!have) console.warn("tokenizer_test: ../shared/tokenizer is absent; tokenizer goldens skipped");

const lines = async (name: string) =>
  (await Deno.readTextFile(`${dir}${name}`)).split("\n").filter((l) => l.trim()).map((l) =>
    JSON.parse(l)
  );

Deno.test({
  name: "QwenTokenizer.encode/decode reproduce every golden tokenisation",
  ignore: !have,
  fn: async () => {
    const tok = await QwenTokenizer.load(`${dir}qwen2.5`);
    for (const c of await lines("cases.jsonl")) {
      assertDeepEqual(tok.encode(c.text), c.ids, `case ${c.name}`);
      assertEquals(tok.decode(c.ids), c.decoded, `case ${c.name} (decode)`);
    }
  },
});

Deno.test({
  name: "QwenTokenizer.applyChatTemplate renders every golden chat exactly",
  ignore: !have,
  fn: async () => {
    const tok = await QwenTokenizer.load(`${dir}qwen2.5`);
    for (const c of await lines("chat_cases.jsonl")) {
      const text = tok.applyChatTemplate(c.messages, {
        addGenerationPrompt: c.add_generation_prompt,
        tools: c.tools,
      });
      assertEquals(text, c.text, `case ${c.name}`);
      assertDeepEqual(tok.encode(text), c.ids, `case ${c.name} (ids)`);
    }
    assertEquals(tok.tokenId("<|im_end|>"), 151645);
  },
});
