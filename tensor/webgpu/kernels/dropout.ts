// Dropout on WebGPU: the generic elementwise kernel with the mask hash as a helper. The
// seed, keep threshold and scale are uniforms, so one pipeline serves every step's seed.
import type { Storage } from "../../device.ts";
import type { Meta } from "../../op.ts";
import { dropoutHashWgsl } from "../../ops/dropout.ts";
import { sameShape } from "../../shape.ts";
import { f32Word, type WebGpuDevice } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { elementwise } from "./elementwise.ts";

/** out[e] = x[e]·scale where `dropout_hash(seed, e) >> 8 < threshold`, else 0. */
export function dropout(
  dev: WebGpuDevice,
  x: GpuTensor,
  seed: number,
  threshold: number,
  scale: number,
  out: Meta,
): Storage {
  // a same-shape f32 input is read a texel at a time (elementwise's `preloaded`)
  const preload = x.dtype === "f32" && sameShape(x.shape, out.shape);
  const load = preload ? "p0[texel_lane]" : "ld_x0(e)";
  const body = `if ((dropout_hash(u(X), e) >> 8u) < u(X + 1u)) { return ${load} * uf(X + 2u); }
  return 0.0;`;
  return elementwise(dev, {
    name: "dropout",
    inputs: [x],
    out,
    body,
    extra: [seed >>> 0, threshold, f32Word(scale)],
    raw: true,
    helpers: dropoutHashWgsl,
    preloaded: preload ? [0] : [],
  });
}
