// Layer streaming (qwen/stream.ts) gives the in-memory DP of every sample bit for bit, on
// every backend: the bundled model, and the golden f32, bf16 and sharded checkpoints.
import { dpFromStats, type SampleDp } from "../../nn/dp.ts";
import { bidirectional, causal, type MaskVariant } from "../../nn/masks.ts";
import { loadQwen } from "../../qwen/checkpoint.ts";
import { decoderAsync } from "../../qwen/decoder.ts";
import { LayerStream, streamDp } from "../../qwen/stream.ts";
import { tensor } from "../../tensor/create.ts";
import type { Device } from "../../tensor/device.ts";
import { leaves } from "../../tensor/pytree.ts";
import { scopeAsync } from "../../tensor/scope.ts";
import { assert, assertEquals } from "../assert.ts";
import { backends } from "../backends.ts";
import { goldenDir, haveGolden } from "../golden.ts";

const bundled = new URL("../../models/brown-qwen2", import.meta.url).pathname;
const models = [
  { dir: bundled, vocab: 2000 },
  ...(haveGolden
    ? ["tiny-f32", "tiny-bf16", "tiny-f32-sharded"].map((m) => ({ dir: goldenDir + m, vocab: 384 }))
    : []),
];

/** Samples of several lengths (one of a single token) with ids spread over the vocabulary. */
const samplesFor = (vocab: number) =>
  [7, 1, 40, 19, 64].map((n, r) =>
    Array.from({ length: n }, (_, i) => (r * 131 + i * 97 + 3) % vocab)
  );

async function inMemory(
  dir: string,
  device: Device,
  samples: number[][],
  mask: MaskVariant,
): Promise<SampleDp[]> {
  const model = await loadQwen(dir, device, "dp");
  const out: SampleDp[] = [];
  for (const ids of samples) {
    const [dp] = await scopeAsync(async () => {
      const x = tensor(Int32Array.from(ids), [1, ids.length], { device });
      const r = await decoderAsync(model.params, x, model.config, { mask, dp: "only" });
      return await dpFromStats(r.dpStats!, [ids.length]);
    });
    out.push(dp!);
  }
  for (const t of leaves(model.params)) t.dispose();
  return out;
}

for (const device of backends) {
  for (const { dir, vocab } of models) {
    const name = dir.split("/").pop();
    Deno.test(`streamDp() equals the in-memory DP bit for bit: ${name} on ${device.name}`, async () => {
      const samples = samplesFor(vocab);
      for (const mask of [causal, bidirectional]) {
        const want = await inMemory(dir, device, samples, mask);
        const stream = await LayerStream.open(dir, device);
        // one chunk of all samples, then chunks of one and of two: chunk boundaries change nothing
        const whole = await streamDp(stream, samples, { mask });
        const ones = [];
        for (const s of samples) ones.push(...(await streamDp(stream, [s], { mask }))!);
        const pairs = [];
        for (let i = 0; i < samples.length; i += 2) {
          pairs.push(...(await streamDp(stream, samples.slice(i, i + 2), { mask }))!);
        }
        assert(stream.readSeconds > 0, "reading time is counted");
        stream.close();
        for (const got of [whole!, ones, pairs]) {
          assertEquals(JSON.stringify(got), JSON.stringify(want), `${mask.name}`);
        }
      }
      // the stream leaves nothing behind on the device
      const before = device.stats().liveBytes;
      const stream = await LayerStream.open(dir, device);
      await streamDp(stream, samples.slice(0, 2), { mask: causal });
      stream.close();
      assertEquals(device.stats().liveBytes, before);
    });
  }
}

Deno.test("streamDp() stops between layers when asked, returning null", async () => {
  const device = backends[0]!;
  const stream = await LayerStream.open(bundled, device);
  const seen: number[] = [];
  const r = await streamDp(stream, samplesFor(2000), {
    mask: causal,
    onLayer: (l) => seen.push(l),
    stop: () => seen.length === 2,
  });
  stream.close();
  assertEquals(r, null);
  assertEquals(seen.join(","), "0,1");
});
