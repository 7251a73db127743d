// Training targets (qwen/targets.ts, DESIGN 3.5): parsing `--target`, the adapted modules of a
// target with their base weight shapes, and the parameters full fine-tuning trains.
import { expectedShapes, parseQwen2Config } from "../../qwen/config.ts";
import {
  fullTrainableNames,
  parseTarget,
  TargetError,
  targetModuleShapes,
  targetSuffixes,
} from "../../qwen/targets.ts";
import { assert, assertDeepEqual, assertEquals, assertThrows } from "../assert.ts";

/** The config of ../shared/golden/tiny-f32 (tied embeddings), inline. */
const tinyRaw = {
  hidden_size: 64,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 176,
  vocab_size: 384,
  num_hidden_layers: 2,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 128,
  tie_word_embeddings: true,
};
const tiny = parseQwen2Config(tinyRaw);
const untied = parseQwen2Config({ ...tinyRaw, tie_word_embeddings: false });

Deno.test("parseTarget() gives canonical names and groups, case-insensitively", () => {
  const cases: [string, string, string[]][] = [
    ["FFN", "FFN", ["FFN"]],
    ["ffn", "FFN", ["FFN"]],
    ["Att", "ATT", ["ATT"]],
    ["emb", "EMB", ["EMB"]],
    ["ATT+EMB", "ATT+EMB", ["ATT", "EMB"]],
    [" ffn + att ", "FFN+ATT", ["FFN", "ATT"]],
    ["emb+ffn+att", "EMB+FFN+ATT", ["EMB", "FFN", "ATT"]],
  ];
  for (const [text, name, groups] of cases) {
    const t = parseTarget(text);
    assertEquals(t.name, name, text);
    assertDeepEqual([...t.groups], groups, text);
    assertEquals(t.all, false, text);
  }
  for (const text of ["ALL", "all", " All "]) {
    const t = parseTarget(text);
    assertEquals(t.name, "ALL");
    assertDeepEqual([...t.groups].sort(), ["ATT", "EMB", "FFN"]);
    assertEquals(t.all, true);
  }
});

Deno.test("parseTarget() rejects unknown and repeated groups with a TargetError naming them", () => {
  for (const text of ["XYZ", "FFN+XYZ", "", "FFN+", "MLP", "ALL+FFN", "FFN,ATT"]) {
    assertThrows(
      () => parseTarget(text),
      (e: unknown) => e instanceof TargetError && e.message.includes(`'${text}'`),
      `'${text}' was accepted`,
    );
  }
  for (const text of ["FFN+FFN", "att+ATT", "EMB+FFN+emb"]) {
    assertThrows(
      () => parseTarget(text),
      (e: unknown) => e instanceof TargetError && /twice/.test(e.message),
      `'${text}' was accepted`,
    );
  }
});

Deno.test("targetSuffixes() are PEFT's target_modules of each group", () => {
  assertDeepEqual(targetSuffixes(parseTarget("FFN")), ["gate_proj", "up_proj", "down_proj"]);
  assertDeepEqual(targetSuffixes(parseTarget("ATT")), ["q_proj", "k_proj", "v_proj", "o_proj"]);
  assertDeepEqual(targetSuffixes(parseTarget("EMB")), ["embed_tokens"]);
  assertDeepEqual(
    targetSuffixes(parseTarget("ALL")).sort(),
    [
      "down_proj",
      "embed_tokens",
      "gate_proj",
      "k_proj",
      "o_proj",
      "q_proj",
      "up_proj",
      "v_proj",
    ],
  );
});

Deno.test("targetModuleShapes() on tiny-f32: ATT 4, FFN 3 per layer, EMB 1, with base weight shapes", () => {
  const att = targetModuleShapes(tiny, parseTarget("ATT"));
  const ffn = targetModuleShapes(tiny, parseTarget("FFN"));
  const emb = targetModuleShapes(tiny, parseTarget("EMB"));
  assertEquals(att.size, 4 * 2);
  assertEquals(ffn.size, 3 * 2);
  assertDeepEqual([...emb], [["model.embed_tokens", [384, 64]]]);
  assertDeepEqual(att.get("model.layers.1.self_attn.q_proj"), [64, 64]);
  assertDeepEqual(att.get("model.layers.1.self_attn.k_proj"), [32, 64]);
  assertDeepEqual(att.get("model.layers.1.self_attn.v_proj"), [32, 64]);
  assertDeepEqual(att.get("model.layers.1.self_attn.o_proj"), [64, 64]);
  assertDeepEqual(ffn.get("model.layers.0.mlp.gate_proj"), [176, 64]);
  assertDeepEqual(ffn.get("model.layers.0.mlp.up_proj"), [176, 64]);
  assertDeepEqual(ffn.get("model.layers.0.mlp.down_proj"), [64, 176]);

  // every module's shape is its weight's shape in the checkpoint
  const weights = expectedShapes(tiny);
  const all = targetModuleShapes(tiny, parseTarget("ALL"));
  assertEquals(all.size, 8 + 6 + 1);
  for (const [module, shape] of all) {
    assertDeepEqual(weights.get(`${module}.weight`), shape, module);
  }
  // model order: the embedding, then each layer's attention before its MLP
  assertDeepEqual([...all.keys()].slice(0, 9), [
    "model.embed_tokens",
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.k_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.0.self_attn.o_proj",
    "model.layers.0.mlp.gate_proj",
    "model.layers.0.mlp.up_proj",
    "model.layers.0.mlp.down_proj",
    "model.layers.1.self_attn.q_proj",
  ]);
  assertDeepEqual(
    [...targetModuleShapes(tiny, parseTarget("FFN+EMB")).keys()].sort(),
    [...ffn.keys(), ...emb.keys()].sort(),
  );
});

Deno.test("fullTrainableNames() picks the target's weights and biases; ALL adds the norms, not lm_head", () => {
  const names = [...expectedShapes(untied).keys()];
  assert(names.includes("lm_head.weight"));
  const ffn = fullTrainableNames(names, parseTarget("FFN"));
  assertDeepEqual(ffn.sort(), [
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.0.mlp.up_proj.weight",
    "model.layers.1.mlp.down_proj.weight",
    "model.layers.1.mlp.gate_proj.weight",
    "model.layers.1.mlp.up_proj.weight",
  ]);
  const att = fullTrainableNames(names, parseTarget("ATT"));
  assertDeepEqual(att.filter((n) => n.startsWith("model.layers.0.")).sort(), [
    "model.layers.0.self_attn.k_proj.bias",
    "model.layers.0.self_attn.k_proj.weight",
    "model.layers.0.self_attn.o_proj.weight",
    "model.layers.0.self_attn.q_proj.bias",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.v_proj.bias",
    "model.layers.0.self_attn.v_proj.weight",
  ]);
  assertEquals(att.length, 14);
  assertDeepEqual(fullTrainableNames(names, parseTarget("EMB")), ["model.embed_tokens.weight"]);
  const all = fullTrainableNames(names, parseTarget("ALL"));
  assertDeepEqual(all.sort(), names.filter((n) => n !== "lm_head.weight").sort());
  for (const norm of ["model.norm.weight", "model.layers.1.post_attention_layernorm.weight"]) {
    assert(all.includes(norm), `ALL misses ${norm}`);
  }
  // a combination is the union of its groups, norms excluded
  assertDeepEqual(
    fullTrainableNames(names, parseTarget("ATT+FFN")).sort(),
    [...att, ...ffn].sort(),
  );
});
