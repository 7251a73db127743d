// Matmul on WebGPU: the choice of kernel per storage strategy.
// Texture strategy (lavapipe): panel-packed operands and a register-blocked kernel
// (matmul_texture.ts). Buffer strategy (real GPUs): shared-memory tiles (matmul_buffer.ts).
import type { Storage } from "../../device.ts";
import type { Meta } from "../../op.ts";
import type { MatmulAttrs } from "../../ops/matmul.ts";
import { sizeOf } from "../../tensor.ts";
import type { WebGpuDevice } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { matmulBuffer } from "./matmul_buffer.ts";
import { matmulPlan } from "./matmul_plan.ts";
import { matmulTexture } from "./matmul_texture.ts";

/** out[t, i, j] = Σ_p a[t, i, p] · b[t, p, j], honouring transposes and batch broadcasting. */
export function matmul(
  dev: WebGpuDevice,
  a: GpuTensor,
  b: GpuTensor,
  attrs: MatmulAttrs,
  out: Meta,
): Storage {
  const plan = matmulPlan(a, b, attrs);
  if (sizeOf(out.shape) === 0) return dev.allocFor(out);
  return dev.strategy === "texture"
    ? matmulTexture(dev, a, b, plan, out)
    : matmulBuffer(dev, a, b, plan, out);
}
