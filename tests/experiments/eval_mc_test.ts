// Multiple-choice evaluation as lm-evaluation-harness (experiments/eval_mc.ts, DESIGN 3.6):
// the harness's context/continuation split, the task-file checks, the table layout, each
// choice's log-likelihood against an independent full forward, acc / acc_norm / mc2 by hand,
// and the `eval-mc` command with two models.
import {
  choiceLoglikelihoods,
  encodePair,
  evaluateTask,
  type McResult,
  type McRow,
  mcTable,
  readMcRows,
} from "../../experiments/eval_mc.ts";
import { UserError } from "../../experiments/cli.ts";
import { loadQwen, type QwenModel } from "../../qwen/checkpoint.ts";
import { decoder } from "../../qwen/decoder.ts";
import { QwenTokenizer } from "../../qwen/tokenizer.ts";
import { tensor } from "../../tensor/create.ts";
import type { Device } from "../../tensor/device.ts";
import { referenceDevice } from "../../tensor/reference.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { assertClose } from "../all_close.ts";
import { assert, assertDeepEqual, assertEquals, assertRejects } from "../assert.ts";
import { backends, webgpuBackends } from "../backends.ts";
import { runScript } from "../commands.ts";
import { goldenDir, haveGolden } from "../golden.ts";

const modelDir = new URL("../../models/brown-qwen2", import.meta.url).pathname;
const tokenizer = await QwenTokenizer.load(modelDir);

// ---- the harness's token split ----------------------------------------------------------

Deno.test("encodePair() moves the context's trailing whitespace into the continuation, as the harness", () => {
  const cases: [string, string, string, string][] = [
    // context, continuation, the context that is encoded, the continuation's text
    ["The answer is ", "yes", "The answer is", " yes"],
    ["The answer is", " yes", "The answer is", " yes"],
    ["Question: why?\nAnswer:  ", "because", "Question: why?\nAnswer:", "  because"],
    ["Q: the cat\n", "sat down.", "Q: the cat", "\nsat down."],
  ];
  for (const [context, continuation, encoded, text] of cases) {
    const r = encodePair(tokenizer, context, continuation);
    // the context is encoded alone; context + continuation tokens are the whole string's
    assertDeepEqual(r.context, tokenizer.encode(encoded), JSON.stringify(context));
    assertDeepEqual(
      [...r.context, ...r.continuation],
      tokenizer.encode(context + continuation),
      JSON.stringify(context + continuation),
    );
    assertEquals(tokenizer.decode(r.continuation), text);
  }
  // the continuation's tokens come from the whole string, not from encoding it alone: " yes"
  // after a moved space is one token, "yes" alone another
  const moved = encodePair(tokenizer, "The answer is ", "yes").continuation;
  assertDeepEqual(moved, tokenizer.encode(" yes"));
  assert(moved.join() !== tokenizer.encode("yes").join(), "' yes' and 'yes' encode alike");
});

Deno.test("encodePair() splits inside a word the way the harness does: the whole string's tokens after the context's", () => {
  // "hel" + "lo" is one word: the continuation is what is left of the whole string's tokens
  for (const [context, continuation] of [["hel", "lo"], ["The ca", "t sat"], ["run", "ning"]]) {
    const r = encodePair(tokenizer, context!, continuation!);
    const whole = tokenizer.encode(context! + continuation!);
    assertDeepEqual(r.context, tokenizer.encode(context!));
    assertDeepEqual(r.continuation, whole.slice(r.context.length));
  }
});

// ---- task files -------------------------------------------------------------------------

async function withFile(text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "eval-mc-test-" });
  try {
    await Deno.writeTextFile(`${dir}/task.jsonl`, text);
    await fn(`${dir}/task.jsonl`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const row = (o: Record<string, unknown>) =>
  JSON.stringify({ context: "Q?", choices: ["a", "b"], ...o });

Deno.test("readMcRows() reads label and labels rows from JSONL and JSON arrays, with line numbers", async () => {
  await withFile([row({ label: 1 }), "", row({ labels: [0, 1] })].join("\n") + "\n", async (p) => {
    assertDeepEqual(await readMcRows(p), [
      { context: "Q?", choices: ["a", "b"], label: 1, line: 1 },
      { context: "Q?", choices: ["a", "b"], labels: [0, 1], line: 3 },
    ]);
  });
  await withFile(`[${row({ label: 0 })}, ${row({ label: 1 })}]`, async (p) => {
    assertDeepEqual((await readMcRows(p)).map((r) => [r.label, r.line]), [[0, 1], [1, 2]]);
  });
});

Deno.test("readMcRows() rejects a malformed row in one line naming the file and line", async () => {
  const good = row({ label: 0 });
  const cases: [string[], string][] = [
    [[good, row({ choices: [], label: 0 })], "line 2: 'choices' must be a non-empty list"],
    [[good, good, row({ label: 2 })], "line 3: label 2 is out of range for 2 choices"],
    [[good, row({ label: -1 })], "line 2: label -1 is out of range for 2 choices"],
    [[row({ labels: [0, 0] })], "line 1: 'labels' needs at least one 1 and one 0"],
    [[row({ labels: [1] })], "line 1: 'labels' must be 0/1, one per choice"],
    [[good, "{ not json"], "line 2: not valid JSON"],
    [[row({ choices: ["a", ""], label: 0 })], "line 1: every choice must be a non-empty string"],
    [[row({})], "line 1: 'label' must be an integer (or give 'labels')"],
    [[row({ label: 0.5 })], "line 1: 'label' must be an integer (or give 'labels')"],
    [[JSON.stringify({ choices: ["a"], label: 0 })], "line 1: 'context' must be a string"],
    [["[1, 2"], "not valid JSON"],
    [["[1, 2]"], "item 1: row is not an object"],
    [["", "  "], "no rows"],
  ];
  for (const [lines, message] of cases) {
    await withFile(lines.join("\n") + "\n", async (p) => {
      await assertRejects(readMcRows(p), (e: Error) => {
        assert(e instanceof UserError, `${lines.join(" | ")}: ${e}`);
        assert(!e.message.includes("\n"), e.message);
        assert(e.message.startsWith(`${p}: `), e.message);
        assert(e.message.includes(message), `${lines.join(" | ")}: ${e.message}`);
        return true;
      });
    });
  }
});

Deno.test("mcTable() lays out one row per model, one column per task and the average", () => {
  const tasks = (acc: number, m: number): McResult[] => [
    { task: "data/mc/quiz.jsonl", rows: 4, acc, accNorm: 0 },
    { task: "/tmp/x/tqa.jsonl", rows: 2, mc2: m },
  ];
  const table = mcTable(
    [{ label: "base", tasks: tasks(50, 40) }, { label: "runs/ubmoe", tasks: tasks(75, 12.5) }],
    (t) => t.endsWith("data/mc/quiz.jsonl"),
  );
  const lines = table.split("\n");
  assertDeepEqual(lines.slice(0, 4), [
    "| Model | quiz* | tqa (mc2) | Average |",
    "| --- | --- | --- | --- |",
    "| base | 50.00 | 40.00 | 45.00 |",
    "| runs/ubmoe | 75.00 | 12.50 | 43.75 |",
  ]);
  assertEquals(lines[4], "");
  assert(lines[5]!.startsWith("\\* generated stand-in task"), lines[5]);
  // without a generated task there is no note
  assertEquals(
    mcTable(
      [{ label: "m", tasks: [{ task: "a.json", rows: 1, acc: 100, accNorm: 0 }] }],
      () => false,
    ),
    "| Model | a | Average |\n| --- | --- | --- |\n| m | 100.00 | 100.00 |",
  );
});

// ---- log-likelihoods against a full forward ---------------------------------------------

/** Σ log p(continuation token | everything before it) from one unpadded forward, in f64. */
async function independentLoglikelihood(
  model: QwenModel,
  tok: Pick<QwenTokenizer, "encode">,
  context: string,
  choice: string,
  maxTokens: number,
  device: Device,
): Promise<number> {
  const { context: c, continuation: x } = encodePair(tok as QwenTokenizer, context, choice);
  const window = [...c, ...x].slice(-(maxTokens + 1));
  const input = window.slice(0, -1);
  return await scopeAsync(async () => {
    const ids = tensor(Int32Array.from(input), [1, input.length], { dtype: "i32", device });
    const logits = await decoder(model.params, ids, model.config).logits!.data();
    const v = model.config.vocabSize;
    let ll = 0;
    for (let p = input.length - x.length; p < input.length; p++) {
      const row = logits.subarray(p * v, (p + 1) * v);
      const top = Math.max(...row);
      let s = 0;
      for (const z of row) s += Math.exp(z - top);
      ll += row[window[p + 1]!]! - top - Math.log(s);
    }
    return ll;
  });
}

/** tiny-f32 has no tokenizer: one token per character (ASCII, inside its 384-token vocabulary). */
const charTokenizer = {
  encode: (s: string) => [...s].map((ch) => ch.charCodeAt(0) % 384),
} as unknown as QwenTokenizer;

const tinyRows: McRow[] = [
  { context: "The cat sat on the ", choices: ["mat.", "moon and stars.", "x"], label: 0, line: 1 },
  { context: "one two three", choices: [" four", " five six", " zz"], label: 1, line: 2 },
  { context: "a b c d e f g h i j k l m", choices: [" n", " o p q"], label: 0, line: 3 },
];

for (const device of backends) {
  Deno.test({
    name:
      `choiceLoglikelihoods() equals Σ log-softmax of an unpadded forward of context + choice on ${device.name}`,
    ignore: !haveGolden,
    fn: async () => {
      const model = await loadQwen(`${goldenDir}tiny-f32`, device);
      const tol = { atol: device === referenceDevice ? 1e-4 : 2e-3, rtol: 1e-5 };
      // 1024 leaves every row whole; 16 (the longest choice) cuts the contexts from the left
      for (const maxTokens of [1024, 16]) {
        for (const r of tinyRows) {
          const got = await choiceLoglikelihoods(model, charTokenizer, r, device, maxTokens);
          const want: number[] = [];
          for (const c of r.choices) {
            want.push(
              await independentLoglikelihood(model, charTokenizer, r.context, c, maxTokens, device),
            );
          }
          assertClose(got, want, tol, `row ${r.line}, max tokens ${maxTokens}`);
        }
      }
      // truncation changes the figures (so the check above can tell the two apart)
      const long = tinyRows[2]!;
      const whole = await choiceLoglikelihoods(model, charTokenizer, long, device, 1024);
      const cut = await choiceLoglikelihoods(model, charTokenizer, long, device, 8);
      assert(whole.some((v, i) => Math.abs(v - cut[i]!) > 1e-3), "truncation changed nothing");
    },
  });
}

const gpu = webgpuBackends[0];
const brownDevice = gpu ?? referenceDevice;

Deno.test(`choiceLoglikelihoods() on models/brown-qwen2 with its tokenizer equals a full forward on ${brownDevice.name}`, async () => {
  const model = await loadQwen(modelDir, brownDevice);
  const r: McRow = {
    context: "The old man walked slowly ",
    choices: ["home.", "into the church at noon."],
    label: 0,
    line: 1,
  };
  const got = await choiceLoglikelihoods(model, tokenizer, r, brownDevice, 1024);
  const want: number[] = [];
  for (const c of r.choices) {
    want.push(await independentLoglikelihood(model, tokenizer, r.context, c, 1024, brownDevice));
  }
  const tol = { atol: brownDevice === referenceDevice ? 1e-4 : 2e-3, rtol: 1e-5 };
  assertClose(got, want, tol, "brown-qwen2 log-likelihoods");
});

Deno.test({
  name: "evaluateTask() gives acc, acc_norm (per character) and mc2 as computed by hand",
  ignore: !haveGolden,
  fn: async () => {
    const device = referenceDevice;
    const model = await loadQwen(`${goldenDir}tiny-f32`, device);
    const ll: number[][] = [];
    for (const r of tinyRows) {
      const row: number[] = [];
      for (const c of r.choices) {
        row.push(await independentLoglikelihood(model, charTokenizer, r.context, c, 1024, device));
      }
      ll.push(row);
    }
    const argmax = (x: number[]) => x.indexOf(Math.max(...x));
    const perChar = (i: number) => ll[i]!.map((v, j) => v / tinyRows[i]!.choices[j]!.length);
    // labels: row 0 the most likely choice, row 1 the least likely, row 2 the best per character
    const labels = [argmax(ll[0]!), argmax(ll[1]!.map((v) => -v)), argmax(perChar(2))];
    const rows: McRow[] = tinyRows.map((r, i) => ({ ...r, label: labels[i]! }));
    // and one MC2 row: choices 0 and 2 true
    const mcRow: McRow = {
      context: "one two three",
      choices: [" four", " five six", " zz"],
      labels: [1, 0, 1],
      line: 4,
    };
    const p = ll[1]!.map(Math.exp);
    const wantMc2 = (p[0]! + p[2]!) / (p[0]! + p[1]! + p[2]!);
    const wantAcc = labels.filter((l, i) => argmax(ll[i]!) === l).length / 3;
    const wantNorm = labels.filter((l, i) => argmax(perChar(i)) === l).length / 3;
    // the cases are not degenerate: acc and acc_norm differ on some row
    assert(wantAcc < 1 && wantNorm > 0, `acc ${wantAcc}, acc_norm ${wantNorm}`);
    let calls = 0;
    const r = await evaluateTask(
      model,
      charTokenizer,
      "toy.jsonl",
      [...rows, mcRow],
      device,
      1024,
      () => calls++,
    );
    assertEquals(calls, 4);
    assertEquals(r.task, "toy.jsonl");
    assertEquals(r.rows, 4);
    assert(Math.abs(r.acc! - 100 * wantAcc) < 1e-9, `acc ${r.acc}, by hand ${100 * wantAcc}`);
    assert(
      Math.abs(r.accNorm! - 100 * wantNorm) < 1e-9,
      `acc_norm ${r.accNorm}, by hand ${100 * wantNorm}`,
    );
    assert(Math.abs(r.mc2! - 100 * wantMc2) < 1e-3, `mc2 ${r.mc2}, by hand ${100 * wantMc2}`);
  },
});

// ---- the command ------------------------------------------------------------------------

Deno.test("eval-mc with --model twice prints one table row per model, with the figures of evaluateTask", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eval-mc-cmd-" });
  try {
    const rows = [
      { context: "The dog barked at the ", choices: ["stranger.", "moon.", "sky blue."], label: 0 },
      { context: "The ship sailed out of the", choices: [" harbor.", " bread."], label: 0 },
      { context: "They ate bread and", choices: [" cheese.", " bridge.", " soldiers."], label: 2 },
    ];
    const task = `${dir}/toy3.jsonl`;
    await Deno.writeTextFile(task, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const json = `${dir}/out.json`;
    const r = await runScript("eval_mc.ts", [
      "--model",
      modelDir,
      "--model",
      modelDir,
      "--data",
      task,
      "--json",
      json,
    ]);
    assertEquals(r.code, 0, r.stderr);
    // the same figures in-process, on the backend the command ran on
    const model = await loadQwen(modelDir, referenceDevice);
    const want = await evaluateTask(
      model,
      tokenizer,
      task,
      await readMcRows(task),
      referenceDevice,
      1024,
    );
    const acc = want.acc!.toFixed(2);
    assertDeepEqual(r.stdout.trim().split("\n"), [
      "| Model | toy3 | Average |",
      "| --- | --- | --- |",
      `| ${modelDir} | ${acc} | ${acc} |`,
      `| ${modelDir} | ${acc} | ${acc} |`,
    ]);
    const report = JSON.parse(await Deno.readTextFile(json));
    assertEquals(report.results.length, 2);
    for (const m of report.results) {
      assertEquals(m.label, modelDir);
      assertDeepEqual(m.tasks, [want]);
    }
    assertDeepEqual(report.generatedTasks, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encodePair() scores an empty context's continuation after the prefix token, as the harness", () => {
  const eot = tokenizer.tokenId("<|endoftext|>")!;
  const r = encodePair(tokenizer, "", "The jury said so.");
  assertDeepEqual(r.context, [eot]);
  assertDeepEqual(r.continuation, tokenizer.encode("The jury said so."));
});
