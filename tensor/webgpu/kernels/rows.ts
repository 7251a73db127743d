// Row kernels: reductions over contiguous rows, softmax, cross-entropy, gather / scatter-add,
// RoPE. Each is the generic elementwise kernel with a body that reads what it needs.
import type { Storage } from "../../device.ts";
import type { Meta } from "../../op.ts";
import { sizeOf } from "../../tensor.ts";
import type { WebGpuDevice } from "../device.ts";
import { f32Word } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { elementwise, map } from "./elementwise.ts";

type RowKind = "sum" | "sumsq" | "max" | "logsumexp";

/**
 * Columns one invocation reduces at most. Mesa 22.3's llvmpipe stops every invocation after
 * 65,535 loop iterations in total (silently: later rows came out short), and one invocation
 * reduces 4 rows, so longer rows are reduced in chunks and the chunks' results combined.
 */
const reduceChunk = 8192;

/** out[r] = fold of x[r·cols … r·cols + cols) in f32 (logsumexp: online max/sum). */
export function reduceRows(
  dev: WebGpuDevice,
  kind: RowKind,
  x: GpuTensor,
  rows: number,
  cols: number,
  out: Meta,
): Storage {
  if (sizeOf(out.shape) !== rows) throw new Error(`reduceRows: output ${rows} rows mismatch`);
  const chunks = Math.ceil(cols / reduceChunk);
  if (chunks <= 1) return reduceChunks(dev, kind, x, cols, cols, out);
  // sums, maxima or logsumexps of each chunk, then the same fold over them (a logsumexp of
  // the chunks' logsumexps is the row's)
  const partialMeta: Meta = {
    shape: [rows, chunks],
    dtype: kind === "logsumexp" ? "f32" : out.dtype,
  };
  const partial = reduceChunks(dev, kind, x, cols, reduceChunk, partialMeta);
  const result = reduceRows(dev, kind, { storage: partial, ...partialMeta }, rows, chunks, out);
  dev.release(partial);
  return result;
}

/** out[r, j] = fold of row r's columns [j·chunk, (j+1)·chunk) (rows = out's size / chunks). */
function reduceChunks(
  dev: WebGpuDevice,
  kind: RowKind,
  x: GpuTensor,
  cols: number,
  chunk: number,
  out: Meta,
): Storage {
  const int = x.dtype === "i32";
  const ty = int ? "i32" : "f32";
  // texel loads when every chunk starts on a texel
  const vec = x.dtype === "f32" && cols % 4 === 0 && chunk % 4 === 0;
  const init = kind === "sum" || kind === "sumsq" ? `${ty}(0)` : int ? "-2147483647i" : "-3.0e38";
  const step = (v: string) => {
    switch (kind) {
      case "sum":
        return `acc += ${v};`;
      case "sumsq":
        return `acc += ${v} * ${v};`;
      case "max":
        return `acc = max(acc, ${v});`;
      case "logsumexp":
        return `{ let v = ${v}; if (v > acc) { s = s * exp(acc - v) + 1.0; acc = v; } else { s += exp(v - acc); } }`;
    }
  };
  const loop = vec
    ? `for (var c = start / 4u; c < end / 4u; c++) {
    let v4 = ld4_x0(c);
    ${step("v4.x")} ${step("v4.y")} ${step("v4.z")} ${step("v4.w")}
  }`
    : `for (var c = start; c < end; c++) { ${step("ld_x0(c)")} }`;
  const result = kind === "logsumexp"
    ? "if (s == 0.0) { return -bitcast<f32>(0x7f800000u); } return acc + log(s);"
    : "return acc;";
  const body = `let cols = u(X); let chunk = u(X + 1u); let chunks = u(X + 2u);
  let r = e / chunks; let j = e % chunks;
  let start = r * cols + j * chunk; let end = r * cols + min(cols, (j + 1u) * chunk);
  var acc = ${init}; var s = 0.0;
  ${loop}
  ${result}`;
  return elementwise(dev, {
    name: `reduce-${kind}`,
    inputs: [x],
    out,
    body,
    extra: [cols, chunk, Math.ceil(cols / chunk)],
    raw: true,
  });
}

/** Row-wise logsumexp as a [..., 1] tensor, in a temporary storage. */
function rowLse(dev: WebGpuDevice, x: GpuTensor): GpuTensor {
  const cols = x.shape[x.shape.length - 1]!;
  const shape = [...x.shape.slice(0, -1), 1];
  const rows = sizeOf(shape);
  const storage = reduceRows(dev, "logsumexp", x, rows, cols, { shape, dtype: "f32" });
  return { storage, shape, dtype: "f32" };
}

/**
 * RMSNorm over the last axis: the rows' sums of squares (one reduction), then
 * x · inverseSqrt(Σx²/cols + eps) · w in one elementwise pass.
 */
export function rmsNormRows(
  dev: WebGpuDevice,
  x: GpuTensor,
  weight: GpuTensor,
  eps: number,
  out: Meta,
): Storage {
  const cols = x.shape[x.shape.length - 1]!;
  const shape = [...x.shape.slice(0, -1), 1];
  const ss = reduceRows(dev, "sumsq", x, sizeOf(shape), cols, { shape, dtype: "f32" });
  const result = elementwise(dev, {
    name: "rms-norm",
    inputs: [x, { storage: ss, shape, dtype: "f32" }, weight],
    out,
    body: "return bx0(e) * inverseSqrt(bx1(e) * uf(X) + uf(X + 1u)) * bx2(e);",
    extra: [f32Word(1 / cols), f32Word(eps)],
  });
  dev.release(ss);
  return result;
}

/** softmax = exp(x − logsumexp(x)) over the last axis. */
export function softmaxRows(dev: WebGpuDevice, x: GpuTensor, out: Meta): Storage {
  const lse = rowLse(dev, x);
  const result = map(dev, "exp(x0 - x1)", [x, lse], out);
  dev.release(lse.storage);
  return result;
}

/** Per-row −log softmax(logits)[target]. */
export function crossEntropy(
  dev: WebGpuDevice,
  logits: GpuTensor,
  targets: GpuTensor,
  ignoreIndex: number,
  out: Meta,
): Storage {
  const lse = rowLse(dev, logits);
  const body = `let v = u(X); let t = ld_x1(e);
  if (t == ui(X + 1u) || t < 0 || u32(t) >= v) { return 0.0; }
  return ld_x2(e) - ld_x0(e * v + u32(t));`;
  const result = elementwise(dev, {
    name: "cross-entropy",
    inputs: [logits, targets, lse],
    out,
    body,
    extra: [logits.shape[1]!, ignoreIndex >>> 0],
    raw: true,
  });
  dev.release(lse.storage);
  return result;
}

/** (softmax(logits) − onehot(target)) · g per row. */
export function crossEntropyGrad(
  dev: WebGpuDevice,
  logits: GpuTensor,
  targets: GpuTensor,
  g: GpuTensor,
  ignoreIndex: number,
  out: Meta,
): Storage {
  const lse = rowLse(dev, logits);
  const body = `let v = u(X); let r = e / v; let c = e % v; let t = ld_x1(r);
  if (t == ui(X + 1u) || t < 0 || u32(t) >= v) { return 0.0; }
  let p = exp(ld_x0(e) - ld_x3(r));
  return (p - select(0.0, 1.0, u32(t) == c)) * ld_x2(r);`;
  // f32 rows of whole texels (vocabularies are multiples of 4): one row index and one load
  // of target, g and lse per texel, not per element (1024 × 37,824 logits: 319 → 176 ms)
  const texel = `let v = u(X); let e0 = t * 4u; let r = e0 / v; let tg = ld_x1(r);
  if (tg == ui(X + 1u) || tg < 0 || u32(tg) >= v) { return vec4<f32>(0.0); }
  var p = exp(ld4_x0(t) - vec4<f32>(ld_x3(r)));
  let k = u32(tg) - (e0 - r * v);
  if (k < 4u) { p[k] -= 1.0; }
  return p * ld_x2(r);`;
  const whole = logits.dtype === "f32" && logits.shape[1]! % 4 === 0;
  const result = elementwise(dev, {
    name: "cross-entropy-grad",
    inputs: [logits, targets, g, lse],
    out,
    body,
    ...(whole ? { texel } : {}),
    extra: [logits.shape[1]!, ignoreIndex >>> 0],
    raw: true,
  });
  dev.release(lse.storage);
  return result;
}

/** Rows of `table` at `ids` (zeros for an id out of range). */
export function gather(dev: WebGpuDevice, table: GpuTensor, ids: GpuTensor, out: Meta): Storage {
  const width = sizeOf(table.shape.slice(1));
  const zero = table.dtype === "i32" ? "0i" : "0.0";
  const body = `let w = u(X); let id = ld_x1(e / w);
  if (id < 0 || u32(id) >= u(X + 1u)) { return ${zero}; }
  return ld_x0(u32(id) * w + e % w);`;
  return elementwise(dev, {
    name: "gather",
    inputs: [table, ids],
    out,
    body,
    extra: [width, table.shape[0]!],
    raw: true,
  });
}

/**
 * out[ids[i]] += src[i] without atomics: first[v] = the first i with ids[i] = v, next[i] =
 * the next i with the same id; each output element then walks its own list.
 */
export function scatterAdd(dev: WebGpuDevice, src: GpuTensor, ids: GpuTensor, out: Meta): Storage {
  const rows = out.shape[0]!;
  const count = sizeOf(ids.shape);
  const width = sizeOf(out.shape.slice(1));
  const flatIds: GpuTensor = { storage: ids.storage, shape: [count], dtype: "i32" };
  const first = elementwise(dev, {
    name: "scatter-first",
    inputs: [flatIds],
    out: { shape: [rows], dtype: "i32" },
    body:
      `for (var i = 0u; i < u(X); i++) { if (ld_x0(i) == i32(e)) { return i32(i); } } return -1i;`,
    extra: [count],
    raw: true,
  });
  const next = elementwise(dev, {
    name: "scatter-next",
    inputs: [flatIds],
    out: { shape: [count], dtype: "i32" },
    body: `let id = ld_x0(e);
  for (var i = e + 1u; i < u(X); i++) { if (ld_x0(i) == id) { return i32(i); } } return -1i;`,
    extra: [count],
    raw: true,
  });
  const firstT: GpuTensor = { storage: first, shape: [rows], dtype: "i32" };
  const nextT: GpuTensor = { storage: next, shape: [count], dtype: "i32" };
  const result = elementwise(dev, {
    name: "scatter-add",
    inputs: [src, firstT, nextT],
    out,
    body: `let w = u(X); var i = ld_x1(e / w); var acc = 0.0;
  loop { if (i < 0) { break; } acc += ld_x0(u32(i) * w + e % w); i = ld_x2(u32(i)); }
  return acc;`,
    extra: [width],
    raw: true,
  });
  dev.release(first);
  dev.release(next);
  return result;
}

/** x·cos + rotateHalf(x)·sin, cos/sin broadcast. */
export function rope(
  dev: WebGpuDevice,
  x: GpuTensor,
  cos: GpuTensor,
  sin: GpuTensor,
  out: Meta,
): Storage {
  const d = x.shape[x.shape.length - 1]!;
  const body = `let d = u(X); let h = d / 2u; let j = e % d;
  var r = 0.0;
  if (j < h) { r = -ld_x0(e + h); } else { r = ld_x0(e - h); }
  return bx0(e) * bx1(e) + r * bx2(e);`;
  return elementwise(dev, { name: "rope", inputs: [x, cos, sin], out, body, extra: [d] });
}
