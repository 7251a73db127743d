import type { Device } from "../tensor/device.ts";
import { scope } from "../tensor/scope.ts";

/**
 * Median wall time (ms) of one `run` on `device`: each of `reps` samples (after `warmup`)
 * runs it `inner` times and waits once for the device, so the ~10 ms cost of an awaited
 * WebGPU promise (DESIGN 5.1) is spread over `inner` runs. Tensors `run` creates are freed.
 */
export async function medianMs(
  device: Device,
  run: () => unknown,
  { reps = 5, warmup = 1, inner = 4 }: { reps?: number; warmup?: number; inner?: number } = {},
): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < warmup + reps; i++) {
    const start = performance.now();
    for (let j = 0; j < inner; j++) {
      scope(() => {
        run();
      });
    }
    await device.sync();
    if (i >= warmup) times.push((performance.now() - start) / inner);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}
