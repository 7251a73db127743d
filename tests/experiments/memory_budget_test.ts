// --max-memory: sizes, and the plan: in memory when it fits, else chunks that fit beside
// two layers, else an error giving the smallest budget that works.
import { fmtBytes, parseSize, planMemory } from "../../experiments/memory_budget.ts";
import { UserError } from "../../experiments/cli.ts";
import type { MemoryNeeds } from "../../qwen/stream.ts";
import { assert, assertDeepEqual, assertEquals } from "../assert.ts";

/** The error `f` throws (failing when it throws none). */
function caught(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

Deno.test("parseSize() reads decimal and binary units and refuses anything else", () => {
  assertEquals(parseSize("max-memory", "4GB"), 4e9);
  assertEquals(parseSize("max-memory", "1.5GiB"), 1.5 * 2 ** 30);
  assertEquals(parseSize("max-memory", "512mb"), 512e6);
  assertEquals(parseSize("max-memory", "1000"), 1000);
  for (const bad of ["", "GB", "-1GB", "0", "4 XB", "4GB5", "1e9"]) {
    const e = caught(() => parseSize("max-memory", bad));
    assert(e instanceof UserError && e.exitCode === 2, bad);
    assert(e.message.startsWith("--max-memory must be a size"), e.message);
  }
});

/** Needs of a model of `layers` layers of 100 bytes; 10 bytes per token of work, 1 kept. */
const needs = (layers: number): MemoryNeeds => ({
  weightBytes: layers * 100,
  layerBytes: 100,
  headBytes: 0,
  embeddingRowBytes: 0,
  workingSet: (l) => 10 * l,
  headWorkingSet: () => 0,
  kept: (l) => l,
});

Deno.test("planMemory() keeps the model in memory when weights and one sample fit", () => {
  assertDeepEqual(planMemory(needs(4), [10, 20], 400 + 200), { stream: false });
});

Deno.test("planMemory() streams in consecutive chunks that fit beside two layers", () => {
  // budget 260: two layers (200) + work of the longest so far (10·l) + what the chunk keeps
  const plan = planMemory(needs(10), [2, 3, 4, 5, 1, 1], 260);
  assert(plan.stream);
  assertDeepEqual(plan.chunks, [[0, 1, 2], [3, 4, 5]]);
  for (const chunk of plan.chunks) {
    const ls = chunk.map((i) => [2, 3, 4, 5, 1, 1][i]!);
    assert(200 + 10 * Math.max(...ls) + ls.reduce((a, b) => a + b) <= 260, `${chunk}`);
  }
  assertDeepEqual(plan.chunks.flat(), [0, 1, 2, 3, 4, 5]);
  // a chunk is closed only when the next sample does not fit
  for (let c = 0; c + 1 < plan.chunks.length; c++) {
    const ls = [...plan.chunks[c]!, plan.chunks[c + 1]![0]!].map((i) => [2, 3, 4, 5, 1, 1][i]!);
    assert(200 + 10 * Math.max(...ls) + ls.reduce((a, b) => a + b) > 260, `chunk ${c}`);
  }
});

Deno.test("planMemory() names the smallest budget that works when the budget is below it", () => {
  const e = caught(() => planMemory(needs(10), [3, 8], 250));
  assert(e instanceof UserError);
  // two layers 200 + work 80 + kept 8 = 288 bytes
  assertEquals(
    e.message,
    `--max-memory ${
      fmtBytes(250)
    } is below the smallest budget that works for this model and data: ${
      fmtBytes(288)
    } (two layers of ${fmtBytes(100)} and one 8-token sample)`,
  );
});
