// The scale suite's parts: which runs the environment asks for, the weights DP reads, the
// data file dp gets, where tokens/s comes from, and a child's peak RSS measured both ways.
import { assert, assertDeepEqual, assertEquals, assertThrows } from "../assert.ts";
import { readRows } from "../../experiments/data.ts";
import { parseQwen2Config } from "../../qwen/config.ts";
import { qwen25Configs } from "../../bench/qwen_shapes.ts";
import {
  dpTiming,
  dpWeightsMb,
  forwardTokensPerS,
  haveTime,
  runMeasured,
  scaleRuns,
  sizeKey,
  tokenIdsRow,
} from "../../bench/scale.ts";

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("scaleRuns() is 1.5B and 3B at 512 and 2048 tokens, 7B and 14B (streamed) on request", () => {
  const l = [512, 2048];
  assertDeepEqual(scaleRuns(envOf({})), [
    { size: "1.5b", lengths: l },
    { size: "3b", lengths: l },
  ]);
  assertDeepEqual(scaleRuns(envOf({ BENCH_7B: "1", BENCH_14B: "1" })), [
    { size: "1.5b", lengths: l },
    { size: "3b", lengths: l },
    { size: "7b", lengths: l },
    { size: "14b", lengths: l, maxMemory: "4GB" },
  ]);
  assertDeepEqual(scaleRuns(envOf({ BENCH_7B: "0" })).map((r) => r.size), ["1.5b", "3b"]);
  assertDeepEqual(
    scaleRuns(envOf({ BENCH_SCALE_SIZES: "0.5b, 14b", BENCH_SCALE_LENGTHS: "64" })),
    [{ size: "0.5b", lengths: [64] }, { size: "14b", lengths: [64], maxMemory: "4GB" }],
  );
  assertThrows(() => scaleRuns(envOf({ BENCH_SCALE_SIZES: "1.5B" })), /unknown size '1.5B'/);
  assertThrows(() => scaleRuns(envOf({ BENCH_SCALE_LENGTHS: "64,0" })), /'0' is not a positive/);
  assertThrows(() => scaleRuns(envOf({ BENCH_SCALE_LENGTHS: "6.5" })), /'6.5' is not a positive/);
});

Deno.test("sizeKey() spells sizes as the figure keys do", () => {
  assertDeepEqual((["0.5b", "1.5b", "3b", "7b", "14b"] as const).map(sizeKey), [
    "05b",
    "15b",
    "3b",
    "7b",
    "14b",
  ]);
});

Deno.test("dpWeightsMb() is every weight but an untied LM head, the final norm and the last MLP", () => {
  // the published totals (2 bytes × parameters) less what DP skips, written out per size
  const cases = [
    { size: "0.5b", total: 988065536, h: 896, i: 4864, lmHead: 0 },
    { size: "1.5b", total: 3087428608, h: 1536, i: 8960, lmHead: 0 },
    { size: "3b", total: 6171877376, h: 2048, i: 11008, lmHead: 0 },
    { size: "7b", total: 15231233024, h: 3584, i: 18944, lmHead: 152064 * 3584 },
    { size: "14b", total: 29540067328, h: 5120, i: 13824, lmHead: 152064 * 5120 },
  ] as const;
  for (const c of cases) {
    const skipped = 2 * (c.lmHead + c.h + 3 * c.h * c.i + c.h); // lm_head, norm, MLP, post-norm
    const config = parseQwen2Config(qwen25Configs[c.size]);
    assertEquals(dpWeightsMb(config), (c.total - skipped) / 2 ** 20, c.size);
  }
  // 7B: 13,098 MiB, 1.4 GiB less than its 14,526 MiB of files
  assertEquals(Math.round(dpWeightsMb(parseQwen2Config(qwen25Configs["7b"]))), 13098);
});

Deno.test("tokenIdsRow() is one input_ids row of exactly L ids below 151000, fixed by its seed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const l of [1, 64, 2048]) {
      await Deno.writeTextFile(`${dir}/ids.jsonl`, tokenIdsRow(l));
      const { rows, problems } = await readRows(`${dir}/ids.jsonl`);
      assertEquals(problems.length, 0);
      assertEquals(rows.length, 1);
      const row = rows[0]!;
      assert(row.kind === "input_ids", row.kind);
      assertEquals(row.ids.length, l);
      assert(row.ids.every((id) => Number.isInteger(id) && id >= 0 && id < 151000));
      if (l === 2048) assert(new Set(row.ids).size > 2000, "ids look random");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assertEquals(tokenIdsRow(512), tokenIdsRow(512));
  assert(tokenIdsRow(512, 1) !== tokenIdsRow(512, 2));
  assertEquals(tokenIdsRow(3).split("\n").length, 2, "one line and its newline");
});

Deno.test("dpTiming() reads dp's timing line and is null without one", () => {
  const line = (tail: string) =>
    `dp: 1/1 (100%)  9.0 tokens/s  ETA 0s\ndp: forward 12.50 s for 512 tokens (41.0 tokens/s), reading weights 3.25 s${tail}\n`;
  assertDeepEqual(dpTiming(line(" (streamed, included in the forward)")), {
    forward_s: 12.5,
    read_s: 3.25,
    streamed: true,
  });
  assertDeepEqual(dpTiming(line("")), { forward_s: 12.5, read_s: 3.25, streamed: false });
  assertEquals(dpTiming("dp: wrote x.json\n"), null);
  assertEquals(dpTiming("dp: forward s for 512 tokens\n"), null);
});

Deno.test("forwardTokensPerS() takes dp's timing line, else its final progress line, else wall time", () => {
  const stderr = [
    "dp: 28 layers × 12 heads, mask causal, backend webgpu",
    "dp: 0/2 (0%)  9.0 tokens/s  ETA ?",
    "dp: 1/1 (100%)  123.4 tokens/s  ETA 0s",
    "dp: wrote /tmp/x.json",
    "4242",
  ].join("\n");
  const timing = { forward_s: 4, read_s: 1, streamed: false };
  assertDeepEqual(forwardTokensPerS(512, stderr, timing, 100), { value: 128, source: "timing" });
  assertDeepEqual(forwardTokensPerS(512, stderr, null, 100), {
    value: 123.4,
    source: "progress",
  });
  assertDeepEqual(forwardTokensPerS(512, "dp: 1/2 (50%)  9.0 tokens/s", null, 128), {
    value: 4,
    source: "process",
  });
});

Deno.test("runMeasured() reports a child's peak RSS by /usr/bin/time and by polling VmHWM", async () => {
  // a child that holds 300 MiB for a second, then frees it: the peak must see it
  const program = [
    Deno.execPath(),
    "eval",
    "let a = new Uint8Array(300 << 20).fill(1); await new Promise((r) => setTimeout(r, 1000));" +
    "a = null; console.error('child: done ' + 7 * 6); Deno.exit(3);",
  ];
  const ways = (await haveTime()) ? [true, false] : [false];
  if (ways.length === 1) console.warn("tests: no /usr/bin/time; only the VmHWM poll is tested");
  for (const useTime of ways) {
    const run = await runMeasured(program, useTime);
    assertEquals(run.code, 3);
    assertEquals(run.rssFrom, useTime ? "time" : "VmHWM");
    assert(run.stderr.includes("child: done 42"), run.stderr);
    assert(run.peakRssMb > 300 && run.peakRssMb < 1000, `${run.rssFrom}: ${run.peakRssMb} MB`);
    assert(run.wallS >= 1, `${run.wallS} s`);
  }
});
