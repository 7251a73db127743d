// `deno task dp --max-memory`: streamed runs write the in-memory run's JSON byte for byte,
// resume after a kill -9 in the middle of a streamed layer, and refuse budgets that cannot work.
import { assert, assertEquals } from "../assert.ts";
import { runScript } from "../commands.ts";
import { goldenDir, haveGolden } from "../golden.ts";
import { type TensorToWrite, writeSafetensors } from "../../tensor/safetensors.ts";
import { Rng } from "../../tensor/random.ts";

const root = new URL("../../", import.meta.url).pathname;
const dp = (args: string[]) => runScript("dp.ts", args);
/** The bundled model needs 3.4 MB for its longest prompt: this makes chunks of 1–3 samples. */
const tight = "3.6MB";

/** The JSON without the line naming the model (the same in both runs anyway). */
const json = async (path: string) => await Deno.readTextFile(path);

Deno.test("dp --max-memory streams layers and writes the in-memory JSON byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  const memory = await dp(["--per-layer", "--json", `${dir}/memory.json`]);
  assertEquals(memory.code, 0, memory.stderr);
  assert(!memory.stderr.includes("streaming"), memory.stderr);
  const streamed = await dp([
    "--per-layer",
    "--max-memory",
    tight,
    "--json",
    `${dir}/streamed.json`,
  ]);
  assertEquals(streamed.code, 0, streamed.stderr);
  const m = /streaming layers over (\d+) chunk/.exec(streamed.stderr);
  assert(m && Number(m[1]) > 3, streamed.stderr);
  assertEquals(await json(`${dir}/streamed.json`), await json(`${dir}/memory.json`));
  assertEquals(streamed.stdout, memory.stdout);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("dp --max-memory --resume after kill -9 in the middle of a streamed layer gives the same JSON", async () => {
  const dir = await Deno.makeTempDir();
  const whole = await dp(["--max-memory", tight, "--json", `${dir}/whole.json`]);
  assertEquals(whole.code, 0, whole.stderr);
  const out = `${dir}/killed.json`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}experiments/dp.ts`, "--max-memory", tight, "--json", out],
    env: { TENSOR_BACKEND: "reference" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  // kill as soon as the first chunk is in the cache: the next chunk is then inside a layer
  let cached = 0;
  for (let i = 0; i < 3000 && cached < 1; i++) {
    await new Promise((r) => setTimeout(r, 5));
    const text = await Deno.readTextFile(`${out}.samples.jsonl`).catch(() => "");
    cached = text.split("\n").filter((l) => l.trim()).length - 1;
  }
  child.kill("SIGKILL");
  await child.status;
  assert(cached >= 1 && cached < 24, `killed with ${cached} of 24 samples cached`);
  const resumed = await dp(["--max-memory", tight, "--json", out, "--resume"]);
  assertEquals(resumed.code, 0, resumed.stderr);
  assert(/resuming: \d+ of 24 samples already done/.test(resumed.stderr), resumed.stderr);
  assertEquals(await json(out), await json(`${dir}/whole.json`));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("dp refuses a budget below the smallest that works and a bad size", async () => {
  const small = await dp(["--max-memory", "1MB"]);
  assertEquals(small.code, 1);
  assert(
    /^dp: error: --max-memory 1\.0 MB is below the smallest budget that works for this model and data: 3\.\d MB \(two layers of .* and one 312-token sample\)$/m
      .test(small.stderr),
    small.stderr,
  );
  const bad = await dp(["--max-memory", "lots"]);
  assertEquals(bad.code, 2);
  assert(bad.stderr.includes("--max-memory must be a size like 4GB"), bad.stderr);
});

Deno.test({
  name: "dp names the shard of a checkpoint that is truncated, and writes nothing",
  ignore: !haveGolden,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const model = `${dir}/model`;
    await Deno.mkdir(model);
    for await (const f of Deno.readDir(`${goldenDir}tiny-f32-sharded`)) {
      await Deno.copyFile(`${goldenDir}tiny-f32-sharded/${f.name}`, `${model}/${f.name}`);
    }
    const shard = `${model}/model-00002-of-00002.safetensors`;
    await Deno.truncate(shard, (await Deno.stat(shard)).size - 100);
    await Deno.writeTextFile(`${dir}/rows.jsonl`, '{"input_ids": [1, 2, 3]}\n');
    for (const extra of [[], ["--max-memory", "100kB"]]) {
      const r = await dp([
        "--model",
        model,
        "--data",
        `${dir}/rows.jsonl`,
        "--json",
        `${dir}/out.json`,
        ...extra,
      ]);
      assertEquals(r.code, 1, r.stderr);
      assert(r.stderr.trim().split("\n").pop()!.startsWith(`dp: error: ${shard}:`), r.stderr);
      assert(!(await Deno.stat(`${dir}/out.json`).then(() => true, () => false)));
    }
    await Deno.remove(dir, { recursive: true });
  },
});

/** A random LoRA adapter (rsLoRA, r 2) on q_proj and v_proj of every layer of the bundled model. */
async function randomAdapter(dir: string, embedding = false): Promise<string> {
  const config = {
    peft_type: "LORA",
    r: 2,
    lora_alpha: 4,
    lora_dropout: 0,
    use_rslora: true,
    target_modules: ["q_proj", "v_proj", ...(embedding ? ["embed_tokens"] : [])],
    bias: "none",
  };
  await Deno.mkdir(`${dir}/adapter`);
  await Deno.writeTextFile(`${dir}/adapter/adapter_config.json`, JSON.stringify(config));
  const rng = new Rng(11);
  const random = (shape: number[]): TensorToWrite => ({
    dtype: "F32",
    shape,
    data: Float32Array.from({ length: shape[0]! * shape[1]! }, () => rng.normal() * 0.2),
  });
  const tensors: Record<string, TensorToWrite> = {};
  for (let l = 0; l < 4; l++) {
    for (const [m, out] of [["q_proj", 96], ["v_proj", 48]] as const) {
      const p = `base_model.model.model.layers.${l}.self_attn.${m}`;
      tensors[`${p}.lora_A.weight`] = random([2, 96]);
      tensors[`${p}.lora_B.weight`] = random([out, 2]);
    }
  }
  if (embedding) {
    tensors["base_model.model.model.embed_tokens.lora_embedding_A"] = random([2, 37824]);
    tensors["base_model.model.model.embed_tokens.lora_embedding_B"] = random([96, 2]);
  }
  await writeSafetensors(`${dir}/adapter/adapter_model.safetensors`, tensors);
  return `${dir}/adapter`;
}

Deno.test("dp --adapter merges into each streamed layer and writes the in-memory JSON byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  const adapter = await randomAdapter(dir);
  const run = (extra: string[], out: string) =>
    dp(["--max-samples", "8", "--per-layer", "--json", `${dir}/${out}`, ...extra]);
  const memory = await run(["--adapter", adapter], "memory.json");
  assertEquals(memory.code, 0, memory.stderr);
  const streamed = await run(["--adapter", adapter, "--max-memory", tight], "streamed.json");
  assertEquals(streamed.code, 0, streamed.stderr);
  assert(streamed.stderr.includes("merged into each layer as it is read"), streamed.stderr);
  assertEquals(await json(`${dir}/streamed.json`), await json(`${dir}/memory.json`));
  // the adapter changes the numbers: the merge is not skipped
  const plain = await run(["--max-memory", tight], "plain.json");
  assertEquals(plain.code, 0, plain.stderr);
  const dpA = async (f: string) => JSON.parse(await json(`${dir}/${f}`)).dp_after;
  assert(await dpA("plain.json") !== await dpA("streamed.json"));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("dp --adapter with an embedding LoRA asks for the model in memory when it streams", async () => {
  const dir = await Deno.makeTempDir();
  const adapter = await randomAdapter(dir, true);
  const memory = await dp(["--max-samples", "2", "--adapter", adapter]);
  assertEquals(memory.code, 0, memory.stderr);
  const emb = await dp(["--max-samples", "2", "--adapter", adapter, "--max-memory", tight]);
  assertEquals(emb.code, 1, emb.stderr);
  assert(emb.stderr.includes("is a LoRA on the embedding: raise --max-memory"), emb.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("score --stream (layers, then the final norm and LM head) writes the in-memory JSON byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  const rows = [
    { text: "The river ran past the old mill." },
    { input_ids: [5] },
    { input_ids: Array.from({ length: 600 }, (_, i) => 3 + ((i * 53) % 37000)) },
    { text: "She said nothing at all, and the morning light came over the water." },
  ];
  await Deno.writeTextFile(`${dir}/rows.jsonl`, rows.map((r) => JSON.stringify(r)).join("\n"));
  const score = (extra: string[], out: string) =>
    runScript("score.ts", [
      "--model",
      `${root}models/brown-qwen2`,
      "--data",
      `${dir}/rows.jsonl`,
      "--json",
      `${dir}/${out}`,
      ...extra,
    ]);
  const memory = await score([], "memory.json");
  assertEquals(memory.code, 0, memory.stderr);
  const streamed = await score(["--stream"], "streamed.json");
  assertEquals(streamed.code, 0, streamed.stderr);
  assert(
    streamed.stderr.includes("--stream: streaming layers over 1 chunk(s) of rows"),
    streamed.stderr,
  );
  assertEquals(await json(`${dir}/streamed.json`), await json(`${dir}/memory.json`));
  assertEquals(streamed.stdout, memory.stdout);
  const out = JSON.parse(await json(`${dir}/memory.json`));
  assertEquals(out.samples[2].logprobs.length, 599);
  await Deno.remove(dir, { recursive: true });
});
