// The shape plan both matmul kernels share: sizes, and how output batches map to operand
// batches (broadcasting without copies).
import type { MatmulAttrs } from "../../ops/matmul.ts";
import { matmulDims } from "../../ops/matmul.ts";
import { stridesOf } from "../../shape.ts";
import { sizeOf } from "../../tensor.ts";
import type { GpuTensor } from "../gpu.ts";

/** Largest batch rank the kernels map (output batch index → operand batch indices). */
const maxBatchRank = 8;

/** What a matmul kernel needs to know: sizes, and how output batches map to operand batches. */
export interface MatmulPlan {
  m: number;
  k: number;
  n: number;
  /** Number of output batches (the grid's z). */
  batches: number;
  /** Batches stored in a and in b (before broadcasting). */
  aBatches: number;
  bBatches: number;
  transA: boolean;
  transB: boolean;
  /** `batchWords.length` uniform words read by `batchIndexWgsl`. */
  batchWords: number[];
}

/**
 * The plan of `a @ b`. A batched a times a shared b (not transposed) is one tall matrix:
 * [B, M, K] @ [K, N] runs as [B·M, K] @ [K, N], so no rows are padded per batch.
 */
export function matmulPlan(a: GpuTensor, b: GpuTensor, attrs: MatmulAttrs): MatmulPlan {
  const { m, k, n, batch } = matmulDims(a, b, attrs);
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  const batches = sizeOf(batch), aBatches = sizeOf(aBatch), bBatches = sizeOf(bBatch);
  const base = { k, n, transA: attrs.transA, transB: attrs.transB, bBatches };
  if (bBatches === 1 && aBatches === batches && !attrs.transA) {
    return { ...base, m: m * batches, batches: 1, aBatches: 1, batchWords: batchWords([], [], []) };
  }
  return {
    ...base,
    m,
    batches,
    aBatches,
    batchWords: batchWords(batch, broadcastStrides(aBatch, batch), broadcastStrides(bBatch, batch)),
  };
}

/** Strides (in batches) of an operand's batch shape broadcast to `batch`; 0 where broadcast. */
function broadcastStrides(shape: readonly number[], batch: readonly number[]): number[] {
  const lead = batch.length - shape.length;
  const s = stridesOf(shape);
  return batch.map((_, d) => (d < lead || shape[d - lead] === 1 ? 0 : s[d - lead]!));
}

function batchWords(batch: readonly number[], sa: readonly number[], sb: readonly number[]) {
  if (batch.length > maxBatchRank) {
    throw new Error(`matmul: batch rank ${batch.length} exceeds the kernels' ${maxBatchRank}`);
  }
  const pad = (v: readonly number[]) => [...v, ...new Array(maxBatchRank - v.length).fill(0)];
  return [batch.length, ...pad(batch), ...pad(sa), ...pad(sb)];
}

/** WGSL `batchIndex(t) -> vec2<u32>`: the a and b batches that output batch t reads. */
export function batchIndexWgsl(firstWord: number): string {
  const w = (i: string) => `u(${firstWord}u + ${i})`;
  return `fn batchIndex(t: u32) -> vec2<u32> {
  var rem = t; var ia = 0u; var ib = 0u;
  for (var d = i32(${w("0u")}) - 1; d >= 0; d--) {
    let dim = ${w("1u + u32(d)")};
    let c = rem % dim;
    rem /= dim;
    ia += c * ${w(`${1 + maxBatchRank}u + u32(d)`)};
    ib += c * ${w(`${1 + 2 * maxBatchRank}u + u32(d)`)};
  }
  return vec2<u32>(ia, ib);
}`;
}
