import fc from "fast-check";
import { assert, assertDeepEqual, assertEquals, assertRejects } from "../assert.ts";
import { encodeSafetensors, SafetensorsError, SafetensorsFile } from "../../tensor/safetensors.ts";

const golden = new URL("../../../shared/golden/", import.meta.url).pathname;
const haveShared = await Deno.stat(golden).then(() => true, () => false);
if (!haveShared) {
  console.warn("safetensors_test: ../shared/golden is absent; golden checks skipped");
}

const seed = Number(Deno.env.get("FC_SEED") ?? 42);
const numRuns = Number(Deno.env.get("FC_RUNS") ?? 200);

async function tmpFile(bytes: Uint8Array): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await Deno.writeFile(path, bytes);
  return path;
}

Deno.test({
  name: "SafetensorsFile reads the golden checkpoint, and the sharded copy holds the same bytes",
  ignore: !haveShared,
  fn: async () => {
    using single = await SafetensorsFile.open(`${golden}tiny-f32/model.safetensors`);
    assertEquals(single.tensors.size, 26);
    assertDeepEqual(single.info("model.embed_tokens.weight")?.shape, [384, 64]);
    const index = JSON.parse(
      await Deno.readTextFile(`${golden}tiny-f32-sharded/model.safetensors.index.json`),
    );
    for (const [name, shard] of Object.entries(index.weight_map as Record<string, string>)) {
      using part = await SafetensorsFile.open(`${golden}tiny-f32-sharded/${shard}`);
      const a = await single.read(name), b = await part.read(name);
      assertDeepEqual(a.info.shape, b.info.shape);
      assertDeepEqual(a.bytes, b.bytes);
    }
  },
});

Deno.test("encodeSafetensors() round-trips through SafetensorsFile", async () => {
  const w = new Float32Array([1, 2, 3, 4, 5, 6]);
  const ids = new Int32Array([7, -8]);
  const half = new Uint16Array([0x3f80, 0x4000, 0x4040]);
  const path = await tmpFile(encodeSafetensors({
    "a.weight": { dtype: "F32", shape: [2, 3], data: w },
    "b.ids": { dtype: "I32", shape: [2], data: ids },
    "c.half": { dtype: "BF16", shape: [3], data: half },
    "d.empty": { dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
  }));
  using f = await SafetensorsFile.open(path);
  assertEquals(f.metadata.format, "pt");
  assertDeepEqual(new Float32Array((await f.read("a.weight")).bytes.buffer), w);
  assertDeepEqual(new Int32Array((await f.read("b.ids")).bytes.buffer), ids);
  assertDeepEqual(new Uint16Array((await f.read("c.half")).bytes.buffer), half);
  assertDeepEqual(f.info("d.empty")?.shape, [0, 4]);
  await Deno.remove(path);
});

Deno.test("SafetensorsFile names the file and the problem for truncated and corrupt files", async () => {
  const good = encodeSafetensors({ "x": { dtype: "F32", shape: [4], data: new Float32Array(4) } });
  const cases: [Uint8Array, RegExp][] = [
    [good.subarray(0, 5), /too short/],
    [good.subarray(0, good.length - 1), /outside the 15 data bytes/],
    [Uint8Array.from([255, 255, 255, 255, 0, 0, 0, 0, ...good.subarray(8)]), /header length/],
  ];
  for (const [bytes, pattern] of cases) {
    const path = await tmpFile(bytes);
    await assertRejects(SafetensorsFile.open(path), (e: Error) => {
      assert(e instanceof SafetensorsError, String(e));
      assert(e.message.startsWith(path), e.message);
      assert(pattern.test(e.message), e.message);
      return true;
    });
    await Deno.remove(path);
  }
  await assertRejects(SafetensorsFile.open("/nonexistent/model.safetensors"), /file not found/);
});

Deno.test("SafetensorsFile: random corruptions give SafetensorsError or a valid file, nothing else", async () => {
  const good = encodeSafetensors({
    "layer.weight": { dtype: "F32", shape: [3, 2], data: new Float32Array(6) },
    "layer.bias": { dtype: "BF16", shape: [3], data: new Uint16Array(3) },
  });
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.option(fc.nat(good.length), { nil: undefined }),
      async (edits, cut) => {
        const bytes = good.slice(0, cut ?? good.length);
        for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
        await Deno.writeFile(path, bytes);
        try {
          using f = await SafetensorsFile.open(path);
          for (const name of f.tensors.keys()) await f.read(name);
        } catch (e) {
          if (!(e instanceof SafetensorsError)) throw e;
        }
      },
    ),
    { seed, numRuns },
  );
  await Deno.remove(path);
});
