// Batched matrix multiply with optionally transposed operands. bf16/f16 operands are read
// as stored and upcast inside the kernel (no f32 copy of weights).
import { computeType } from "../dtype.ts";
import { apply1, fail, floats, type Meta, type OpDef } from "../op.ts";
import { broadcastIndex, broadcastShapes } from "../shape.ts";
import { fmtShape, sizeOf, type Tensor } from "../tensor.ts";
import { unbroadcast } from "./elementwise.ts";
import { reshape } from "./layout.ts";

/** `transA`: a is stored [..., K, M]; `transB`: b is stored [..., N, K]. */
export interface MatmulAttrs {
  transA: boolean;
  transB: boolean;
}

/** The logical M, K, N and broadcast batch shape of a matmul. */
export function matmulDims(a: Meta, b: Meta, { transA, transB }: MatmulAttrs) {
  if (a.shape.length < 2 || b.shape.length < 2) {
    fail("matmul", `operands need rank ≥ 2: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`);
  }
  const ra = a.shape.length, rb = b.shape.length;
  const m = a.shape[transA ? ra - 1 : ra - 2]!, k = a.shape[transA ? ra - 2 : ra - 1]!;
  const k2 = b.shape[transB ? rb - 1 : rb - 2]!, n = b.shape[transB ? rb - 2 : rb - 1]!;
  if (k !== k2) {
    fail(
      "matmul",
      `inner dimensions differ: ${fmtShape(a.shape)}${transA ? "ᵀ" : ""} @ ${fmtShape(b.shape)}${
        transB ? "ᵀ" : ""
      }`,
    );
  }
  const batch = broadcastShapes("matmul", [a.shape.slice(0, -2), b.shape.slice(0, -2)]);
  return { m, k, n, batch };
}

/** [..., M, K] @ [..., K, N] → [..., M, N] f32, batch dims broadcast. */
export const matmulOp: OpDef<MatmulAttrs> = {
  name: "matmul",
  infer([a, b], attrs) {
    if (computeType(a!.dtype) !== "f32" || computeType(b!.dtype) !== "f32") {
      fail(
        "matmul",
        `needs float operands: ${a!.dtype} ${fmtShape(a!.shape)} @ ${b!.dtype} ${
          fmtShape(b!.shape)
        }`,
      );
    }
    const { m, n, batch } = matmulDims(a!, b!, attrs);
    return [{ shape: [...batch, m, n], dtype: "f32" }];
  },
  reference([a, b], attrs, [out]) {
    const { m, k, n, batch } = matmulDims(a!, b!, attrs);
    const nb = sizeOf(batch);
    const ia = broadcastIndex(a!.shape.slice(0, -2), batch);
    const ib = broadcastIndex(b!.shape.slice(0, -2), batch);
    const res = floats(sizeOf(out!.shape));
    const va = a!.values, vb = b!.values;
    // element (i, p) of a and (p, j) of b, honouring the transposes
    const [ai, ap] = attrs.transA ? [1, m] : [k, 1];
    const [bp, bj] = attrs.transB ? [1, k] : [n, 1];
    for (let t = 0; t < nb; t++) {
      const oa = ia[t]! * m * k, ob = ib[t]! * k * n, oc = t * m * n;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let acc = 0;
          for (let p = 0; p < k; p++) acc += va[oa + i * ai + p * ap]! * vb[ob + p * bp + j * bj]!;
          res[oc + i * n + j] = acc;
        }
      }
    }
    return [res];
  },
  webgpu: (gpu, [a, b], attrs, [out]) => [gpu.matmul(a!, b!, attrs, out!)],
  vjp: ([g], { inputs: [a, b], attrs: { transA, transB }, needsGrad: [needA, needB] }) => {
    if (!g) return [undefined, undefined];
    // a frozen operand (a weight outside the trained subtree) gets no product at all
    const ga = !needA
      ? undefined
      : transA
      ? matmul(b!, g, { transA: transB, transB: true })
      : matmul(g, b!, { transB: !transB });
    if (!needB) return [ga && unbroadcast(ga, a!), undefined];
    // a batched input against a shared 2-D weight (a Linear layer): the weight's gradient is
    // one product over all rows, not per-batch products summed afterwards
    const rows = (x: Tensor) => reshape(x, [-1, x.shape[x.rank - 1]!]);
    const shared = b!.rank === 2 && a!.rank > 2 && !transA;
    const [ga2, gg] = shared ? [rows(a!), rows(g)] : [a!, g];
    const gb = transB
      ? matmul(gg, ga2, { transA: true, transB: transA })
      : matmul(ga2, gg, { transA: !transA });
    return [ga && unbroadcast(ga, a!), unbroadcast(gb, b!)];
  },
};

/**
 * Batched matrix product. `transA` / `transB` read an operand as its last two axes swapped,
 * without a copy (a Linear layer is `matmul(x, weight, { transB: true })`).
 * @example
 * const y = matmul(x, w, { transB: true }); // x [B, L, in] · w [out, in]ᵀ → [B, L, out]
 */
export function matmul(a: Tensor, b: Tensor, opts: Partial<MatmulAttrs> = {}): Tensor {
  return apply1(matmulOp, [a, b], { transA: opts.transA ?? false, transB: opts.transB ?? false });
}
