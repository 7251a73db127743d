// End to end: the generate and score commands on a golden checkpoint, and their errors.
import { assert, assertEquals } from "../assert.ts";
import { runScript } from "../commands.ts";
import { goldenDir, haveGolden } from "../golden.ts";

const run = runScript;

Deno.test({
  name: "score writes per-token log-probs and perplexity; skips malformed rows with their line",
  ignore: !haveGolden,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(
      `${dir}/rows.jsonl`,
      '{"input_ids": [5, 17, 300, 42]}\nnot json\n{"input_ids": [3, 9]}\n',
    );
    const r = await run("score.ts", [
      "--model",
      `${goldenDir}tiny-f32`,
      "--data",
      `${dir}/rows.jsonl`,
      "--json",
      `${dir}/out.json`,
    ]);
    assertEquals(r.code, 0, r.stderr);
    assert(r.stderr.includes("line 2: not valid JSON"), r.stderr);
    const out = JSON.parse(await Deno.readTextFile(`${dir}/out.json`));
    assertEquals(out.samples.length, 2);
    assertEquals(out.samples[0].logprobs.length, 3);
    const nll = [...out.samples[0].logprobs, ...out.samples[1].logprobs].reduce(
      (a: number, b: number) => a - b,
      0,
    );
    assert(Math.abs(out.perplexity - Math.exp(nll / 4)) < 1e-9 * out.perplexity);
    assert(out.samples[0].logprobs.every((l: number) => l < 0));
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name: "generate streams token ids from a tokenizer-less checkpoint",
  ignore: !haveGolden,
  fn: async () => {
    const r = await run("generate.ts", [
      "--model",
      `${goldenDir}tiny-f32`,
      "--prompt-ids",
      "5,17,300",
      "--max-new-tokens",
      "4",
    ]);
    assertEquals(r.code, 0, r.stderr);
    const ids = r.stdout.trim().split(/\s+/).map(Number);
    assertEquals(ids.length, 4);
    assert(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 384), r.stdout);
  },
});

Deno.test("commands fail with one line and an exit code on user mistakes", async () => {
  const cases: [string, string[], number, RegExp][] = [
    [
      "generate.ts",
      ["--model", "/nonexistent", "--prompt", "hi"],
      1,
      /^generate: error: \/nonexistent\/config.json: file not found$/,
    ],
    ["score.ts", ["--bogus"], 2, /^score: error: Unknown option '--bogus'/],
    ["score.ts", ["--model", `${goldenDir}tiny-f32`], 2, /^score: error: --data FILE is required/],
  ];
  if (haveGolden) {
    const dir = await Deno.makeTempDir();
    await Deno.writeTextFile(`${dir}/bad.jsonl`, '{"input_ids": [5, 999]}\n');
    cases.push([
      "score.ts",
      ["--model", `${goldenDir}tiny-f32`, "--data", `${dir}/bad.jsonl`],
      1,
      /line 1: token id 999 is outside the vocabulary \(size 384\)/,
    ]);
  }
  for (const [script, args, code, pattern] of cases) {
    const r = await run(script, args);
    assertEquals(r.code, code, `${script} ${args.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assertEquals(lines.length, 1, r.stderr);
    assert(pattern.test(lines[0]!), lines[0]);
  }
});
