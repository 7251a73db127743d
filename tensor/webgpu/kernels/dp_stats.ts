// DP statistics on WebGPU: the attention forward kernel with its attention part off
// (attention_forward.ts), so each lane keeps 4 query rows in registers and walks every key in
// blocks of 4, carrying the unmasked online softmax and its before / diagonal / after sums;
// one texel store of (before, diagonal, after, logsumexp) per row.
import type { Storage } from "../../device.ts";
import type { Meta } from "../../op.ts";
import type { DpStatsAttrs } from "../../ops/dp_stats.ts";
import type { WebGpuDevice } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { hasPadWord, maskInputs, padHeads, plan } from "./attention.ts";
import { forwardWgsl } from "./attention_forward.ts";
import { keyLiveWgsl, rowReader } from "./attention_mask.ts";

export function dpStats(
  dev: WebGpuDevice,
  inputs: readonly GpuTensor[],
  attrs: DpStatsAttrs,
  out: Meta,
): Storage {
  const [b, h, l, d] = inputs[0]!.shape as [number, number, number, number];
  const [, hk, s] = inputs[1]!.shape as [number, number, number, number];
  const p = plan({ b, h, l, d, s, group: h / hk }, attrs);
  const storage = dev.allocFor(out);
  if (l === 0 || b * h === 0) return storage;
  const [q, k] = padHeads(dev, inputs.slice(0, 2), p.d4);
  const mask = maskInputs(dev, inputs.slice(2), attrs);
  const helpers = keyLiveWgsl(2, hasPadWord) +
    rowReader("q", "x0", q!.t.dtype, dev.strategy) +
    rowReader("k", "x1", k!.t.dtype, dev.strategy);
  dev.dispatch({
    code: forwardWgsl(helpers, p.dc, p.d4Const, { attention: false, stats: true }),
    inputs: [q!.t, k!.t, ...mask.tensors].map((tensor, i) => ({ name: `x${i}`, tensor })),
    outputs: [{ name: "stats", storage }],
    uniforms: p.words,
    workgroups: [Math.ceil(l / 32), b * h],
  });
  for (const x of [q, k]) if (x!.temp) dev.release(x!.t.storage);
  if (mask.placeholder) dev.release(mask.placeholder);
  return storage;
}
