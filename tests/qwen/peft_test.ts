// PEFT LoRA adapters: write → read round trips bit-exactly, a hand-written PEFT fixture (bare
// Qwen2Model names, bf16) loads with the right keys and values, and every bad input is one
// line naming the file and field.
import { parseQwen2Config } from "../../qwen/config.ts";
import {
  AdapterError,
  checkAdapterAgainstModel,
  isTargeted,
  type LoraConfig,
  type LoraParams,
  loraRank,
  loraScale,
  readAdapter,
  writeAdapter,
} from "../../qwen/peft.ts";
import { tensor } from "../../tensor/create.ts";
import { Rng } from "../../tensor/random.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { SafetensorsFile, writeSafetensors } from "../../tensor/safetensors.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assert, assertDeepEqual, assertEquals, assertRejects, assertThrows } from "../assert.ts";

const device = referenceDevice;
const fixtureDir = new URL("../fixtures/peft-adapter", import.meta.url).pathname;

/** The config of ../shared/golden/tiny-f32, inline so these tests need no golden files. */
const tinyF32 = parseQwen2Config({
  hidden_size: 64,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 176,
  vocab_size: 384,
  num_hidden_layers: 2,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 128,
  tie_word_embeddings: true,
});

/** Random finite f32 bit patterns (subnormals, ±0 and all exponents included). */
function randomF32(rng: Rng, n: number): Float32Array {
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let u: number;
    do u = rng.nextU32(); while ((u & 0x7f800000) === 0x7f800000);
    bits[i] = u;
  }
  return new Float32Array(bits.buffer);
}

function bytesOf(values: Float32Array | Float64Array | Int32Array): Uint8Array {
  const f32 = Float32Array.from(values);
  return new Uint8Array(f32.buffer);
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "peft_test_" });
}

const baseConfig: LoraConfig = {
  r: 4,
  loraAlpha: 16,
  loraDropout: 0.05,
  useRslora: true,
  targetModules: ["q_proj", "v_proj", "down_proj", "embed_tokens"],
  baseModelNameOrPath: "Qwen/Qwen2.5-0.5B",
};

/** Random A/B of rank r for every module baseConfig targets in tiny-f32. */
function randomParams(rng: Rng, r: number): LoraParams {
  const shapes: [string, number[], number[]][] = [["model.embed_tokens", [r, 384], [64, r]]];
  for (let l = 0; l < 2; l++) {
    const p = `model.layers.${l}.`;
    shapes.push([`${p}self_attn.q_proj`, [r, 64], [64, r]]);
    shapes.push([`${p}self_attn.v_proj`, [r, 64], [32, r]]);
    shapes.push([`${p}mlp.down_proj`, [r, 176], [64, r]]);
  }
  const params: LoraParams = {};
  for (const [module, a, b] of shapes) {
    params[module] = {
      A: tensor(randomF32(rng, a[0]! * a[1]!), a, { device }),
      B: tensor(randomF32(rng, b[0]! * b[1]!), b, { device }),
    };
  }
  return params;
}

Deno.test("writeAdapter() then readAdapter() round-trips every bit", async () => {
  const dir = await tempDir();
  try {
    const params = randomParams(new Rng(7), 4);
    await writeAdapter(dir, params, baseConfig);
    const back = await readAdapter(dir, device);
    assertDeepEqual(back.config, baseConfig);
    assertDeepEqual(Object.keys(back.params).sort(), Object.keys(params).sort());
    for (const [module, { A, B }] of Object.entries(params)) {
      const got = back.params[module]!;
      assertDeepEqual(got.A.shape, A.shape);
      assertDeepEqual(got.B.shape, B.shape);
      assertEquals(got.A.dtype, "f32");
      assertDeepEqual(bytesOf(await got.A.data()), bytesOf(await A.data()), `${module} A`);
      assertDeepEqual(bytesOf(await got.B.data()), bytesOf(await B.data()), `${module} B`);
    }
    checkAdapterAgainstModel(back.params, back.config, tinyF32);
    // nothing temporary is left behind
    assertDeepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["adapter_config.json", "adapter_model.safetensors"],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeAdapter() writes PEFT's tensor names, dtypes and config fields", async () => {
  const dir = await tempDir();
  try {
    const params = randomParams(new Rng(1), 4);
    // a bf16 module stays bf16 in the file
    const q0 = params["model.layers.0.self_attn.q_proj"]!;
    params["model.layers.0.self_attn.q_proj"] = {
      A: tensor(await q0.A.data(), q0.A.shape, { device, dtype: "bf16" }),
      B: tensor(await q0.B.data(), q0.B.shape, { device, dtype: "bf16" }),
    };
    await writeAdapter(dir, params, {
      ...baseConfig,
      rankPattern: { "layers.1.mlp.down_proj": 4 },
    });
    using file = await SafetensorsFile.open(`${dir}/adapter_model.safetensors`);
    assertDeepEqual(file.metadata, { format: "pt" });
    const dtypes = Object.fromEntries([...file.tensors].map(([n, i]) => [n, i.dtype]));
    assertEquals(dtypes["base_model.model.model.embed_tokens.lora_embedding_A"], "F32");
    assertEquals(dtypes["base_model.model.model.embed_tokens.lora_embedding_B"], "F32");
    assertEquals(dtypes["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"], "BF16");
    assertEquals(dtypes["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"], "BF16");
    assertEquals(dtypes["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"], "F32");
    assertEquals(file.tensors.size, 14);
    const json = JSON.parse(await Deno.readTextFile(`${dir}/adapter_config.json`));
    assertDeepEqual(json, {
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: "Qwen/Qwen2.5-0.5B",
      bias: "none",
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layers_pattern: null,
      layers_to_transform: null,
      loftq_config: {},
      lora_alpha: 16,
      lora_dropout: 0.05,
      megatron_config: null,
      megatron_core: "megatron.core",
      modules_to_save: null,
      peft_type: "LORA",
      r: 4,
      rank_pattern: { "layers.1.mlp.down_proj": 4 },
      revision: null,
      target_modules: ["q_proj", "v_proj", "down_proj", "embed_tokens"],
      task_type: "CAUSAL_LM",
      use_dora: false,
      use_rslora: true,
    });
    const back = await readAdapter(dir, device);
    const q = back.params["model.layers.0.self_attn.q_proj"]!;
    assertEquals(q.A.dtype, "f32"); // upcast on load
    const want = params["model.layers.0.self_attn.q_proj"]!.A;
    assertDeepEqual(bytesOf(await q.A.data()), bytesOf(await want.data()));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeAdapter() replaces an existing adapter", async () => {
  const dir = await tempDir();
  try {
    await writeAdapter(dir, randomParams(new Rng(2), 4), baseConfig);
    const second = randomParams(new Rng(3), 2);
    await writeAdapter(dir, second, { ...baseConfig, r: 2 });
    const back = await readAdapter(dir, device);
    assertEquals(back.config.r, 2);
    const a = back.params["model.embed_tokens"]!.A;
    assertDeepEqual(bytesOf(await a.data()), bytesOf(await second["model.embed_tokens"]!.A.data()));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The fixture's value of element i of tensor `name` (see make_fixture.py). */
function fixtureValues(name: string, n: number): number[] {
  let s = 0;
  for (const c of name) s += c.charCodeAt(0);
  s %= 23;
  return Array.from({ length: n }, (_, i) => (((i * 7 + s) % 23) - 11) / 32);
}

Deno.test("readAdapter() loads a PEFT bare-model bf16 adapter with our keys", async () => {
  const { params, config } = await readAdapter(fixtureDir, device);
  assertDeepEqual(config, {
    r: 2,
    loraAlpha: 4,
    loraDropout: 0.05,
    useRslora: true,
    targetModules: ["v_proj", "embed_tokens", "q_proj"],
    baseModelNameOrPath: "tiny-f32",
  });
  assertEquals(loraScale(config, "model.layers.0.self_attn.q_proj"), 4 / Math.sqrt(2));
  assertDeepEqual(Object.keys(params).sort(), [
    "model.embed_tokens",
    "model.layers.0.self_attn.q_proj",
    "model.layers.0.self_attn.v_proj",
    "model.layers.1.self_attn.q_proj",
    "model.layers.1.self_attn.v_proj",
  ]);
  const expect: [string, string, Tensor, number[]][] = [
    [
      "model.embed_tokens",
      "base_model.model.embed_tokens.lora_embedding_A",
      params["model.embed_tokens"]!.A,
      [2, 384],
    ],
    [
      "model.embed_tokens",
      "base_model.model.embed_tokens.lora_embedding_B",
      params["model.embed_tokens"]!.B,
      [64, 2],
    ],
  ];
  for (const l of [0, 1]) {
    for (const [proj, out] of [["q_proj", 64], ["v_proj", 32]] as const) {
      const m = params[`model.layers.${l}.self_attn.${proj}`]!;
      const p = `base_model.model.layers.${l}.self_attn.${proj}`;
      expect.push([proj, `${p}.lora_A.weight`, m.A, [2, 64]]);
      expect.push([proj, `${p}.lora_B.weight`, m.B, [out, 2]]);
    }
  }
  for (const [, name, t, shape] of expect) {
    assertDeepEqual(t.shape, shape, name);
    assertEquals(t.dtype, "f32");
    assertDeepEqual(await t.array(), fixtureValues(name, shape[0]! * shape[1]!), name);
  }
  checkAdapterAgainstModel(params, config, tinyF32, fixtureDir);
});

/** Copy the fixture to a temp dir with its config changed by `edit`. */
async function editedFixture(edit: (c: Record<string, unknown>) => void): Promise<string> {
  const dir = await tempDir();
  const json = JSON.parse(await Deno.readTextFile(`${fixtureDir}/adapter_config.json`));
  edit(json);
  await Deno.writeTextFile(`${dir}/adapter_config.json`, JSON.stringify(json));
  await Deno.copyFile(
    `${fixtureDir}/adapter_model.safetensors`,
    `${dir}/adapter_model.safetensors`,
  );
  return dir;
}

Deno.test("readAdapter() resolves a target_modules regex (full match) to the modules it meant", async () => {
  const dir = await editedFixture((c) => {
    c.target_modules = String.raw`.*\.(q|v)_proj|embed_tokens`;
  });
  try {
    const { params, config } = await readAdapter(dir, device);
    assertDeepEqual(config.targetModules, [
      "model.embed_tokens",
      "model.layers.0.self_attn.q_proj",
      "model.layers.0.self_attn.v_proj",
      "model.layers.1.self_attn.q_proj",
      "model.layers.1.self_attn.v_proj",
    ]);
    assert(isTargeted(config, "model.layers.1.self_attn.v_proj"));
    assert(!isTargeted(config, "model.layers.1.self_attn.k_proj"));
    checkAdapterAgainstModel(params, config, tinyF32);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // fullmatch: `q_proj` alone does not match `layers.0.self_attn.q_proj`
  const partial = await editedFixture((c) => {
    c.target_modules = String.raw`q_proj|v_proj|embed_tokens`;
  });
  try {
    await assertOneLine(
      readAdapter(partial, device),
      `${partial}/adapter_config.json: field 'target_modules' does not match module ` +
        `'layers.0.self_attn.q_proj' found in adapter_model.safetensors`,
    );
  } finally {
    await Deno.remove(partial, { recursive: true });
  }
});

Deno.test("loraRank() and loraScale() follow rank_pattern and alpha_pattern as PEFT", () => {
  const config: LoraConfig = {
    ...baseConfig,
    r: 8,
    loraAlpha: 16,
    useRslora: false,
    rankPattern: { "layers.0.self_attn.q_proj": 4, "down_proj": 2 },
    alphaPattern: { "mlp\\..*": 8 },
  };
  assertEquals(loraRank(config, "model.layers.0.self_attn.q_proj"), 4);
  assertEquals(loraRank(config, "model.layers.10.self_attn.q_proj"), 8); // `.`-anchored
  assertEquals(loraScale(config, "model.layers.0.self_attn.q_proj"), 16 / 4);
  assertEquals(loraScale(config, "model.layers.3.mlp.down_proj"), 8 / 2);
  assertEquals(loraScale(config, "model.layers.3.mlp.up_proj"), 8 / 8);
  assertEquals(
    loraScale({ ...config, useRslora: true }, "model.layers.3.mlp.up_proj"),
    8 / Math.sqrt(8),
  );
});

async function assertOneLine(p: Promise<unknown>, message: string): Promise<void> {
  await assertRejects(p, (e: Error) => {
    assert(e instanceof AdapterError, `${e.name}: ${e.message}`);
    assertEquals(e.message, message);
    assert(!e.message.includes("\n"));
    return true;
  });
}

function throwsOneLine(f: () => void, message: string): void {
  assertThrows(f, (e: Error) => {
    assert(e instanceof AdapterError, `${e.name}: ${e.message}`);
    assertEquals(e.message, message);
    return true;
  });
}

Deno.test("readAdapter() names the file and field of each bad config", async () => {
  const cases: [(c: Record<string, unknown>) => void, string][] = [
    [(c) => delete c.r, "field 'r' is missing"],
    [(c) => c.r = 1.5, "field 'r' must be a positive integer, got 1.5"],
    [(c) => delete c.target_modules, "field 'target_modules' is missing"],
    [(c) => c.peft_type = "IA3", `field 'peft_type' must be "LORA", got "IA3"`],
    [(c) => c.lora_alpha = "16", `field 'lora_alpha' must be a positive number, got "16"`],
    [(c) => c.use_dora = true, "field 'use_dora' is true: DoRA adapters are not supported"],
    [
      (c) => c.fan_in_fan_out = true,
      "field 'fan_in_fan_out' is true: fan_in_fan_out is not supported",
    ],
    [(c) => c.bias = "all", `field 'bias' is "all": LoRA biases are not supported (only 'none')`],
    [
      (c) => c.modules_to_save = ["lm_head"],
      `field 'modules_to_save' is ["lm_head"]: modules_to_save is not supported`,
    ],
    [
      (c) => c.target_modules = "(q_proj",
      `field 'target_modules' is not a valid regular expression: "(q_proj"`,
    ],
    [
      (c) => c.target_modules = ["q_proj"],
      "field 'target_modules' does not match module 'embed_tokens' found in adapter_model.safetensors",
    ],
  ];
  for (const [edit, message] of cases) {
    const dir = await editedFixture(edit);
    try {
      await assertOneLine(readAdapter(dir, device), `${dir}/adapter_config.json: ${message}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  await assertOneLine(
    readAdapter("/nonexistent-adapter", device),
    "/nonexistent-adapter/adapter_config.json: file not found",
  );
});

/** An adapter dir with the fixture's config and these F32 tensors (values 0). */
async function adapterWith(shapes: Record<string, number[]>): Promise<string> {
  const dir = await editedFixture(() => {});
  const tensors = Object.fromEntries(
    Object.entries(shapes).map(([name, shape]) => [
      name,
      { dtype: "F32" as const, shape, data: new Float32Array(shape[0]! * shape[1]!) },
    ]),
  );
  await writeSafetensors(`${dir}/adapter_model.safetensors`, tensors);
  return dir;
}

Deno.test("readAdapter() names the tensor and module of each bad weight file", async () => {
  const w = "adapter_model.safetensors";
  const cases: [Record<string, number[]>, string][] = [
    [
      { "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": [2, 64] },
      `tensor 'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight' missing for ` +
      `module 'model.layers.0.self_attn.q_proj'`,
    ],
    [
      {
        "base_model.model.layers.0.self_attn.q_proj.lora_A.weight": [4, 64],
        "base_model.model.layers.0.self_attn.q_proj.lora_B.weight": [64, 4],
      },
      "module 'model.layers.0.self_attn.q_proj' has A [4,64] and B [64,4]; " +
      "expected A [2,·] and B [·,2] for r 2",
    ],
    [
      { "base_model.model.layers.0.self_attn.q_proj.weight": [64, 64] },
      "tensor 'base_model.model.layers.0.self_attn.q_proj.weight' is not a PEFT LoRA weight " +
      "(base_model.model.<module>.lora_A.weight…)",
    ],
    [
      {
        "base_model.model.embed_tokens.lora_A.weight": [2, 384],
        "base_model.model.embed_tokens.lora_B.weight": [64, 2],
      },
      "module 'model.embed_tokens' has lora_A.weight, but it is an embedding " +
      "(expected lora_embedding_A)",
    ],
  ];
  for (const [shapes, message] of cases) {
    const dir = await adapterWith(shapes);
    try {
      await assertOneLine(readAdapter(dir, device), `${dir}/${w}: ${message}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("readAdapter() ignores the base embedding PEFT saves next to an embedding adapter", async () => {
  const dir = await adapterWith({
    "base_model.model.model.embed_tokens.base_layer.weight": [384, 64],
    "base_model.model.model.embed_tokens.lora_embedding_A": [2, 384],
    "base_model.model.model.embed_tokens.lora_embedding_B": [64, 2],
  });
  try {
    const { params } = await readAdapter(dir, device);
    assertDeepEqual(Object.keys(params), ["model.embed_tokens"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkAdapterAgainstModel() names the module and both shapes", async () => {
  const { params, config } = await readAdapter(fixtureDir, device);
  const zeros = (shape: number[]) =>
    tensor(new Float32Array(shape[0]! * shape[1]!), shape, { device });
  throwsOneLine(
    () =>
      checkAdapterAgainstModel(
        {
          ...params,
          "model.layers.1.self_attn.v_proj": { A: zeros([2, 64]), B: zeros([64, 2]) },
        },
        config,
        tinyF32,
      ),
    "adapter: module 'model.layers.1.self_attn.v_proj' B has shape [64,2], expected [32,2] " +
      "for base weight [32,64] and r 2",
  );
  throwsOneLine(
    () =>
      checkAdapterAgainstModel(
        {
          ...params,
          "model.embed_tokens": { A: zeros([2, 64]), B: zeros([384, 2]) },
        },
        config,
        tinyF32,
        "runs/x",
      ),
    "runs/x: module 'model.embed_tokens' A has shape [2,64], expected [2,384] " +
      "for base weight [384,64] and r 2",
  );
  throwsOneLine(
    () =>
      checkAdapterAgainstModel(
        {
          ...params,
          "model.layers.2.self_attn.q_proj": { A: zeros([2, 64]), B: zeros([64, 2]) },
        },
        config,
        tinyF32,
      ),
    "adapter: module 'model.layers.2.self_attn.q_proj' does not exist in the model",
  );
  const { "model.layers.1.self_attn.q_proj": _, ...missing } = params;
  throwsOneLine(
    () => checkAdapterAgainstModel(missing, config, tinyF32),
    "adapter: module 'model.layers.1.self_attn.q_proj' is matched by target_modules but has no adapter",
  );
  throwsOneLine(
    () => checkAdapterAgainstModel({}, { ...config, targetModules: ["qproj"] }, tinyF32),
    `adapter: target_modules ["qproj"] match no module of the model`,
  );
  // a shape map works as well as a config
  const shapes = new Map([["model.layers.0.self_attn.q_proj.weight", [64, 64]]]);
  checkAdapterAgainstModel(
    { "model.layers.0.self_attn.q_proj": params["model.layers.0.self_attn.q_proj"]! },
    config,
    shapes,
  );
});

Deno.test("writeAdapter() refuses modules its config does not target and wrong ranks", async () => {
  const dir = await tempDir();
  try {
    const params = randomParams(new Rng(4), 4);
    await assertOneLine(
      writeAdapter(dir, params, { ...baseConfig, targetModules: ["q_proj", "v_proj"] }),
      `writeAdapter: module 'model.embed_tokens' is not matched by target_modules ["q_proj","v_proj"]`,
    );
    await assertOneLine(
      writeAdapter(dir, params, { ...baseConfig, r: 2 }),
      "writeAdapter: module 'model.embed_tokens' has A [4,384] and B [64,4]; " +
        "expected A [2,·] and B [·,2] for r 2",
    );
    assertDeepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
