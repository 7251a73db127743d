// Cross-entropy from logits, fused: log-softmax is never materialised (DESIGN 3.7).
import { isFloat } from "../dtype.ts";
import { apply1, fail, floats, nonDifferentiable, type OpDef } from "../op.ts";
import { fmtShape, type Tensor } from "../tensor.ts";

interface CrossEntropyAttrs {
  /** Targets equal to this contribute 0 loss and 0 gradient (Hugging Face uses −100). */
  ignoreIndex: number;
}

function check(
  logits: { shape: readonly number[]; dtype: string },
  targets: { shape: readonly number[]; dtype: string },
) {
  const ok = logits.shape.length === 2 && targets.shape.length === 1 &&
    targets.shape[0] === logits.shape[0] &&
    isFloat(logits.dtype as "f32") && targets.dtype === "i32";
  if (!ok) {
    fail(
      "crossEntropy",
      `needs logits [N, V] float and targets [N] i32, got ${logits.dtype} ${
        fmtShape(logits.shape)
      } and ${targets.dtype} ${fmtShape(targets.shape)}`,
    );
  }
}

/** log Σ exp of x[start … start+n), in f64, stabilised by the maximum. */
function rowLogSumExp(x: ArrayLike<number>, start: number, n: number): number {
  let m = -Infinity;
  for (let c = 0; c < n; c++) m = Math.max(m, x[start + c]!);
  let s = 0;
  for (let c = 0; c < n; c++) s += Math.exp(x[start + c]! - m);
  return m + Math.log(s);
}

/** Per-row loss −log softmax(logits[n])[targets[n]] ([N] f32; 0 where ignored). */
export const crossEntropyOp: OpDef<CrossEntropyAttrs> = {
  name: "crossEntropy",
  infer([logits, targets]) {
    check(logits!, targets!);
    return [{ shape: [logits!.shape[0]!], dtype: "f32" }];
  },
  reference([logits, targets], { ignoreIndex }) {
    const [n, v] = logits!.shape as [number, number];
    const x = logits!.values, out = floats(n);
    for (let r = 0; r < n; r++) {
      const t = targets!.values[r]!;
      if (t === ignoreIndex || t < 0 || t >= v) continue;
      out[r] = rowLogSumExp(x, r * v, v) - x[r * v + t]!;
    }
    return [out];
  },
  webgpu: (
    gpu,
    [logits, targets],
    { ignoreIndex },
    [out],
  ) => [gpu.crossEntropy(logits!, targets!, ignoreIndex, out!)],
  vjp: ([g], { inputs: [logits, targets], attrs }) => [
    g && apply1(crossEntropyGradOp, [logits!, targets!, g], attrs),
    undefined,
  ],
};

/** d(loss)/d(logits) = (softmax(logits) − onehot(target)) · g per row; 0 rows where ignored. */
export const crossEntropyGradOp: OpDef<CrossEntropyAttrs> = {
  name: "crossEntropyGrad",
  infer([logits, targets]) {
    check(logits!, targets!);
    return [{ shape: logits!.shape, dtype: "f32" }];
  },
  reference([logits, targets, g], { ignoreIndex }) {
    const [n, v] = logits!.shape as [number, number];
    const x = logits!.values, out = floats(n * v);
    for (let r = 0; r < n; r++) {
      const t = targets!.values[r]!;
      if (t === ignoreIndex || t < 0 || t >= v) continue;
      const lse = rowLogSumExp(x, r * v, v);
      const gr = g!.values[r]!;
      for (let c = 0; c < v; c++) {
        out[r * v + c] = (Math.exp(x[r * v + c]! - lse) - (c === t ? 1 : 0)) * gr;
      }
    }
    return [out];
  },
  webgpu: (gpu, [logits, targets, g], { ignoreIndex }, [out]) => [
    gpu.crossEntropyGrad(logits!, targets!, g!, ignoreIndex, out!),
  ],
  vjp: nonDifferentiable,
};

/**
 * Per-row cross-entropy of `logits` [N, V] against `targets` [N] (i32); rows whose target is
 * `ignoreIndex` give 0. Take the mean over counted rows yourself (DESIGN 3.7).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = -100): Tensor {
  return apply1(crossEntropyOp, [logits, targets], { ignoreIndex });
}
