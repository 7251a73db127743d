// `deno task merge` end to end on the bundled model: for dp, score, eval-mc and eval-sts, the
// shards of a run (N = 1, 2, 3 over 5 units, so N need not divide the data set) merge into the
// single run's --json file byte for byte; every way a set of shards can be wrong is refused
// in one line with nothing written; dp's --resume works per shard.
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { runScript } from "../commands.ts";

const model = new URL("../../models/brown-qwen2", import.meta.url).pathname;

async function ok(script: string, args: string[]): Promise<string> {
  const r = await runScript(script, args);
  assertEquals(r.code, 0, `${script} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(path));

/**
 * Run `script args` once whole and as N = 1, 2, 3 shards, merge each set (given in reverse
 * order), and check every merge is the whole run's file byte for byte; returns the whole
 * run's JSON and the paths of the 3-shard outputs.
 */
async function shardsEqualSingle(
  dir: string,
  script: string,
  args: string[],
): Promise<{ single: any; shards3: string[] }> {
  await ok(script, [...args, "--json", `${dir}/single.json`]);
  const single = await Deno.readTextFile(`${dir}/single.json`);
  let shards3: string[] = [];
  for (const n of [1, 2, 3]) {
    const outs = Array.from({ length: n }, (_, i) => `${dir}/shard-${i}-of-${n}.json`);
    await Promise.all(
      outs.map((out, i) => ok(script, [...args, "--shard", `${i}/${n}`, "--json", out])),
    );
    for (const [i, out] of outs.entries()) {
      assertDeepEqual((await readJson(out)).shard, { index: i, count: n });
    }
    const merged = `${dir}/merged-${n}.json`;
    await ok("merge.ts", [merged, ...outs.toReversed()]);
    assertEquals(await Deno.readTextFile(merged), single, `${script}: ${n} shards merged`);
    if (n === 3) shards3 = outs;
  }
  return { single: JSON.parse(single), shards3 };
}

async function tempDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "merge-test-" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ids = (n: number, r: number) =>
  JSON.stringify({ input_ids: Array.from({ length: n }, (_, i) => 1 + ((r * 31 + i * 17) % 383)) });

/** 5 usable samples (lengths 3, 12 → 10, 5, 7, 2) around a malformed and an empty row. */
async function dpData(dir: string): Promise<string> {
  const rows = [ids(3, 0), ids(12, 1), "{ not json", ids(5, 2), ids(0, 3), ids(7, 4), ids(2, 5)];
  await Deno.writeTextFile(`${dir}/dp.jsonl`, rows.join("\n") + "\n");
  return `${dir}/dp.jsonl`;
}

const dpArgs = (data: string) => [
  "--model",
  model,
  "--data",
  data,
  "--buckets",
  "0,4,8",
  "--max-tokens",
  "10",
  "--per-layer",
];

Deno.test("dp: shards over the usable samples merge into the single run's JSON", async () => {
  await tempDir(async (dir) => {
    const { single, shards3 } = await shardsEqualSingle(dir, "dp.ts", dpArgs(await dpData(dir)));
    assertEquals(single.samples, 5);
    assertEquals(single.skipped_rows, 2);
    assertEquals(single.truncated, 1);
    // the 12-token sample (cut to 10) is alone beyond the last edge, in shard 1 of 3 only
    assertDeepEqual(single.buckets.map((b: any) => [b.range, b.count]), [
      [[0, 4], 2],
      [[4, 8], 2],
      [[8, null], 1],
    ]);
    assertEquals(single.per_layer.length, 4);
    assertEquals("per_sample" in single || "shard" in single, false);
    const parts = await Promise.all(shards3.map(readJson));
    assertDeepEqual(parts.map((p) => p.per_sample.map((s: any) => s.index)), [[0, 3], [1, 4], [2]]);
    assertDeepEqual(parts.map((p) => p.per_sample.map((s: any) => s.line)), [[1, 6], [2, 7], [4]]);
    assertDeepEqual(parts.map((p) => [p.samples, p.truncated, p.skipped_rows]), [
      [2, 0, 2],
      [2, 1, 2],
      [1, 0, 2],
    ]);
    assertEquals(parts[1].buckets.length, 3);
    assertEquals(parts[0].buckets.length, 2);
    // the merge recomputed the means: no shard's own figure is the whole run's
    assert(parts.every((p) => p.dp_after !== single.dp_after), "a shard's DP-A is the run's");
  });
});

Deno.test("score: shards over the well-formed rows merge into the single run's JSON", async () => {
  await tempDir(async (dir) => {
    const rows = [
      ids(4, 0),
      ids(1, 1),
      "not json",
      ids(6, 2),
      ids(3, 3),
      '{"text": "The river ran down to the sea and on, past the town."}',
    ];
    await Deno.writeTextFile(`${dir}/rows.jsonl`, rows.join("\n") + "\n");
    const args = ["--model", model, "--data", `${dir}/rows.jsonl`, "--max-tokens", "5"];
    const { single, shards3 } = await shardsEqualSingle(dir, "score.ts", args);
    assertEquals(single.format, "ubmoe-deno score/1");
    assertDeepEqual(single.samples.map((s: any) => s.n_tokens), [4, 1, 5, 3, 5]);
    assertEquals(single.samples[1].nll_mean, null);
    const logprobs = single.samples.flatMap((s: any) => s.logprobs);
    const want = Math.exp(-logprobs.reduce((a: number, b: number) => a + b, 0) / logprobs.length);
    assert(Math.abs(single.perplexity - want) < 1e-9 * want, `${single.perplexity} vs ${want}`);
    const parts = await Promise.all(shards3.map(readJson));
    assertDeepEqual(parts.map((p) => p.samples.map((s: any) => s.row)), [[0, 3], [1, 4], [2]]);
    assert(parts.every((p) => p.perplexity !== single.perplexity));
  });
});

Deno.test("eval-mc: shards over each task's rows merge into the single run's JSON", async () => {
  await tempDir(async (dir) => {
    const rows = [
      { context: "The dog barked at the", choices: [" man.", " moon."], label: 0 },
      { context: "Which is a boat?", choices: [" ship", " bread", " king"], labels: [1, 0, 0] },
      { context: "They ate bread and", choices: [" cheese.", " stone."], label: 1 },
      { context: "", choices: ["The king rode out.", "Out king the rode."], label: 0 },
      { context: "The river ran", choices: [" to the sea.", " up."], label: 0 },
    ];
    const task = `${dir}/toy.jsonl`;
    await Deno.writeTextFile(task, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const { single, shards3 } = await shardsEqualSingle(dir, "eval_mc.ts", [
      "--model",
      model,
      "--data",
      task,
      "--max-tokens",
      "64",
    ]);
    assertEquals(single.format, "ubmoe-deno eval-mc/1");
    const figures = single.results[0].tasks[0];
    assertEquals(figures.rows, 5);
    assert(figures.acc % 25 === 0 && figures.mc2 > 0 && figures.mc2 < 100, JSON.stringify(figures));
    const parts = await Promise.all(shards3.map(readJson));
    const items = parts.map((p) => p.results[0].tasks[0].items);
    assertDeepEqual(items.map((i) => i.map((x: any) => x.row)), [[0, 3], [1, 4], [2]]);
    assert("mc2" in items[1][0] && "acc" in items[0][0], JSON.stringify(items));
  });
});

Deno.test("eval-sts: shards over each set's pairs merge into the single run's JSON", async () => {
  await tempDir(async (dir) => {
    const set1 = [
      ["A cat sat on the mat.", "A cat was sitting on a mat.", 4.5],
      ["A man sang a song.", "Stocks fell sharply today.", 0.5],
      ["It rained all day", "Rain fell from morning to night.", 4],
      ["The dog barked?", "A dog made a loud noise.", 3.2],
      ["The king rode out.", "The king rode out to war with his men.", 2.5],
    ];
    const set2 = [["water", "river", 0.7], ["bread", "sword", 0.1], ["ship", "boat", 0.95], [
      "king",
      "queen",
      0.8,
    ], ["stone", "rock", 0.9]];
    const write = (name: string, set: (string | number)[][]) =>
      Deno.writeTextFile(
        `${dir}/${name}`,
        set.map(([sentence1, sentence2, score]) => JSON.stringify({ sentence1, sentence2, score }))
          .join("\n"),
      );
    await write("sts1.jsonl", set1);
    await write("sts2.jsonl", set2);
    const { single, shards3 } = await shardsEqualSingle(dir, "eval_sts.ts", [
      "--model",
      model,
      "--data",
      `${dir}/sts1.jsonl`,
      "--data",
      `${dir}/sts2.jsonl`,
      "--batch",
      "2",
    ]);
    assertEquals(single.format, "ubmoe-deno eval-sts/1");
    assertDeepEqual(single.results[0].sets.map((s: any) => s.rows), [5, 5]);
    assert(single.results[0].sets.every((s: any) => Math.abs(s.pearson) <= 100));
    const parts = await Promise.all(shards3.map(readJson));
    for (const p of parts) {
      for (const s of p.results[0].sets) assert(s.items.every((x: any) => x.cosine > -1));
    }
    assertDeepEqual(parts[2].results[0].sets[1].items.map((x: any) => [x.row, x.score]), [[
      2,
      0.95,
    ]]);
  });
});

Deno.test("merge refuses shards that are not one complete run, in one line, writing nothing", async () => {
  await tempDir(async (dir) => {
    const data = await dpData(dir);
    await Deno.copyFile(data, `${dir}/copy.jsonl`);
    // the same weights under another path: to merge, a run is another model
    await Deno.mkdir(`${dir}/model-copy`);
    for await (const f of Deno.readDir(model)) {
      await Deno.copyFile(`${model}/${f.name}`, `${dir}/model-copy/${f.name}`);
    }
    const dp = (out: string, shard: string, extra: string[] = [], base = dpArgs(data)) =>
      ok("dp.ts", [...base, ...extra, "--shard", shard, "--json", `${dir}/${out}`]);
    const noPerLayer = dpArgs(data).filter((a) => a !== "--per-layer");
    await Promise.all([
      dp("a0.json", "0/2"),
      dp("a1.json", "1/2"),
      dp("mask1.json", "1/2", ["--mask", "bidirectional"]),
      dp("flags1.json", "1/2", [], noPerLayer),
      dp("data1.json", "1/2", [], dpArgs(`${dir}/copy.jsonl`)),
      dp("model1.json", "1/2", [], dpArgs(data).with(1, `${dir}/model-copy`)),
      dp("b0.json", "0/3"),
      dp("b2.json", "2/3"),
      ok("score.ts", [
        "--model",
        model,
        "--data",
        data,
        "--shard",
        "1/2",
        "--json",
        `${dir}/score1.json`,
      ]),
      ok("dp.ts", [...dpArgs(data), "--json", `${dir}/whole.json`]),
    ]);
    await Deno.copyFile(`${dir}/a0.json`, `${dir}/a0-again.json`);
    await Deno.writeTextFile(`${dir}/text.json`, "DP-M 2.84\n");
    await Deno.writeTextFile(`${dir}/other.json`, '{"samples": [], "perplexity": 1}\n');
    const edited = await readJson(`${dir}/a1.json`);
    edited.per_sample[0].index = 3;
    await Deno.writeTextFile(`${dir}/edited1.json`, JSON.stringify(edited));
    const p = (name: string) => `${dir}/${name}`;
    const cases: [string[], number, RegExp][] = [
      [
        ["model1.json"],
        1,
        /a0\.json and .*model1\.json differ in model \(.*brown-qwen2" vs .*model-copy"\)/,
      ],
      [
        ["data1.json"],
        1,
        /a0\.json and .*data1\.json differ in data \(.*dp\.jsonl" vs .*copy\.jsonl"\)/,
      ],
      [
        ["mask1.json"],
        1,
        /a0\.json and .*mask1\.json differ in mask \("causal" vs "bidirectional"\)/,
      ],
      [["flags1.json"], 1, /a0\.json and .*flags1\.json differ in --per-layer/],
      [
        ["b2.json"],
        1,
        /a0\.json \(shard 0\/2\) and .*b2\.json \(shard 2\/3\) have different shard counts/,
      ],
      [["a0-again.json", "a1.json"], 1, /a0\.json and .*a0-again\.json are both shard 0\/2/],
      [["score1.json"], 1, /a0\.json is a dp output but .*score1\.json is a score output/],
      [["nothing.json"], 1, /nothing\.json: file not found/],
      [["text.json"], 1, /text\.json: not valid JSON/],
      [["other.json"], 1, /other\.json: not the --json output of dp, score, eval-mc or eval-sts/],
      [
        ["whole.json"],
        1,
        /whole\.json: not a shard output \(no "shard" field; run dp with --shard I\/N\)/,
      ],
      [
        ["edited1.json"],
        1,
        /edited1\.json: per_sample: shard 1\/2 should hold unit 1 next, found 3/,
      ],
    ];
    const runs = cases.map(([rest, code, pattern]) => ({
      files: ["a0.json", ...rest],
      code,
      pattern,
    }));
    runs.push({
      files: ["b0.json", "b2.json"],
      code: 1,
      pattern:
        /^merge: error: shard 1\/3 is missing \(given: .*b0\.json \(shard 0\/3\), .*b2\.json \(shard 2\/3\)\)$/,
    });
    runs.push({ files: [], code: 2, pattern: /expects OUT SHARD\.json… \(see --help\)/ });
    for (const { files, code, pattern } of runs) {
      const out = p("out.json");
      const r = await runScript("merge.ts", [out, ...files.map(p)]);
      const what = `merge ${files.join(" ")}`;
      assertEquals(r.code, code, `${what}: ${r.stderr}`);
      const lines = r.stderr.trim().split("\n");
      assertEquals(lines.length, 1, `${what}: ${r.stderr}`);
      assert(lines[0]!.startsWith("merge: error: "), lines[0]);
      assert(pattern.test(lines[0]!), `${what}: ${lines[0]}`);
      assertEquals(r.stdout, "", what);
      assertEquals(await Deno.stat(out).then(() => true, () => false), false, `${what} wrote OUT`);
    }
    const clobber = await runScript("merge.ts", [p("a0.json"), p("a0.json"), p("a1.json")]);
    assertEquals(clobber.code, 2, clobber.stderr);
    assert(/is also given as a shard/.test(clobber.stderr), clobber.stderr);
    // the right pair still merges
    await ok("merge.ts", [p("out.json"), p("a1.json"), p("a0.json")]);
    assertEquals(await Deno.readTextFile(p("out.json")), await Deno.readTextFile(p("whole.json")));
  });
});

Deno.test("dp --resume continues a shard from its own cache and refuses another shard's", async () => {
  await tempDir(async (dir) => {
    const args = [...dpArgs(await dpData(dir)), "--shard", "1/2"];
    await ok("dp.ts", [...args, "--json", `${dir}/full.json`]);
    const cache = (await Deno.readTextFile(`${dir}/full.json.samples.jsonl`)).trim().split("\n");
    assertEquals(cache.length, 3);
    assertDeepEqual(JSON.parse(cache[0]!).shard, { index: 1, count: 2 });
    // a crash after the first sample, the next line cut short
    await Deno.writeTextFile(
      `${dir}/part.json.samples.jsonl`,
      [cache[0], cache[1], cache[2]!.slice(0, 25)].join("\n"),
    );
    const resumed = await runScript("dp.ts", [...args, "--json", `${dir}/part.json`, "--resume"]);
    assertEquals(resumed.code, 0, resumed.stderr);
    assert(resumed.stderr.includes("resuming: 1 of 2 samples already done"), resumed.stderr);
    assertEquals(
      await Deno.readTextFile(`${dir}/part.json`),
      await Deno.readTextFile(`${dir}/full.json`),
    );
    // shard 0/2 must not pick up shard 1/2's cache
    await Deno.copyFile(`${dir}/full.json.samples.jsonl`, `${dir}/other.json.samples.jsonl`);
    const other = await runScript("dp.ts", [
      ...args.slice(0, -1),
      "0/2",
      "--json",
      `${dir}/other.json`,
      "--resume",
    ]);
    assertEquals(other.code, 1, other.stderr);
    assert(/other\.json\.samples\.jsonl: made by a different run/.test(other.stderr), other.stderr);
  });
});
