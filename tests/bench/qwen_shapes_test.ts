// The random-weight Qwen2.5 checkpoints: every size's headers (written sparse) pass the
// checkpoint checks, shard as the Hugging Face repositories do and hold exactly the published
// parameter counts; a tiny real write loads on the reference backend with finite bf16 values.
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { loadQwen, openQwenCheckpoint } from "../../qwen/checkpoint.ts";
import { parseQwen2Config } from "../../qwen/config.ts";
import { namesFromTree } from "../../nn/params.ts";
import { bf16BitsToF32 } from "../../tensor/dtype.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { SafetensorsFile } from "../../tensor/safetensors.ts";
import { qwenSizes, writeQwenShape } from "../../bench/qwen_shapes.ts";

/**
 * The Qwen2.5 base models' config.json values, exact parameter counts (`num_parameters()` of
 * the Hugging Face models; half the index's total_size) and how many files their repositories
 * have.
 */
const published = {
  "0.5b": { h: 896, i: 4864, n: 24, heads: 14, kv: 2, v: 151936, tie: true, params: 494032768 },
  "1.5b": { h: 1536, i: 8960, n: 28, heads: 12, kv: 2, v: 151936, tie: true, params: 1543714304 },
  "3b": { h: 2048, i: 11008, n: 36, heads: 16, kv: 2, v: 151936, tie: true, params: 3085938688 },
  "7b": { h: 3584, i: 18944, n: 28, heads: 28, kv: 4, v: 152064, tie: false, params: 7615616512 },
  "14b": {
    h: 5120,
    i: 13824,
    n: 48,
    heads: 40,
    kv: 8,
    v: 152064,
    tie: false,
    params: 14770033664,
  },
} as const;
const hfFiles = { "0.5b": 1, "1.5b": 1, "3b": 2, "7b": 4, "14b": 8 } as const;

/** Qwen2's parameter count from its config, written out: the generator must agree with it. */
function qwen2Params(
  c: { h: number; i: number; n: number; heads: number; kv: number; v: number; tie: boolean },
) {
  const kvDim = c.kv * (c.h / c.heads);
  const attention = 2 * c.h * c.h + c.h + 2 * (kvDim * c.h + kvDim); // q, o; q bias; k, v + biases
  const layer = attention + 3 * c.h * c.i + 2 * c.h; // gate, up, down; two RMSNorms
  return c.v * c.h + c.n * layer + c.h + (c.tie ? 0 : c.v * c.h);
}

const layerTensors = [
  "self_attn.q_proj.weight",
  "self_attn.q_proj.bias",
  "self_attn.k_proj.weight",
  "self_attn.k_proj.bias",
  "self_attn.v_proj.weight",
  "self_attn.v_proj.bias",
  "self_attn.o_proj.weight",
  "mlp.gate_proj.weight",
  "mlp.up_proj.weight",
  "mlp.down_proj.weight",
  "input_layernorm.weight",
  "post_attention_layernorm.weight",
];

/** Every tensor of layers [from, to). */
const layerNames = (from: number, to: number) =>
  Array.from(
    { length: to - from },
    (_, k) => layerTensors.map((n) => `model.layers.${from + k}.${n}`),
  )
    .flat();

const silent = { log: () => {} };

async function safetensorsIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".safetensors")) names.push(e.name);
  return names.sort();
}

for (const size of qwenSizes) {
  Deno.test(`writeQwenShape(${size}, sparse) shards, sizes and configures as Hugging Face's Qwen2.5-${size.toUpperCase()}`, async () => {
    const want = published[size];
    assertEquals(qwen2Params(want), want.params, "the parameter formula matches the model card");
    const dir = await Deno.makeTempDir({ prefix: `qwen-shape-${size}-` });
    try {
      await writeQwenShape(size, dir, { sparse: true, ...silent });
      const { config, checkpoint } = await openQwenCheckpoint(dir);
      checkpoint.close();

      // config.json as parseQwen2Config reads it
      const fromFile = parseQwen2Config(JSON.parse(await Deno.readTextFile(`${dir}/config.json`)));
      assertDeepEqual(fromFile, config);
      assertEquals(config.hiddenSize, want.h);
      assertEquals(config.intermediateSize, want.i);
      assertEquals(config.numHiddenLayers, want.n);
      assertEquals(config.numAttentionHeads, want.heads);
      assertEquals(config.numKeyValueHeads, want.kv);
      assertEquals(config.headDim, size === "0.5b" ? 64 : 128);
      assertEquals(config.vocabSize, want.v);
      assertEquals(config.tieWordEmbeddings, want.tie);
      assertEquals(config.rmsNormEps, size === "14b" ? 1e-5 : 1e-6);
      assertEquals(config.ropeTheta, 1e6);
      assertEquals(config.maxPositionEmbeddings, 32768);
      assertEquals(config.torchDtype, "bfloat16");
      assertEquals(config.moe, undefined);

      // the files: HF's names and count, each at most 4 GB of tensor data
      const n = hfFiles[size];
      const pad = (k: number) => String(k).padStart(5, "0");
      const names = await safetensorsIn(dir);
      assertDeepEqual(
        names,
        n === 1
          ? ["model.safetensors"]
          : Array.from({ length: n }, (_, k) => `model-${pad(k + 1)}-of-${pad(n)}.safetensors`),
      );
      const fileOf = new Map<string, string>();
      let total = 0;
      for (const name of names) {
        using file = await SafetensorsFile.open(`${dir}/${name}`);
        let bytes = 0;
        for (const [tensor, info] of file.tensors) {
          assertEquals(info.dtype, "BF16", tensor);
          assertEquals(info.end - info.begin, 2 * info.shape.reduce((a, b) => a * b, 1), tensor);
          assert(!fileOf.has(tensor), `${tensor} is in ${fileOf.get(tensor)} and ${name}`);
          fileOf.set(tensor, name);
          bytes += info.end - info.begin;
        }
        assert(bytes <= 4e9, `${name}: ${bytes} bytes of tensors, over 4 GB`);
        total += bytes;
        // a sparse file is holes: its blocks hold the header, not the data
        const stat = await Deno.stat(`${dir}/${name}`);
        if (stat.blocks !== null) assert(stat.blocks * 512 < 1 << 20, `${name} uses disk`);
      }
      assertEquals(total, 2 * want.params);
      assertEquals(fileOf.size, [...checkpoint.names()].length);

      const lmHead = [...fileOf.keys()].includes("lm_head.weight");
      assertEquals(lmHead, !want.tie, "lm_head.weight is stored exactly when untied");
      if (lmHead) {
        using file = await SafetensorsFile.open(`${dir}/${fileOf.get("lm_head.weight")}`);
        assertDeepEqual(file.info("lm_head.weight")!.shape, [want.v, want.h]);
      }

      // the index: total_size and a weight_map naming every tensor once, in its own file
      const indexPath = `${dir}/model.safetensors.index.json`;
      const indexText = await Deno.readTextFile(indexPath).catch(() => null);
      if (n === 1) assertEquals(indexText, null, "a single file has no index");
      else {
        const index = JSON.parse(indexText!);
        assertEquals(index.metadata.total_size, total);
        assertDeepEqual(
          Object.entries(index.weight_map).sort(),
          [...fileOf.entries()].sort(),
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("writeQwenShape() with a tiny config writes ≥ 3 shards that loadQwen reads as finite bf16, norms 1", async () => {
  const configOverride = {
    hidden_size: 128,
    intermediate_size: 256,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 4096,
    tie_word_embeddings: false,
    max_window_layers: 4,
  };
  const maxBytes = 1 << 20; // embed_tokens alone, the layers in two files, lm_head alone
  const dir = await Deno.makeTempDir({ prefix: "qwen-shape-tiny-" });
  try {
    await writeQwenShape("0.5b", dir, { configOverride, maxShardBytes: maxBytes, ...silent });
    const names = await safetensorsIn(dir);
    assertEquals(names.length, 4);
    assertDeepEqual(names, [1, 2, 3, 4].map((k) => `model-0000${k}-of-00004.safetensors`));
    const stored = new Map<string, { file: string; bits: Uint16Array }>();
    for (const name of names) {
      using file = await SafetensorsFile.open(`${dir}/${name}`);
      const bytes = [...file.tensors.values()].reduce((a, t) => a + t.end - t.begin, 0);
      assert(bytes <= maxBytes || file.tensors.size === 1, `${name}: ${bytes} bytes`);
      for (const t of file.tensors.keys()) {
        stored.set(t, { file: name, bits: new Uint16Array((await file.read(t)).bytes.buffer) });
      }
    }

    // greedy in state-dict order: a layer is 295,936 bytes, so layer 3's MLP spills over
    const [attention3, rest3] = [true, false].map((a) =>
      layerNames(3, 4).filter((n) => n.includes(".self_attn.") === a)
    );
    assertDeepEqual(
      names.map((name) => [...stored].filter(([, t]) => t.file === name).map(([n]) => n).sort()),
      [
        ["model.embed_tokens.weight"],
        [...layerNames(0, 3), ...attention3!],
        [...rest3!, "model.norm.weight"],
        ["lm_head.weight"],
      ].map((file) => file.sort()),
    );

    const model = await loadQwen(dir, referenceDevice);
    assertEquals(model.config.hiddenSize, 128);
    assertEquals(model.config.numHiddenLayers, 4);
    assertDeepEqual(model.params.lm_head?.weight.shape, [4096, 128]);
    const loaded = namesFromTree(model.params);
    assertDeepEqual([...loaded.keys()].sort(), [...stored.keys()].sort());
    assertEquals(loaded.size, 2 + 4 * 12 + 1, "embed, lm_head, 12 per layer, final norm");
    for (const [name, t] of loaded) {
      assertEquals(t.dtype, "bf16", name);
      const values = await t.data();
      const want = stored.get(name)!;
      assertEquals(values.length, want.bits.length, name);
      const isNorm = name.endsWith("norm.weight");
      let nonzero = 0, bad = -1;
      for (let k = 0; k < values.length; k++) {
        const x = values[k]!;
        const ok = x === bf16BitsToF32(want.bits[k]!) && Number.isFinite(x) &&
          (isNorm ? x === 1 : Math.abs(x) <= 0.0352);
        if (!ok && bad < 0) bad = k;
        if (x !== 0) nonzero++;
      }
      assertEquals(
        bad,
        -1,
        `${name}[${bad}] = ${values[bad]}, stored in ${want.file} as ${
          bf16BitsToF32(want.bits[bad] ?? 0)
        } (want finite, ${isNorm ? "1" : "|x| ≤ 0.035"})`,
      );
      assert(nonzero > values.length * 0.9, `${name}: ${nonzero} of ${values.length} nonzero`);
    }
    for (const t of loaded.values()) t.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
