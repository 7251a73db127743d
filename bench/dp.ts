// DP figures on the Qwen2.5-0.5B shape: tokens/s of a 512-token sample, the cost of the DP
// statistics over the same forward without them, peak memory at 2048 tokens, and the ratio
// to the paper's way done in numpy/OpenBLAS (../shared/bench/numpy_dp_baseline.py) when
// python3 with numpy is available.
import { dpFromStats } from "../nn/dp.ts";
import { loadQwen } from "../qwen/checkpoint.ts";
import { decoder } from "../qwen/decoder.ts";
import { tensor } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { Rng } from "../tensor/random.ts";
import { scopeAsync } from "../tensor/scope.ts";
import { peakRssMb } from "./qwen.ts";
import { ensureQwen05b } from "./qwen05b.ts";

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
    const m = /forward\+DP L=\d+: median [\d.]+ s = ([\d.]+) tokens\/s/.exec(new TextDecoder().decode(out.stdout));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

export async function benchDp(device: Device): Promise<Record<string, number>> {
  const model = await loadQwen(await ensureQwen05b(), device);
  const rng = new Rng(5);
  const ids = (n: number) => Int32Array.from({ length: n }, () => rng.int(model.config.vocabSize));
  const x512 = ids(512);
  const forward = (dp: boolean, x: Int32Array) =>
    scopeAsync(async () => {
      const input = tensor(x, [1, x.length], { device });
      const out = decoder(model.params, input, model.config, dp ? { dp: "only" } : { logits: false });
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
  };
}
