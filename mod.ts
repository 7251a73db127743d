/**
 * A functional tensor library for Deno with WebGPU kernels and reverse-mode autograd,
 * built to reproduce the UBMoE paper (see README.md).
 *
 * @example
 * ```ts
 * import { init, matmul, randomNormal, sum, valueAndGrad } from "./mod.ts";
 * await init();
 * const w = randomNormal([4, 3], { seed: 1 });
 * const x = randomNormal([2, 4], { seed: 2 });
 * const [loss, dw] = valueAndGrad((w) => sum(matmul(x, w)))(w);
 * console.log(await loss.item(), await dw.data());
 * ```
 * @module
 */
export * from "./tensor/mod.ts";
export * from "./autograd/mod.ts";
export * from "./nn/mod.ts";
