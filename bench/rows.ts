import type { Device } from "../tensor/device.ts";
import { randomNormal } from "../tensor/create.ts";
import { add } from "../tensor/ops/elementwise.ts";
import { rmsNorm } from "../tensor/ops/norm.ts";
import { softmax } from "../tensor/ops/softmax.ts";
import { medianMs } from "./timing.ts";

/** Memory-bound kernels at Qwen2.5-0.5B sizes: softmax rows, add, RMSNorm. */
export async function benchRows(device: Device): Promise<Record<string, number>> {
  const scores = randomNormal([14, 512, 512], { device, seed: 1 });
  const a = randomNormal([512, 4864], { device, seed: 2 }),
    b = randomNormal([512, 4864], { device, seed: 3 });
  const h = randomNormal([512, 896], { device, seed: 4 }),
    w = randomNormal([896], { device, seed: 5 });
  const result = {
    softmax_14x512x512_ms: await medianMs(device, () => softmax(scores)),
    add_512x4864_ms: await medianMs(device, () => add(a, b)),
    rmsnorm_512x896_ms: await medianMs(device, () => rmsNorm(h, w, 1e-6)),
  };
  for (const t of [scores, a, b, h, w]) t.dispose();
  return result;
}
