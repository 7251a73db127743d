// DP figures on the Qwen2.5-0.5B shape: tokens/s of a 512-token sample, the cost of the DP
// statistics over the same forward without them, peak memory at 2048 tokens, and the ratio
// to the paper's way done in numpy/OpenBLAS (../shared/bench/numpy_dp_baseline.py) when
// python3 with numpy is available. Per layer: causal attention with the DP statistics from
// the same pass against causal attention alone (14 heads, 2 KV heads, D 64, L = S = 512 and
// 2048), and the standalone dpStats op.
import { dpFromStats } from "../nn/dp.ts";
import { loadQwen } from "../qwen/checkpoint.ts";
import { decoder } from "../qwen/decoder.ts";
import { causal } from "../nn/masks.ts";
import { randomNormal, tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { Rng } from "../tensor/random.ts";
import { scopeAsync } from "../tensor/scope.ts";
import { attentionWithDpStats, attentionWithLse } from "../tensor/ops/attention.ts";
import { dpStats } from "../tensor/ops/dp_stats.ts";
import { peakRssMb } from "./peak_rss.ts";
import { writeQwenShape } from "./qwen_shapes.ts";
import { medianMs } from "./timing.ts";

async function timeOnce(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

async function median(run: () => Promise<unknown>, reps: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) times.push(await timeOnce(run));
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** tokens/s of the numpy peer at L tokens, or NaN when python3/numpy is missing. */
async function numpyTokensPerS(l: number): Promise<number> {
  const script = new URL("../../shared/bench/numpy_dp_baseline.py", import.meta.url).pathname;
  try {
    const out = await new Deno.Command("env", {
      args: ["-u", "OPENBLAS_CORETYPE", "-u", "OPENBLAS_L2_SIZE", "python3", script, String(l)],
      stdout: "piped",
      stderr: "null",
    }).output();
    const m = /forward\+DP L=\d+: median [\d.]+ s = ([\d.]+) tokens\/s/.exec(
      new TextDecoder().decode(out.stdout),
    );
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** One layer's attention at L tokens: ms with the DP statistics, their cost over attention alone. */
async function attentionFigures(device: Device, l: number): Promise<Record<string, number>> {
  const opts = (seed: number) => ({ seed, device, std: 0.5 });
  const q = randomNormal([1, 14, l, 64], opts(1));
  const k = randomNormal([1, 2, l, 64], opts(2));
  const v = randomNormal([1, 2, l, 64], opts(3));
  const mask = { mask: causal.mask };
  const timing = { reps: 3, inner: l > 1024 ? 1 : 4 };
  const alone = await medianMs(device, () => attentionWithLse(q, k, v, mask), timing);
  const withDp = await medianMs(device, () => attentionWithDpStats(q, k, v, mask), timing);
  const name = `attention_dp_14x${l}x64`;
  const figures: Record<string, number> = {
    [`${name}_ms`]: withDp,
    [`${name}_overhead`]: withDp / alone,
  };
  if (l <= 1024) figures[`dp_stats_14x${l}x64_ms`] = await medianMs(device, () => dpStats(q, k));
  for (const t of [q, k, v]) t.dispose();
  return figures;
}

export async function benchDp(device: Device): Promise<Record<string, number>> {
  const kernels = {
    ...await attentionFigures(device, 512),
    ...await attentionFigures(device, 2048),
  };
  const model = await loadQwen(await writeQwenShape("0.5b"), device);
  const rng = new Rng(5);
  const ids = (n: number) => Int32Array.from({ length: n }, () => rng.int(model.config.vocabSize));
  const x512 = ids(512);
  const forward = (dp: boolean, x: Int32Array) =>
    scopeAsync(async () => {
      const input = tensor(x, [1, x.length], { device });
      const out = decoder(
        model.params,
        input,
        model.config,
        dp ? { dp: "only" } : { logits: false },
      );
      if (dp) return await dpFromStats(out.dpStats!, [x.length]);
      return await out.lastHiddenState.data();
    });
  await forward(true, x512); // compile
  await forward(false, x512);
  const withDp = await median(() => forward(true, x512), 3);
  const without = await median(() => forward(false, x512), 3);
  await forward(true, ids(2048));
  const ours = 512 / (withDp / 1000);
  const peer = await numpyTokensPerS(512);
  return {
    dp_05b_512_tokens_per_s: ours,
    dp_05b_512_overhead: withDp / without,
    dp_05b_2048_peak_rss_mb: peakRssMb(),
    dp_05b_512_vs_numpy: ours / peer,
    ...kernels,
  };
}
