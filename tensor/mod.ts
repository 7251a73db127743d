/**
 * The tensor engine: the immutable `Tensor`, creation, ops, the two backends and memory
 * scopes. Every op is defined once in `tensor/ops/` (shape rule, reference, WebGPU, VJP).
 * @module
 */
export { Tensor } from "./tensor.ts";
export type { DType } from "./dtype.ts";
export type { Device, MemoryStats } from "./device.ts";
export { defaultDevice, init, type InitOptions, setDefaultDevice } from "./backend.ts";
export { reference64Device, referenceDevice } from "./reference.ts";
export { createWebGpuDevice, type StorageStrategy, WebGpuDevice } from "./webgpu/device.ts";
export { keep, scope, scopeAsync } from "./scope.ts";
export { arange, full, ones, randomNormal, randomUniform, tensor, zeros } from "./create.ts";
export { foldIn, Rng } from "./random.ts";
export {
  abs,
  add,
  cast,
  cos,
  div,
  eq,
  exp,
  ge,
  gt,
  le,
  log,
  lt,
  maximum,
  minimum,
  mul,
  ne,
  neg,
  pow,
  rsqrt,
  sigmoid,
  silu,
  sin,
  sqrt,
  sub,
  tanh,
  where,
} from "./ops/elementwise.ts";
export { broadcastTo, concat, pad, permute, reshape, slice, transpose } from "./ops/layout.ts";
export { logsumexp, max, mean, sum } from "./ops/reduce.ts";
export { matmul } from "./ops/matmul.ts";
export { gather, scatterAdd } from "./ops/gather.ts";
export { softmax } from "./ops/softmax.ts";
export { rope } from "./ops/rope.ts";
export { dropout } from "./ops/dropout.ts";
export { crossEntropy } from "./ops/cross_entropy.ts";
export { rmsNorm, swiglu } from "./ops/norm.ts";
export { attention, type AttentionOptions, attentionWithLse } from "./ops/attention.ts";
export { always, MaskBool, MaskInt, type MaskVars, maskVars } from "./mask.ts";
export { apply, nonDifferentiable, type OpDef } from "./op.ts";
export { opRegistry } from "./registry.ts";
