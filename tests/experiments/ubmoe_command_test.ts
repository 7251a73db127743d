// `deno task ubmoe build|train` (experiments/ubmoe.ts, DESIGN 3.6) on the default model:
// build → save → load round-trips with Qwen2-MoE names and the base's bytes in expert 0; a
// trained model differs from its input only in the routers; bad input is one line; the SFT
// labels cover exactly the assistant turns; a stopped and resumed router training ends with
// the routers of an uninterrupted one.
import { type SftExample, sftExample } from "../../experiments/chat_sft.ts";
import { trainRouters, type UbmoeTrainOptions } from "../../experiments/ubmoe_train_loop.ts";
import { mergeLora } from "../../nn/lora.ts";
import { treeFromNames } from "../../nn/params.ts";
import { loadQwen } from "../../qwen/checkpoint.ts";
import { expectedShapes, parseQwen2Config } from "../../qwen/config.ts";
import { type LoraConfig, type LoraParams, writeAdapter } from "../../qwen/peft.ts";
import { saveModelDir } from "../../qwen/save.ts";
import { type ChatMessage, QwenTokenizer } from "../../qwen/tokenizer.ts";
import { denseMlp, initRouters, routersOf } from "../../qwen/ubmoe.ts";
import { randomNormal, tensor } from "../../tensor/create.ts";
import { Rng } from "../../tensor/random.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { SafetensorsFile } from "../../tensor/safetensors.ts";
import { scope } from "../../tensor/scope.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { webgpuBackends } from "../backends.ts";
import { runScript } from "../commands.ts";

const modelDir = new URL("../../models/brown-qwen2", import.meta.url).pathname;
const baseRaw = JSON.parse(await Deno.readTextFile(`${modelDir}/config.json`));
const baseConfig = parseQwen2Config(baseRaw);
const tokenizer = await QwenTokenizer.load(modelDir);

// one working folder for the module, removed when the test process ends
const work = await Deno.makeTempDir({ prefix: "ubmoe-command-test-" });
globalThis.addEventListener("unload", () => Deno.removeSync(work, { recursive: true }));

/** Exit code 0 or a failure that shows the command's output. */
function assertOk(r: { code: number; stdout: string; stderr: string }, what: string): void {
  assertEquals(r.code, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
}

const ffnLora: LoraConfig = {
  r: 4,
  loraAlpha: 8,
  loraDropout: 0,
  useRslora: false,
  targetModules: ["gate_proj", "up_proj", "down_proj"],
  baseModelNameOrPath: null,
};

/** Random A and B (B is not zero, so expert 1 differs from expert 0) for every `targets` module. */
function randomLora(targets: readonly string[], seed: number): LoraParams {
  const rng = new Rng(seed);
  const shapes = expectedShapes(baseConfig);
  const params: LoraParams = {};
  for (const [name, shape] of shapes) {
    const module = name.replace(/\.weight$/, "");
    if (!targets.some((t) => module.endsWith(`.${t}`))) continue;
    const [out, inn] = shape as [number, number];
    const draw = (s: number[], std: number) =>
      tensor(Float32Array.from({ length: s[0]! * s[1]! }, () => std * rng.normal()), s, {
        device: referenceDevice,
      });
    params[module] = { A: draw([4, inn], 0.1), B: draw([out, 4], 0.1) };
  }
  return params;
}

const adapterDir = `${work}/adapter`;
const adapter = randomLora(ffnLora.targetModules, 7);
await writeAdapter(adapterDir, adapter, ffnLora);

/** The UBMoE built from the default model and the FFN adapter (built once, on first use). */
let builtPromise: Promise<{ dir: string; stdout: string }> | null = null;
function built(): Promise<{ dir: string; stdout: string }> {
  builtPromise ??= (async () => {
    const dir = `${work}/ubmoe`;
    const r = await runScript("ubmoe.ts", [
      "build",
      "--base",
      modelDir,
      "--adapter",
      adapterDir,
      "--out",
      dir,
    ]);
    assertOk(r, "ubmoe build");
    return { dir, stdout: r.stdout };
  })();
  return builtPromise;
}

/** Every tensor of a safetensors file: dtype, shape and raw bytes. */
async function tensorBytes(
  path: string,
): Promise<Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>> {
  using f = await SafetensorsFile.open(path);
  const out = new Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>();
  for (const name of f.tensors.keys()) {
    const { info, bytes } = await f.read(name);
    out.set(name, { dtype: info.dtype, shape: [...info.shape], bytes });
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function f32Of(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
}

const layers = baseConfig.numHiddenLayers;
const projections = ["gate_proj", "up_proj", "down_proj"] as const;

Deno.test("ubmoe build writes Qwen2-MoE names, the base's bytes in expert 0 and the merged adapter in expert 1", async () => {
  const { dir, stdout } = await built();
  assert(stdout.includes(`UBMoE written to ${dir}`), stdout);
  const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  assertEquals(config.num_experts, 2);
  assertDeepEqual(config.architectures, ["UBMoEQwen2ForCausalLM"]);
  assertEquals(config.model_type, "ubmoe_qwen2");
  assertEquals(config.num_experts_per_tok, 1);
  assertEquals(config.norm_topk_prob, false);
  assertEquals(config.router_aux_loss_coef, 0);
  // every field of the base is kept (architecture, dtype, token ids)
  for (const [k, v] of Object.entries(baseRaw)) {
    if (k !== "architectures" && k !== "model_type") assertDeepEqual(config[k], v, k);
  }
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    assert(
      sameBytes(await Deno.readFile(`${dir}/${f}`), await Deno.readFile(`${modelDir}/${f}`)),
      `${f} is not the base's`,
    );
  }

  // it loads, as a mixture of experts
  const model = await loadQwen(dir, referenceDevice);
  assertDeepEqual(model.config.moe, {
    numExperts: 2,
    numExpertsPerTok: 1,
    normTopkProb: false,
    routerAuxLossCoef: 0,
  });
  assertEquals(routersOf(model.params).length, layers);

  const saved = await tensorBytes(`${dir}/model.safetensors`);
  const base = await tensorBytes(`${modelDir}/model.safetensors`);
  const names = [...saved.keys()].sort();
  assertDeepEqual(names, [...expectedShapes(model.config).keys()].sort());
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.mlp.`;
    for (const e of [0, 1]) {
      for (const proj of projections) assert(saved.has(`${p}experts.${e}.${proj}.weight`));
    }
    const router = saved.get(`${p}gate.weight`)!;
    assertEquals(router.dtype, "F32");
    assertDeepEqual(router.shape, [2, baseConfig.hiddenSize]);
  }
  // expert 0 and everything outside the MLPs are the base's bytes
  for (const [name, t] of saved) {
    const m = name.match(/^(model\.layers\.\d+\.mlp\.)(?:experts\.(\d)\.)?(.*)$/);
    if (m && (m[2] !== "0")) continue;
    const baseName = m ? `${m[1]}${m[3]}` : name;
    const b = base.get(baseName)!;
    assert(b, `${name}: no base tensor ${baseName}`);
    assertEquals(t.dtype, b.dtype, name);
    assert(sameBytes(t.bytes, b.bytes), `${name} differs from the base's ${baseName}`);
  }
  // expert 1 is the base MLP with the adapter merged (f32); the routers are the seed-0 draw
  const baseModel = await loadQwen(modelDir, referenceDevice);
  const merged = scope(() => mergeLora(baseModel.params, adapter, ffnLora));
  const routers = initRouters(baseConfig, 0, referenceDevice);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.mlp.`;
    const mlp = denseMlp(merged, l);
    for (const proj of projections) {
      const t = saved.get(`${p}experts.1.${proj}.weight`)!;
      assertEquals(t.dtype, "F32");
      const want = await mlp[proj].weight.data();
      const got = f32Of(t.bytes);
      assert(got.every((v, i) => v === want[i]), `${p}experts.1.${proj} is not the merged weight`);
      const e0 = await denseMlp(baseModel.params, l)[proj].weight.data();
      assert(got.some((v, i) => Math.abs(v - e0[i]!) > 1e-4), `${p}experts.1.${proj} is expert 0`);
    }
    const r = await routers[l]!.data();
    assert(f32Of(saved.get(`${p}gate.weight`)!.bytes).every((v, i) => v === r[i]), `${p}gate`);
  }
});

/** Short conversations of the Qwen chat format. */
const conversations: ChatMessage[][] = [
  [
    { role: "user", content: "What did the farmer sell?" },
    { role: "assistant", content: "He sold his cattle at the market." },
  ],
  [
    { role: "system", content: "You answer briefly." },
    { role: "user", content: "Where did the ship go?" },
    { role: "assistant", content: "It left the harbor." },
  ],
  [
    { role: "user", content: "Who rang the bells?" },
    { role: "assistant", content: "The church bells rang at noon." },
    { role: "user", content: "Why?" },
    { role: "assistant", content: "It was midday." },
  ],
  [
    { role: "user", content: "Tell me about the storm." },
    { role: "assistant", content: "A storm broke over the hills." },
  ],
];

const chatFile = `${work}/chat.jsonl`;
await Deno.writeTextFile(
  chatFile,
  [
    ...conversations.map((messages) => JSON.stringify({ messages })),
    JSON.stringify({ messages: [{ role: "user", content: "No answer here." }] }),
    JSON.stringify({ text: "a plain text row" }),
  ].join("\n") + "\n",
);

Deno.test("ubmoe train changes only the routers: every other tensor keeps its bytes", async () => {
  const { dir } = await built();
  const out = `${work}/trained`;
  const r = await runScript("ubmoe.ts", [
    "train",
    "--model",
    dir,
    "--data",
    chatFile,
    "--out",
    out,
    "--steps",
    "2",
    "--batch",
    "2",
    "--warmup",
    "0",
    "--lr",
    "1e-2",
    "--max-tokens",
    "48",
    "--log-every",
    "1",
  ]);
  assertOk(r, "ubmoe train");
  // the rows without an assistant turn and the text row are skipped and counted
  assert(
    r.stderr.includes("ubmoe train: skipped rows: 1 without an assistant turn, 1 not chat rows"),
    r.stderr,
  );
  assert(r.stderr.includes("4 conversations"), r.stderr);
  assertDeepEqual(
    JSON.parse(await Deno.readTextFile(`${out}/config.json`)),
    JSON.parse(await Deno.readTextFile(`${dir}/config.json`)),
  );
  const before = await tensorBytes(`${dir}/model.safetensors`);
  const after = await tensorBytes(`${out}/model.safetensors`);
  assertDeepEqual([...after.keys()].sort(), [...before.keys()].sort());
  let routers = 0;
  for (const [name, t] of after) {
    const b = before.get(name)!;
    assertEquals(t.dtype, b.dtype, name);
    assertDeepEqual(t.shape, b.shape, name);
    if (/^model\.layers\.\d+\.mlp\.gate\.weight$/.test(name)) {
      routers++;
      assert(!sameBytes(t.bytes, b.bytes), `${name} did not train`);
    } else assert(sameBytes(t.bytes, b.bytes), `${name} changed in training`);
  }
  assertEquals(routers, layers);
  const log = (await Deno.readTextFile(`${out}/train_log.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l));
  assertDeepEqual(log.map((x) => x.step), [1, 2]);
  for (const x of log) {
    assert(Number.isFinite(x.loss) && x.loss > 0, `loss ${x.loss}`);
    assertEquals(x.biFraction.length, layers);
  }
});

/** A dense model directory of the base's architecture with other config fields, random weights. */
async function writeDenseModel(dir: string, changes: Record<string, unknown>): Promise<void> {
  const raw = { ...baseRaw, ...changes, torch_dtype: "float32" };
  const named = new Map<string, Tensor>();
  [...expectedShapes(parseQwen2Config(raw))].forEach(([name, shape], i) =>
    named.set(name, randomNormal(shape, { std: 0.02, seed: i, device: referenceDevice }))
  );
  await saveModelDir(dir, raw, treeFromNames(named), "float32");
}

/** The one error line of a failed command (and no stack trace). */
function errorLine(r: { code: number; stderr: string }, command: string): string {
  const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith(`${command}: error`));
  assertEquals(lines.length, 1, r.stderr);
  assert(!r.stderr.includes("    at "), `stack trace in: ${r.stderr}`);
  return lines[0]!;
}

Deno.test("ubmoe build refuses a mismatched or MoE model, an adapter without MLPs and --top-k 3 in one line", async () => {
  const { dir: ubmoeDir } = await built();
  const mismatched = `${work}/bi-mismatched`;
  await writeDenseModel(mismatched, { intermediate_size: 128 });
  const attnAdapter = `${work}/attn-adapter`;
  const attnConfig = { ...ffnLora, targetModules: ["q_proj"] };
  await writeAdapter(attnAdapter, randomLora(["q_proj"], 3), attnConfig);
  const out = `${work}/never`;
  const cases: [string[], number, string][] = [
    [["--bi", mismatched], 1, `${mismatched}: intermediate_size is 128, the base has 256`],
    [["--bi", ubmoeDir], 1, `${ubmoeDir} is already a mixture of experts`],
    [
      ["--base", ubmoeDir, "--adapter", adapterDir],
      1,
      `${ubmoeDir}: the base is already a mixture of experts`,
    ],
    [["--adapter", attnAdapter], 1, `${attnAdapter}: the adapter does not adapt any MLP`],
    [["--adapter", adapterDir, "--top-k", "3"], 2, "--top-k must be 1 or 2 (two experts), got 3"],
    [["--adapter", adapterDir, "--bi", mismatched], 2, "give exactly one of --bi or --adapter"],
    [[], 2, "give exactly one of --bi or --adapter"],
  ];
  for (const [args, code, message] of cases) {
    const r = await runScript("ubmoe.ts", ["build", "--out", out, ...args]);
    assertEquals(r.code, code, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
    const line = errorLine(r, "ubmoe build");
    assert(line.startsWith(`ubmoe build: error: ${message}`), `${args.join(" ")}: ${line}`);
  }
  assert(!(await Deno.stat(out).then(() => true, () => false)), "a refused build wrote --out");
});

Deno.test("ubmoe train refuses a dense model and a file without usable chat rows in one line", async () => {
  const { dir } = await built();
  const noAssistant = `${work}/no-assistant.jsonl`;
  await Deno.writeTextFile(
    noAssistant,
    [
      JSON.stringify({ messages: [{ role: "user", content: "Hello?" }] }),
      JSON.stringify({
        messages: [{ role: "system", content: "Be kind." }, { role: "user", content: "Hi." }],
      }),
    ].join("\n") + "\n",
  );
  const out = `${work}/never-trained`;
  const cases: [string[], number, string][] = [
    [["--model", modelDir, "--data", chatFile], 1, `${modelDir}: not a mixture of experts`],
    [["--model", dir, "--data", noAssistant], 1, `${noAssistant}: no usable chat rows`],
    [
      ["--model", dir, "--data", chatFile, "--steps", "2", "--warmup", "5"],
      2,
      "--warmup (5) exceeds --steps",
    ],
  ];
  for (const [args, code, message] of cases) {
    const r = await runScript("ubmoe.ts", ["train", "--out", out, ...args]);
    assertEquals(r.code, code, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
    const line = errorLine(r, "ubmoe train");
    assert(line.startsWith(`ubmoe train: error: ${message}`), `${args.join(" ")}: ${line}`);
    if (args.includes(noAssistant)) {
      assert(r.stderr.includes("skipped rows: 2 without an assistant turn"), r.stderr);
    }
  }
});

// ---- SFT examples -----------------------------------------------------------------------

/** The runs of consecutive labelled positions, as [start, end) pairs. */
function labelledRuns(labels: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  labels.forEach((l, i) => {
    if (l === -100) return;
    const last = runs.at(-1);
    if (last && last[1] === i) last[1] = i + 1;
    else runs.push([i, i + 1]);
  });
  return runs;
}

Deno.test("sftExample() labels exactly each assistant turn's content and <|im_end|>", () => {
  for (const messages of conversations) {
    const e = sftExample(tokenizer, messages, 1024)!;
    assert(e !== null);
    assertEquals(e.labels.length, e.ids.length);
    // the ids are the whole rendered conversation
    assertEquals(tokenizer.decode(e.ids), tokenizer.applyChatTemplate(messages));
    // a labelled token is its own id (the loss shifts), every other one is −100
    e.labels.forEach((l, i) => assert(l === -100 || l === e.ids[i], `label ${i}: ${l}`));
    const runs = labelledRuns(e.labels);
    const assistant = messages.filter((m) => m.role === "assistant");
    assertEquals(runs.length, assistant.length, `${runs.length} labelled runs`);
    runs.forEach(([start, end], j) =>
      assertEquals(tokenizer.decode(e.ids.slice(start, end)), `${assistant[j]!.content}<|im_end|>`)
    );
    // the assistant header just before each run stays unlabelled
    for (const [start] of runs) {
      assert(tokenizer.decode(e.ids.slice(0, start)).endsWith("<|im_start|>assistant\n"));
    }
  }
});

Deno.test("sftExample() is null without an assistant turn, and truncates to maxTokens", () => {
  assertEquals(sftExample(tokenizer, [{ role: "user", content: "Hello?" }], 512), null);
  assertEquals(
    sftExample(tokenizer, [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hello?" },
    ], 512),
    null,
  );
  const messages = conversations[2]!;
  const full = sftExample(tokenizer, messages, 1024)!;
  const cut = 5 + labelledRuns(full.labels)[0]![0];
  const truncated = sftExample(tokenizer, messages, cut)!;
  assertDeepEqual(truncated.ids, full.ids.slice(0, cut));
  assertDeepEqual(truncated.labels, full.labels.slice(0, cut));
  // cut before the first assistant token: nothing left to learn
  const first = labelledRuns(full.labels)[0]![0];
  assertEquals(sftExample(tokenizer, messages, first), null);
});

// ---- resume -----------------------------------------------------------------------------

const device = webgpuBackends[0] ?? referenceDevice;

Deno.test(`trainRouters() stopped after step 2 and resumed ends with the uninterrupted routers on ${device.name}`, async () => {
  const { dir } = await built();
  const model = await loadQwen(dir, device);
  const examples = conversations.map((m) => sftExample(tokenizer, m, 48)) as SftExample[];
  const o: UbmoeTrainOptions = {
    lr: 1e-2,
    steps: 3,
    batch: 2, // 2 batches per epoch: step 3 starts a second, reshuffled epoch
    warmup: 1,
    maxTokens: 48,
    auxLossCoef: 0.01,
    seed: 4,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    clip: 1,
    saveEvery: 0,
    logEvery: 2,
    dataId: "4 test conversations",
    modelId: dir,
  };
  const whole = `${work}/resume-whole`, split = `${work}/resume-split`;
  const a = await trainRouters(model, examples, o, whole, device, false);
  assertEquals(a.steps, 3);
  assert(!a.stopped);
  // the loop trains copies: the caller's model keeps its routers
  assert(
    routersOf(model.params).every((r) => r.alive),
    "trainRouters disposed the model's routers",
  );
  let calls = 0;
  const first = await trainRouters(model, examples, o, split, device, false, {
    shouldStop: () => ++calls === 2,
  });
  assert(first.stopped, "the run did not stop");
  assertEquals(first.steps, 2);
  assertEquals(JSON.parse(await Deno.readTextFile(`${split}/train_state.json`)).step, 2);
  const b = await trainRouters(model, examples, o, split, device, true);
  assertEquals(b.steps, 3);
  assert(!b.stopped);
  const initial = routersOf(model.params);
  for (let l = 0; l < layers; l++) {
    const ra = await a.routers[l]!.data(), rb = await b.routers[l]!.data();
    assert(ra.every((v, i) => v === rb[i]), `layer ${l}: resumed routers differ`);
    const r0 = await initial[l]!.data();
    assert(ra.some((v, i) => v !== r0[i]), `layer ${l}: the router did not train`);
  }
  const records = async (out: string) =>
    (await Deno.readTextFile(`${out}/train_log.jsonl`)).trim().split("\n").map((l) => {
      const { seconds: _, ...rest } = JSON.parse(l);
      return rest;
    });
  const wholeLog = await records(whole);
  assertEquals(wholeLog.length, 3);
  assertDeepEqual(await records(split), wholeLog);
});
