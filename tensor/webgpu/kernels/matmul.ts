// Matmul on WebGPU. This first kernel is the simple, correct one: one invocation per output
// texel, a dot product per element. (Fast variants: see the engine issue.)
import type { Storage } from "../../device.ts";
import type { Meta } from "../../op.ts";
import { type MatmulAttrs, matmulDims } from "../../ops/matmul.ts";
import { sizeOf } from "../../tensor.ts";
import type { WebGpuDevice } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { copy, elementwise } from "./elementwise.ts";
import { stridesOf } from "../../shape.ts";

/** Give `x` the full batch shape (a copy) unless its batch is already full or all ones. */
export function batchOperand(
  dev: WebGpuDevice,
  x: GpuTensor,
  batch: readonly number[],
): { t: GpuTensor; shared: boolean; temp: boolean } {
  const xb = x.shape.slice(0, -2);
  const nb = sizeOf(batch);
  if (sizeOf(xb) === nb && xb.length <= batch.length) {
    return { t: x, shared: nb === 1, temp: false };
  }
  if (sizeOf(xb) === 1) return { t: x, shared: true, temp: false };
  const shape = [...batch, ...x.shape.slice(-2)];
  const lead = shape.length - x.shape.length;
  const s = stridesOf(x.shape);
  const storage = copy(dev, x, { shape, dtype: x.dtype === "i32" ? "i32" : "f32" }, {
    stride: shape.map((_, d) => (d < lead || x.shape[d - lead] === 1 ? 0 : s[d - lead]!)),
    shift: shape.map(() => 0),
    limit: shape.map(() => 2 ** 31 - 1),
  });
  return { t: { storage, shape, dtype: "f32" }, shared: false, temp: true };
}

/** out[t, i, j] = Σ_p a[t, i, p] · b[t, p, j], honouring transposes. */
export function matmulSimple(
  dev: WebGpuDevice,
  a: GpuTensor,
  b: GpuTensor,
  attrs: MatmulAttrs,
  out: Meta,
): Storage {
  const { m, k, n, batch } = matmulDims(a, b, attrs);
  const A = batchOperand(dev, a, batch), B = batchOperand(dev, b, batch);
  // strides of element (i, p) in a and (p, j) in b
  const [ai, ap] = attrs.transA ? [1, m] : [k, 1];
  const [bp, bj] = attrs.transB ? [1, k] : [n, 1];
  const body = `let m = u(X); let k = u(X + 1u); let n = u(X + 2u);
  let t = e / (m * n); let i = (e / n) % m; let j = e % n;
  var pa = select(t * m * k, 0u, u(X + 7u) == 1u) + i * u(X + 3u);
  var pb = select(t * k * n, 0u, u(X + 8u) == 1u) + j * u(X + 6u);
  let sa = u(X + 4u); let sb = u(X + 5u);
  var acc = 0.0;
  for (var p = 0u; p < k; p++) { acc += ld_x0(pa) * ld_x1(pb); pa += sa; pb += sb; }
  return acc;`;
  const result = elementwise(dev, {
    name: "matmul-simple",
    inputs: [A.t, B.t],
    out,
    body,
    extra: [m, k, n, ai, ap, bp, bj, A.shared ? 1 : 0, B.shared ? 1 : 0],
    raw: true,
  });
  if (A.temp) dev.release(A.t.storage);
  if (B.temp) dev.release(B.t.storage);
  return result;
}
