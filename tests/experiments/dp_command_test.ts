// `deno task dp` end to end on a golden checkpoint: the Table-3 JSON, its consistency, and
// resuming after a crash giving the same output as an uninterrupted run.
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";
import { runScript } from "../commands.ts";
import { goldenDir, haveGolden } from "../golden.ts";

const root = new URL("../../", import.meta.url).pathname;
const dp = (args: string[]) => runScript("dp.ts", args);

async function dataFile(dir: string): Promise<string> {
  const lengths = [1, 3, 9, 20, 33, 47, 64];
  const rows = lengths.map((n, r) =>
    JSON.stringify({
      input_ids: Array.from({ length: n }, (_, i) => 1 + ((r * 31 + i * 17) % 383)),
    })
  );
  rows.splice(2, 0, "{ not json");
  await Deno.writeTextFile(`${dir}/rows.jsonl`, rows.join("\n") + "\n");
  return `${dir}/rows.jsonl`;
}

Deno.test({
  name:
    "dp writes Table-3 JSON whose rows sum to 100, and --resume after a crash gives the same result",
  ignore: !haveGolden,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const data = await dataFile(dir);
    const args = [
      "--model",
      `${goldenDir}tiny-f32`,
      "--data",
      data,
      "--buckets",
      "0,8,32,64",
      "--per-layer",
    ];
    const full = await dp([...args, "--json", `${dir}/full.json`]);
    assertEquals(full.code, 0, full.stderr);
    assert(
      full.stdout.includes("DP-M") && full.stdout.includes("DP-B") && full.stdout.includes("DP-A"),
      full.stdout,
    );
    assert(full.stderr.includes("skipped 1 malformed rows (first: line 3"), full.stderr);
    const result = JSON.parse(await Deno.readTextFile(`${dir}/full.json`));
    assertEquals(result.samples, 7);
    assertDeepEqual(result.buckets.map((b: { count: number }) => b.count), [2, 2, 3]);
    for (const row of [result, ...result.buckets, ...result.per_layer]) {
      const total = row.dp_main + row.dp_before + row.dp_after;
      assert(Math.abs(total - 100) < 1e-6, `row sums to ${total}`);
    }
    assertEquals(result.per_layer.length, 2);
    assertEquals(result.per_layer[0].heads.length, 4);

    // a crash after three samples, the last cache line cut short
    const cache = await Deno.readTextFile(`${dir}/full.json.samples.jsonl`);
    const lines = cache.trim().split("\n");
    assertEquals(lines.length, 8);
    await Deno.writeTextFile(
      `${dir}/part.json.samples.jsonl`,
      [...lines.slice(0, 4), lines[4]!.slice(0, 20)].join("\n"),
    );
    const resumed = await dp([...args, "--json", `${dir}/part.json`, "--resume"]);
    assertEquals(resumed.code, 0, resumed.stderr);
    assert(resumed.stderr.includes("resuming: 3 of 7 samples already done"), resumed.stderr);
    const again = JSON.parse(await Deno.readTextFile(`${dir}/part.json`));
    delete again.model;
    delete result.model;
    assertDeepEqual(again, result);

    // a cache from other settings is refused
    const other = await dp([
      ...args.slice(0, 4),
      "--mask",
      "bidirectional",
      "--json",
      `${dir}/full.json`,
      "--resume",
    ]);
    assertEquals(other.code, 1);
    assert(/made by a different run/.test(other.stderr), other.stderr);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("dp reports user mistakes in one line", async () => {
  const cases: [string[], number, RegExp][] = [
    [["--mask", "diagonal"], 2, /--mask: unknown mask 'diagonal'/],
    [["--buckets", "5,3"], 2, /--buckets must be increasing/],
    [["--model", "/nonexistent"], 1, /\/nonexistent\/config.json: file not found/],
    [["--resume"], 2, /--resume needs --json/],
  ];
  for (const [args, code, pattern] of cases) {
    const r = await dp(args);
    assertEquals(r.code, code, r.stderr);
    const errors = r.stderr.trim().split("\n").filter((l) => l.startsWith("dp: error"));
    assertEquals(errors.length, 1, r.stderr);
    assert(pattern.test(errors[0]!), errors[0]);
    assert(!r.stderr.includes("    at "), "no stack trace");
  }
});

Deno.test({
  name: "dp on Ctrl-C prints the partial table, exits 130, and --resume finishes the run",
  ignore: !haveGolden,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const rows = Array.from(
      { length: 400 },
      (_, r) =>
        JSON.stringify({
          input_ids: Array.from({ length: 60 + (r % 40) }, (_, i) => 1 + ((r * 13 + i * 7) % 383)),
        }),
    );
    await Deno.writeTextFile(`${dir}/rows.jsonl`, rows.join("\n") + "\n");
    const args = [
      "--model",
      `${goldenDir}tiny-f32`,
      "--data",
      `${dir}/rows.jsonl`,
      "--json",
      `${dir}/out.json`,
    ];
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-env",
        "--allow-write",
        `${root}experiments/dp.ts`,
        ...args,
      ],
      env: { TENSOR_BACKEND: "reference" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // wait until a few samples are cached, then interrupt
    for (let i = 0; i < 600; i++) {
      const cached = await Deno.readTextFile(`${dir}/out.json.samples.jsonl`).catch(() => "");
      if (cached.split("\n").length > 4) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGINT");
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout),
      stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 130, stderr);
    assert(stdout.includes("DP-A"), stdout);
    assert(/interrupted after \d+ of 400 samples; rerun with --resume/.test(stderr), stderr);
    const resumed = await dp([...args, "--resume"]);
    assertEquals(resumed.code, 0, resumed.stderr);
    assertEquals(JSON.parse(await Deno.readTextFile(`${dir}/out.json`)).samples, 400);
    await Deno.remove(dir, { recursive: true });
  },
});
