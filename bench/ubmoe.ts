// UBMoE figures: generation tokens/s of the default model built as a UBMoE (a random second
// expert, routers N(0, 0.02²)), and forward tokens/s at 512 tokens on the Qwen2.5-0.5B shape
// against the dense base in the same run (target: ≤ 1.15× the base's time at top-1).
import { loadQwen, type QwenModel } from "../qwen/checkpoint.ts";
import { parseQwen2Config } from "../qwen/config.ts";
import { decoder, decoderAsync } from "../qwen/decoder.ts";
import { generate } from "../qwen/generate.ts";
import type { ExpertParams } from "../qwen/moe.ts";
import { assembleUbmoe, denseMlp, initRouters, ubmoeConfigJson } from "../qwen/ubmoe.ts";
import { tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { f32ToBf16Bits } from "../tensor/dtype.ts";
import { Rng } from "../tensor/random.ts";
import { scopeAsync } from "../tensor/scope.ts";
import { writeQwenShape } from "./qwen_shapes.ts";

const root = new URL("../", import.meta.url).pathname;

/** `base` as a top-1 UBMoE whose second expert has random bf16 weights of the same shapes. */
function withRandomExpert(base: QwenModel, device: Device, seed: number): QwenModel {
  const rng = new Rng(seed);
  const pool = Uint16Array.from(
    { length: 1 << 16 },
    () => f32ToBf16Bits((rng.uniform() * 2 - 1) * 0.05),
  );
  const random = (shape: readonly number[]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const out = new Uint16Array(n);
    for (let at = 0; at < n; at += pool.length) {
      out.set(pool.subarray(0, Math.min(pool.length, n - at)), at);
      pool.reverse();
    }
    const t = tensor(out, shape, { dtype: "bf16", device });
    device.prepareLinearWeight?.(t);
    return t;
  };
  const biMlps: ExpertParams[] = base.params.model.layers.map((_, i) => {
    const m = denseMlp(base.params, i);
    return {
      gate_proj: { weight: random(m.gate_proj.weight.shape) },
      up_proj: { weight: random(m.up_proj.weight.shape) },
      down_proj: { weight: random(m.down_proj.weight.shape) },
    };
  });
  const config = parseQwen2Config(
    ubmoeConfigJson(base.config, { topK: 1, normTopkProb: false, routerAuxLossCoef: 0 }),
    "bench ubmoe",
  );
  const params = assembleUbmoe(base.params, biMlps, initRouters(base.config, seed, device));
  return { config, params, dir: base.dir };
}

async function forwardSeconds(model: QwenModel, ids: Int32Array, device: Device) {
  const run = () =>
    scopeAsync(async () => {
      const x = tensor(ids, [1, ids.length], { device });
      const out = model.config.moe
        ? await decoderAsync(model.params, x, model.config, { logits: false })
        : decoder(model.params, x, model.config, { logits: false });
      await out.lastHiddenState.data();
    });
  await run(); // compile
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const start = performance.now();
    await run();
    times.push((performance.now() - start) / 1000);
  }
  return times.sort((a, b) => a - b)[1]!;
}

export async function benchUbmoe(device: Device): Promise<Record<string, number>> {
  const tiny = withRandomExpert(await loadQwen(`${root}models/brown-qwen2`, device), device, 1);
  const prompt = [1000, 2000, 3000, 4000];
  let n = 0;
  for await (const _ of generate(tiny, prompt, { maxNewTokens: 8 })) n++; // compile
  n = 0;
  const start = performance.now();
  for await (const _ of generate(tiny, prompt, { maxNewTokens: 64 })) n++;
  const tinyTokensPerS = n / ((performance.now() - start) / 1000);

  const base = await loadQwen(await writeQwenShape("0.5b"), device);
  const rng = new Rng(4);
  const ids = Int32Array.from({ length: 512 }, () => rng.int(base.config.vocabSize));
  const baseSeconds = await forwardSeconds(base, ids, device);
  const moeSeconds = await forwardSeconds(withRandomExpert(base, device, 2), ids, device);
  return {
    ubmoe_tiny_generate_tokens_per_s: tinyTokensPerS,
    ubmoe_05b_forward_512_tokens_per_s: 512 / moeSeconds,
    ubmoe_05b_base_forward_512_tokens_per_s: 512 / baseSeconds,
    ubmoe_05b_forward_time_vs_base: moeSeconds / baseSeconds,
  };
}
