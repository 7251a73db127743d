// resolveModel() through the commands: `--model org/name` read from a fake Hugging Face cache
// whose snapshot holds models/brown-qwen2 (files as symlinks into blobs), and the one-line
// error of every command when the id is not cached.
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { runScript } from "../commands.ts";
import { addSnapshot, repoDir, setRef } from "../fake_hub.ts";
import { goldenDir, haveGolden } from "../golden.ts";
import { applyAdapter } from "../../experiments/model.ts";
import { loadQwen, type QwenModel } from "../../qwen/checkpoint.ts";
import { referenceDevice } from "../../tensor/reference.ts";

const root = new URL("../../", import.meta.url).pathname;
const brown = `${root}models/brown-qwen2`;
const id = "test-org/brown-qwen2";
const [commit, decoy] = ["1".repeat(40), "2".repeat(40)];

/** The bundled model as snapshot `commit` of `id`, and a broken snapshot `decoy` beside it. */
async function cacheWithBrown(cache: string, mtimes: [number, number]): Promise<string> {
  const files: Record<string, Uint8Array<ArrayBuffer>> = {};
  for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]) {
    files[f] = await Deno.readFile(`${brown}/${f}`);
  }
  await addSnapshot(cache, id, decoy, { "config.json": "not a config" }, mtimes[1]);
  return await addSnapshot(cache, id, commit, files, mtimes[0]);
}

Deno.test("score --model org/name reads the snapshot refs/main names in HF_HOME/hub, scoring as the directory does", async () => {
  const tmp = await Deno.makeTempDir();
  // the decoy is newer: only refs/main leads to the real snapshot
  const snapshot = await cacheWithBrown(`${tmp}/hf-home/hub`, [1_000_000, 2_000_000]);
  await setRef(`${tmp}/hf-home/hub`, id, "main", commit);
  await Deno.writeTextFile(
    `${tmp}/rows.jsonl`,
    '{"text": "The river ran past the old mill."}\n{"text": "She said nothing at all."}\n',
  );
  const env = { HF_HUB_CACHE: "", HUGGINGFACE_HUB_CACHE: "", HF_HOME: `${tmp}/hf-home` };
  const score = (model: string, out: string) =>
    runScript("score.ts", ["--model", model, "--data", `${tmp}/rows.jsonl`, "--json", out], env);
  const cached = await score(id, `${tmp}/cached.json`);
  assertEquals(cached.code, 0, cached.stderr);
  assertEquals(cached.stderr.trim().split("\n")[0], `score: model ${id} → ${snapshot}`);
  const direct = await score(brown, `${tmp}/direct.json`);
  assertEquals(direct.code, 0, direct.stderr);
  assert(!direct.stderr.includes("→"), direct.stderr);
  const a = JSON.parse(await Deno.readTextFile(`${tmp}/cached.json`));
  const b = JSON.parse(await Deno.readTextFile(`${tmp}/direct.json`));
  assert(a.samples[0].n_tokens > 3, "text rows went through the cached tokenizer.json");
  assertDeepEqual([a.model, a.model_dir, b.model, b.model_dir], [id, snapshot, brown, undefined]);
  for (const x of [a, b]) delete x.model, delete x.model_dir; // where the model came from
  assertDeepEqual(a, b);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("dp --model org/name without refs/main takes the newest snapshot, says so, and records id and snapshot", async () => {
  const tmp = await Deno.makeTempDir();
  const cache = `${tmp}/hub`;
  const snapshot = await cacheWithBrown(cache, [2_000_000, 1_000_000]);
  const r = await runScript("dp.ts", [
    "--model",
    id,
    "--max-samples",
    "2",
    "--max-tokens",
    "32",
    "--json",
    `${tmp}/dp.json`,
    "--heatmap",
    `${tmp}/dp.svg`,
  ], { HF_HUB_CACHE: cache });
  assertEquals(r.code, 0, r.stderr);
  assert(
    r.stderr.includes(
      `dp: model ${id} → ${snapshot} (no ${repoDir(cache, id)}/refs/main; ` +
        "took the newest of 2 snapshots by modification time)\n",
    ),
    r.stderr,
  );
  const json = JSON.parse(await Deno.readTextFile(`${tmp}/dp.json`));
  assertDeepEqual([json.model, json.model_dir, json.samples], [id, snapshot, 2]);
  const cacheHeader = JSON.parse(
    (await Deno.readTextFile(`${tmp}/dp.json.samples.jsonl`)).split("\n")[0]!,
  );
  assertEquals(cacheHeader.model, snapshot);
  assert((await Deno.readTextFile(`${tmp}/dp.svg`)).includes("brown-qwen2 — sample 0"));
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("every model command fails with one line naming an uncached id and the path searched", async () => {
  const tmp = await Deno.makeTempDir();
  const absent = "Qwen/Qwen2.5-7B-Instruct";
  const searched = `${tmp}/models--Qwen--Qwen2.5-7B-Instruct`;
  const cases: [string, string[], string][] = [
    ["dp.ts", ["--model", absent], "dp"],
    ["score.ts", ["--model", absent, "--data", `${tmp}/rows.jsonl`], "score"],
    ["generate.ts", ["--model", absent, "--prompt", "hi"], "generate"],
    ["eval_sts.ts", ["--model", absent, "--max-rows", "1"], "eval-sts"],
    ["eval_mc.ts", ["--model", brown, "--model", absent, "--max-rows", "1"], "eval-mc"],
    ["train_embed.ts", ["--model", absent, "--out", `${tmp}/embed`], "train-embed"],
    ["ubmoe.ts", ["build", "--bi", absent, "--out", `${tmp}/ubmoe`], "ubmoe build"],
    ["ubmoe.ts", ["train", "--model", absent], "ubmoe train"],
    ["ubmoe.ts", ["inspect", "--model", absent], "ubmoe inspect"],
    ["report.ts", ["--model", absent, "--out", `${tmp}/report`], "report"],
  ];
  for (const [script, args, command] of cases) {
    const r = await runScript(script, args, { HF_HUB_CACHE: tmp });
    assertEquals(r.code, 1, `${command}: ${r.stderr}`);
    assertEquals(
      r.stderr,
      `${command}: error: model '${absent}' is neither a directory nor in the Hugging Face cache ` +
        `(searched ${searched}); this tool never downloads: fetch it with huggingface-cli ` +
        "download first\n",
    );
  }
  assertDeepEqual([...Deno.readDirSync(tmp)], [], "nothing was written");
  await Deno.remove(tmp, { recursive: true });
});

Deno.test({
  name:
    "applyAdapter() with consume merges the same values and frees each replaced base weight (dp --adapter)",
  ignore: !haveGolden,
  fn: async () => {
    const adapter = new URL("../fixtures/peft-adapter", import.meta.url).pathname;
    const keepBase = await loadQwen(`${goldenDir}tiny-f32`, referenceDevice, "dp");
    const consumed = await loadQwen(`${goldenDir}tiny-f32`, referenceDevice, "dp");
    const q = (m: QwenModel) => m.params.model.layers[0]!.self_attn.q_proj.weight;
    const baseQ = q(consumed), baseK = consumed.params.model.layers[0]!.self_attn.k_proj.weight;
    const a = await applyAdapter(keepBase, adapter);
    const b = await applyAdapter(consumed, adapter, { consume: true });
    for (const pick of [q, (m: QwenModel) => m.params.model.embed_tokens.weight]) {
      assertDeepEqual(Array.from(await pick(b).data()), Array.from(await pick(a).data()));
    }
    assert(!baseQ.alive, "the merged-away q_proj base weight is freed");
    assert(baseK.alive, "k_proj is not in the adapter: untouched");
    assert(q(keepBase).alive, "without consume the base stays usable");
  },
});
