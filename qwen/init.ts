// Seeded initialisation of a Qwen2 params tree (Hugging Face `_init_weights`: normal(0,
// initializer_range) for linear and embedding weights, zero biases, unit norm weights).
import { full, randomNormal } from "../tensor/create.ts";
import type { Device } from "../tensor/device.ts";
import { foldIn } from "../tensor/random.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { treeFromNames } from "../nn/params.ts";
import type { QwenParams } from "./checkpoint.ts";
import { expectedShapes, type Qwen2Config } from "./config.ts";

/** A freshly initialised params tree; the same seed gives the same weights on every backend. */
export function initQwenParams(
  config: Qwen2Config,
  seed: number,
  device: Device,
  std = 0.02,
): QwenParams {
  const tensors = new Map<string, Tensor>();
  let i = 0;
  for (const [name, shape] of expectedShapes(config)) {
    const s = foldIn(seed, i++);
    if (name.endsWith("norm.weight")) tensors.set(name, full(shape, 1, { device }));
    else if (name.endsWith(".bias")) tensors.set(name, full(shape, 0, { device }));
    else tensors.set(name, randomNormal(shape, { seed: s, std, device }));
  }
  return treeFromNames(tensors) as unknown as QwenParams;
}
