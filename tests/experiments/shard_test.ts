// experiments/shard.ts: parsing `--shard I/N`, which units a shard holds, and joining shards;
// every data-set command refuses a bad spec as a usage error in one line.
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { runScript } from "../commands.ts";
import { UserError } from "../../experiments/cli.ts";
import { inShard, parseShard, shardItems, unshard } from "../../experiments/shard.ts";

const badSpecs: [string, RegExp][] = [
  ["3/2", /--shard 3\/2: the index I must be below N/],
  ["2/2", /--shard 2\/2: the index I must be below N/],
  ["0/0", /--shard 0\/0: the shard count N must be ≥ 1/],
  ["x/4", /--shard expects I\/N.*got 'x\/4'/],
  ["-1/4", /--shard expects I\/N.*got '-1\/4'/],
  ["1/", /--shard expects I\/N.*got '1\/'/],
  ["1.5/4", /--shard expects I\/N.*got '1.5\/4'/],
  ["1/4/2", /--shard expects I\/N.*got '1\/4\/2'/],
];

Deno.test("parseShard() reads I/N and refuses anything else as a usage error", () => {
  assertEquals(parseShard(undefined), null);
  assertDeepEqual(parseShard("0/1"), { index: 0, count: 1 });
  assertDeepEqual(parseShard("7/8"), { index: 7, count: 8 });
  for (const [spec, pattern] of badSpecs) {
    let error: unknown;
    try {
      parseShard(spec);
    } catch (e) {
      error = e;
    }
    assert(error instanceof UserError, `${spec}: no UserError`);
    assertEquals(error.exitCode, 2, spec);
    assert(pattern.test(error.message), `${spec}: ${error.message}`);
  }
});

Deno.test("shardItems() gives shard I units I, I+N, …, and the shards partition the data set", () => {
  const items = ["a", "b", "c", "d", "e"];
  assertDeepEqual(shardItems(items, { index: 1, count: 3 }), [
    { index: 1, item: "b" },
    { index: 4, item: "e" },
  ]);
  assertDeepEqual(shardItems(items, null).map((x) => x.item), items);
  assertDeepEqual(shardItems(items, { index: 6, count: 7 }), []);
  for (const count of [1, 2, 3, 5, 8]) {
    const seen = Array.from({ length: count }, (_, index) => shardItems(items, { index, count }))
      .flat().map((x) => x.index).sort((a, b) => a - b);
    assertDeepEqual(seen, [0, 1, 2, 3, 4]);
  }
  assert(inShard({ index: 2, count: 3 }, 5) && !inShard({ index: 2, count: 3 }, 4));
});

Deno.test("unshard() puts the units back in order and names the file of a shard that does not fit", () => {
  const parts = [
    { path: "s0.json", items: [0, 3, 6] },
    { path: "s1.json", items: [1, 4] },
    { path: "s2.json", items: [2, 5] },
  ];
  assertDeepEqual(unshard(parts, (x) => x, "rows"), [0, 1, 2, 3, 4, 5, 6]);
  const bad: [typeof parts, RegExp][] = [
    [
      [parts[0]!, { path: "s1.json", items: [1, 5] }, parts[2]!],
      /s1\.json: rows: shard 1\/3 should hold unit 4 next, found 5/,
    ],
    [
      [parts[0]!, { path: "s1.json", items: [1] }, parts[2]!],
      /s0\.json: rows: shard 0\/3 holds 3 units, but 2 of the 6/,
    ],
  ];
  for (const [p, pattern] of bad) {
    let message = "";
    try {
      unshard(p, (x) => x, "rows");
    } catch (e) {
      message = (e as Error).message;
    }
    assert(pattern.test(message), message);
  }
});

Deno.test("dp, score, eval-mc and eval-sts refuse a bad --shard in one line with exit 2", async () => {
  const scripts = [
    ["dp", "dp.ts"],
    ["score", "score.ts"],
    ["eval-mc", "eval_mc.ts"],
    ["eval-sts", "eval_sts.ts"],
  ];
  const cases = scripts.flatMap(([name, script]) =>
    badSpecs.map(([spec, pattern]) => ({ name: name!, script: script!, spec, pattern }))
  );
  // two at a time: every run stops at the flags, before any model is read
  for (let i = 0; i < cases.length; i += 2) {
    await Promise.all(
      cases.slice(i, i + 2).map(async ({ name, script, spec, pattern }) => {
        // `--shard=SPEC`: parseArgs takes a separate "-1/4" for a flag
        const r = await runScript(script, [`--shard=${spec}`]);
        assertEquals(r.code, 2, `${script} --shard ${spec}: ${r.stderr}`);
        const lines = r.stderr.trim().split("\n");
        assertEquals(lines.length, 1, r.stderr);
        assert(lines[0]!.startsWith(`${name}: error: --shard`), lines[0]);
        assert(pattern.test(lines[0]!), lines[0]);
      }),
    );
  }
  const heatmap = await runScript("dp.ts", ["--shard", "0/2", "--heatmap", "/tmp/never.svg"]);
  assertEquals(heatmap.code, 2, heatmap.stderr);
  assert(/^dp: error: --heatmap draws one sample .*without --shard$/.test(heatmap.stderr.trim()));
});
