// The interface op lowerings use (tensor/ops/*: `webgpu(gpu, …)`), implemented by the
// kernels in tensor/webgpu/kernels/. It hides the storage strategy.
import type { Storage } from "../device.ts";
import type { DType } from "../dtype.ts";
import type { Meta } from "../op.ts";
import type { StridedCopy } from "../ops/layout.ts";
import type { AttentionAttrs } from "../ops/attention.ts";
import type { DpStatsAttrs } from "../ops/dp_stats.ts";
import type { AdamWAttrs } from "../ops/adamw.ts";
import type { MatmulAttrs } from "../ops/matmul.ts";

/** A tensor as kernels see it (a `Tensor` is one). */
export interface GpuTensor {
  readonly storage: Storage;
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** Kernel families of the WebGPU backend. Every method returns new output storage. */
export interface Gpu {
  /** `texture` or `buffer` (DESIGN 5.1). */
  readonly strategy: "texture" | "buffer";
  /** out = expr(x0, x1, …) elementwise, inputs broadcast to `out.shape` (values f32 or i32). */
  map(expr: string, inputs: readonly GpuTensor[], out: Meta): Storage;
  /** The strided copy behind permute / slice / pad / broadcastTo. */
  copy(x: GpuTensor, out: Meta, plan: StridedCopy): Storage;
  /** A constant tensor. */
  fill(out: Meta, value: number): Storage;
  /** Convert dtype (rounding to bf16/f16 to nearest even). */
  cast(x: GpuTensor, out: Meta, dtype: DType): Storage;
  /** Reduce contiguous rows of `cols` elements: out[r] = fold over x[r·cols …]. */
  reduceRows(kind: "sum" | "max", x: GpuTensor, rows: number, cols: number, out: Meta): Storage;
  /** Softmax over the last axis. */
  softmaxRows(x: GpuTensor, out: Meta): Storage;
  /** RMSNorm over the last axis with weight [cols]. */
  rmsNorm(x: GpuTensor, weight: GpuTensor, eps: number, out: Meta): Storage;
  /** Rows of `table` at `ids`. */
  gather(table: GpuTensor, ids: GpuTensor, out: Meta): Storage;
  /** out[ids[i]] += src[i] (rows). */
  scatterAdd(src: GpuTensor, ids: GpuTensor, out: Meta): Storage;
  /** Rotary embedding, rotate-half. */
  rope(x: GpuTensor, cos: GpuTensor, sin: GpuTensor, out: Meta): Storage;
  /** Per-row cross-entropy from logits. */
  crossEntropy(logits: GpuTensor, targets: GpuTensor, ignoreIndex: number, out: Meta): Storage;
  /** Its gradient with respect to the logits, scaled per row by g. */
  crossEntropyGrad(
    logits: GpuTensor,
    targets: GpuTensor,
    g: GpuTensor,
    ignoreIndex: number,
    out: Meta,
  ): Storage;
  /** Batched matmul with transposed operands; bf16/f16 operands read in-kernel. */
  matmul(a: GpuTensor, b: GpuTensor, attrs: MatmulAttrs, out: Meta): Storage;
  /** Fused attention forward: [out, lse]. */
  attention(inputs: readonly GpuTensor[], attrs: AttentionAttrs, outs: readonly Meta[]): Storage[];
  /** Fused attention backward: [dq, dk, dv]. */
  attentionBackward(
    inputs: readonly GpuTensor[],
    attrs: AttentionAttrs,
    outs: readonly Meta[],
  ): Storage[];
  /** DP statistics: per query row (before, diagonal, after, logsumexp) of the unmasked softmax. */
  dpStats(inputs: readonly GpuTensor[], attrs: DpStatsAttrs, out: Meta): Storage;
  /** Inverted dropout: x·scale where `dropout_hash(seed, i) >> 8 < threshold`, else 0. */
  dropout(x: GpuTensor, seed: number, threshold: number, scale: number, out: Meta): Storage;
  /** One fused AdamW step: inputs [p, g, m, v, scale?], outputs [p, m, v]. */
  adamw(inputs: readonly GpuTensor[], attrs: AdamWAttrs, outs: readonly Meta[]): Storage[];
  /** Give back a temporary storage that no tensor holds. */
  free(storage: Storage): void;
}
