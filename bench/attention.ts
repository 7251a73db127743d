// Fused attention against the two matmuls it replaces (DESIGN 5.1): Qwen2.5-0.5B-shaped
// causal attention, 14 query heads sharing 2 key/value heads, 512 tokens, head dim 64.
import type { Device } from "../tensor/device.ts";
import { randomNormal } from "../tensor/create.ts";
import { attentionBackwardOp, attentionWithLse } from "../tensor/ops/attention.ts";
import { matmul } from "../tensor/ops/matmul.ts";
import { apply } from "../tensor/op.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { causal } from "../nn/masks.ts";
import { medianMs } from "./timing.ts";

const [H, Hk, L, D] = [14, 2, 512, 64];

/**
 * Milliseconds for causal attention forward and backward (B = 1, H = 14, Hk = 2, L = S = 512,
 * D = 64) and for q·kᵀ plus p·v over the 14 heads as two batched matmuls.
 */
export async function benchAttention(device: Device): Promise<Record<string, number>> {
  const opts = (seed: number) => ({ seed, device, std: 0.5 });
  const q = randomNormal([1, H, L, D], opts(1));
  const k = randomNormal([1, Hk, L, D], opts(2));
  const v = randomNormal([1, Hk, L, D], opts(3));
  const dOut = randomNormal([1, H, L, D], opts(4));
  // the matmul peers: every query head against its own copy of the keys
  const kFull = randomNormal([1, H, L, D], opts(5));
  const vFull = randomNormal([1, H, L, D], opts(6));
  const p = randomNormal([1, H, L, L], opts(7));
  const mask = { mask: causal.mask };
  const [out, lse] = attentionWithLse(q, k, v, mask);
  const attrs = {
    mask: causal.mask,
    scale: 1 / Math.sqrt(D),
    queryOffset: 0,
    hasKeyValid: false,
    tokenArrays: 0,
  };
  const result = {
    attention_fwd_14x512x64_ms: await medianMs(device, () => attentionWithLse(q, k, v, mask)),
    attention_bwd_14x512x64_ms: await medianMs(
      device,
      () => apply(attentionBackwardOp, [q, k, v, out, lse, dOut], attrs),
    ),
    attention_matmuls_14x512x64_ms: await medianMs(device, () => {
      matmul(q, kFull, { transB: true });
      matmul(p, vFull);
    }),
  };
  for (const t of [q, k, v, dOut, kFull, vFull, p, out, lse] as Tensor[]) t.dispose();
  return result;
}

if (import.meta.main) {
  const { createWebGpuDevice } = await import("../tensor/webgpu/device.ts");
  const device = await createWebGpuDevice(
    (Deno.env.get("TENSOR_STORAGE") ?? "auto") as "auto" | "texture" | "buffer",
  );
  if (!device) throw new Error("bench/attention: no WebGPU adapter");
  console.log(JSON.stringify(await benchAttention(device)));
}
