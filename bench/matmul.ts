// Matmul benchmarks: GFLOP/s of square and Qwen2.5-0.5B-shaped products (f32, and with
// bf16 weights), and the LM-head matrix-vector product in weight bytes per second.
// Run alone: deno run -A bench/matmul.ts [texture|buffer|auto]
import type { Device } from "../tensor/device.ts";
import type { DType } from "../tensor/dtype.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { randomUniform } from "../tensor/create.ts";
import { cast } from "../tensor/ops/elementwise.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** Median seconds of `fn`, each sample timing enough back-to-back calls to last ~`target` s. */
async function timeIt(device: Device, fn: () => Tensor, target = 0.4, samples = 5) {
  const run = async (reps: number) => {
    const outs: Tensor[] = [];
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) outs.push(fn());
    await device.sync();
    const s = (performance.now() - t0) / 1000;
    for (const o of outs) o.dispose();
    return s;
  };
  const first = await run(1); // warm-up: pipeline compile, weight packing
  const once = Math.min(first, await run(1));
  const reps = Math.max(1, Math.min(50, Math.round(target / once)));
  const times: number[] = [];
  for (let i = 0; i < samples; i++) times.push((await run(reps)) / reps);
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** A random [rows, cols] matrix of `dtype` on `device`. */
function matrix(device: Device, rows: number, cols: number, dtype: DType, seed: number): Tensor {
  const x = randomUniform([rows, cols], { seed, device, low: -1, high: 1 });
  if (dtype === "f32") return x;
  const y = cast(x, dtype);
  x.dispose();
  return y;
}

/** GFLOP/s of x [m, k] @ wᵀ (w stored [n, k] as a Linear weight, in `dtype`). */
async function gflops(device: Device, m: number, k: number, n: number, dtype: DType) {
  const x = matrix(device, m, k, "f32", 1);
  const w = matrix(device, n, k, dtype, 2);
  const s = await timeIt(device, () => matmul(x, w, { transB: true }));
  x.dispose();
  w.dispose();
  return (2 * m * k * n) / s / 1e9;
}

/** Benchmark figures for `device` (keys end in their unit). */
export async function benchMatmul(device: Device): Promise<Record<string, number>> {
  const r: Record<string, number> = {};
  r.matmul_1024_gflops = await gflops(device, 1024, 1024, 1024, "f32");
  r.matmul_1024_bf16_gflops = await gflops(device, 1024, 1024, 1024, "bf16");
  for (const [k, n] of [[896, 4864], [4864, 896], [896, 896]] as const) {
    r[`matmul_512x${k}x${n}_gflops`] = await gflops(device, 512, k, n, "f32");
    r[`matmul_512x${k}x${n}_bf16_gflops`] = await gflops(device, 512, k, n, "bf16");
  }
  // LM head while decoding: one token's hidden state against the bf16 [V, D] embedding
  const vocab = 151936, hidden = 896;
  const x = matrix(device, 1, hidden, "f32", 3);
  const w = matrix(device, vocab, hidden, "bf16", 4);
  const s = await timeIt(device, () => matmul(x, w, { transB: true }), 0.6, 5);
  r.lm_head_gemv_gbps = (vocab * hidden * 2) / s / 1e9;
  x.dispose();
  w.dispose();
  return r;
}

if (import.meta.main) {
  const { createWebGpuDevice } = await import("../tensor/webgpu/device.ts");
  const strategy = (Deno.args[0] ?? "auto") as "texture" | "buffer" | "auto";
  const device = await createWebGpuDevice(strategy);
  if (!device) {
    console.warn("bench/matmul: no WebGPU adapter");
    Deno.exit(0);
  }
  console.log(JSON.stringify({ adapter: device.name, ...(await benchMatmul(device)) }));
}
