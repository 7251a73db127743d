// The fused AdamW step on WebGPU: one invocation per texel reads p, g, m, v (4 texel loads)
// and writes p', m', v' (3 texel stores, the cost that matters on lavapipe: DESIGN 5.1),
// where the composed form took ~10 dispatches and ~10 stores per texel. The scalars are
// uniforms, so the pipeline compiles once (one with and one without the gradient scale).
import type { Storage } from "../../device.ts";
import type { Meta } from "../../op.ts";
import { type AdamWAttrs, adamwScalars } from "../../ops/adamw.ts";
import { sizeOf } from "../../tensor.ts";
import { f32Word, type WebGpuDevice } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { entry, grid, invocationIndex } from "./elementwise.ts";

/** Inputs [p, g, m, v, gradScale?] → storages [p', m', v']. */
export function adamw(
  dev: WebGpuDevice,
  inputs: readonly GpuTensor[],
  attrs: AdamWAttrs,
  outs: readonly Meta[],
): Storage[] {
  const storages = outs.map((o) => dev.allocFor(o));
  const n = sizeOf(outs[0]!.shape);
  if (n === 0) return storages;
  const s = adamwScalars(attrs);
  const words = [
    n,
    ...[s.beta1, s.oneMinusBeta1, s.beta2, s.oneMinusBeta2, s.lrOverC1, s.invSqrtC2, s.eps, s.decay]
      .map(f32Word),
  ];
  // the same operations in the same order as nn/optim.ts's composed update did
  const code = `${entry()} {
  let n = u(0u);
  ${invocationIndex("(n + 3u) / 4u")}
  let t = id;
  let g = ld4_x1(t)${attrs.hasGradScale ? " * ld_x4(0u)" : ""};
  let m = ld4_x2(t) * uf(1u) + g * uf(2u);
  let v = ld4_x3(t) * uf(3u) + (g * g) * uf(4u);
  let p = ld4_x0(t) * uf(8u) - (m * uf(5u)) / (sqrt(v) * uf(6u) + uf(7u));
  // lanes past n are written as zeros, as by every elementwise kernel
  let live = vec4<u32>(t * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(n);
  let zero = vec4<f32>(0.0);
  st_p_out(t, select(zero, p, live));
  st_m_out(t, select(zero, m, live));
  st_v_out(t, select(zero, v, live));
}`;
  dev.dispatch({
    code,
    inputs: inputs.map((tensor, k) => ({ name: `x${k}`, tensor })),
    outputs: storages.map((storage, k) => ({ name: `${"pmv"[k]}_out`, storage })),
    uniforms: words,
    workgroups: grid(Math.ceil(n / 4)),
  });
  return storages;
}
