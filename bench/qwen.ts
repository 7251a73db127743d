// Qwen2.5-0.5B-shaped model figures: forward tokens/s at 512 tokens, generation tokens/s
// with the KV cache, peak resident memory.
import { loadQwen } from "../qwen/checkpoint.ts";
import { decoder } from "../qwen/decoder.ts";
import { generate } from "../qwen/generate.ts";
import { tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { Rng } from "../tensor/random.ts";
import { peakRssMb } from "./peak_rss.ts";
import { writeQwenShape } from "./qwen_shapes.ts";
import { medianMs } from "./timing.ts";

export async function benchQwen(device: Device): Promise<Record<string, number>> {
  const model = await loadQwen(await writeQwenShape("0.5b"), device);
  const rng = new Rng(3);
  const ids = Int32Array.from({ length: 512 }, () => rng.int(model.config.vocabSize));
  const forwardMs = await medianMs(device, () => {
    const x = tensor(ids, [1, 512], { device });
    decoder(model.params, x, model.config);
  }, { reps: 3, warmup: 1, inner: 1 });
  const prompt = Array.from(ids.slice(0, 16));
  const newTokens = 128;
  const start = performance.now();
  let n = 0;
  for await (const _ of generate(model, prompt, { maxNewTokens: newTokens })) n++;
  const genSeconds = (performance.now() - start) / 1000;
  return {
    qwen05b_forward_512_tokens_per_s: 512 / (forwardMs / 1000),
    qwen05b_generate_tokens_per_s: n / genSeconds,
    qwen05b_peak_rss_mb: peakRssMb(),
  };
}
