// The WebGPU kernel families, bound to a device: the `Gpu` that op lowerings call.
import type { WebGpuDevice } from "../device.ts";
import type { Gpu } from "../gpu.ts";
import { adamw } from "./adamw.ts";
import { attention, attentionBackward } from "./attention.ts";
import { dpStats } from "./dp_stats.ts";
import { dropout } from "./dropout.ts";
import { cast, copy, fill, map } from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import {
  crossEntropy,
  crossEntropyGrad,
  gather,
  reduceRows,
  rmsNormRows,
  rope,
  scatterAdd,
  softmaxRows,
} from "./rows.ts";

/** The kernels of one device. */
export function createKernels(dev: WebGpuDevice): Gpu {
  return {
    strategy: dev.strategy,
    map: (expr, inputs, out) => map(dev, expr, inputs, out),
    copy: (x, out, plan) => copy(dev, x, out, plan),
    fill: (out, value) => fill(dev, out, value),
    cast: (x, out, dtype) => cast(dev, x, out, dtype),
    reduceRows: (kind, x, rows, cols, out) => reduceRows(dev, kind, x, rows, cols, out),
    softmaxRows: (x, out) => softmaxRows(dev, x, out),
    rmsNorm: (x, w, eps, out) => rmsNormRows(dev, x, w, eps, out),
    gather: (table, ids, out) => gather(dev, table, ids, out),
    scatterAdd: (src, ids, out) => scatterAdd(dev, src, ids, out),
    rope: (x, c, s, out) => rope(dev, x, c, s, out),
    crossEntropy: (logits, targets, ignoreIndex, out) =>
      crossEntropy(dev, logits, targets, ignoreIndex, out),
    crossEntropyGrad: (logits, targets, g, ignoreIndex, out) =>
      crossEntropyGrad(dev, logits, targets, g, ignoreIndex, out),
    matmul: (a, b, attrs, out) => matmul(dev, a, b, attrs, out),
    attention: (inputs, attrs, outs) => attention(dev, inputs, attrs, outs),
    attentionBackward: (inputs, attrs, outs) => attentionBackward(dev, inputs, attrs, outs),
    dpStats: (inputs, attrs, out) => dpStats(dev, inputs, attrs, out),
    dropout: (x, seed, threshold, scale, out) => dropout(dev, x, seed, threshold, scale, out),
    adamw: (inputs, attrs, outs) => adamw(dev, inputs, attrs, outs),
    free: (storage) => dev.release(storage),
  };
}
