// Matmul for the texture strategy (lavapipe, DESIGN 5.1): a read-only storage-texture load
// costs ~0.8 ns per 8 lanes against ~35 ns from a buffer, so the kernel is load-light
// register blocking over textures.
//
// - Workgroup (8,1,1): lanes run along x only. A workgroup covers 8 rows × 128 columns, each
//   lane 8 rows × 16 adjacent columns (32 vec4 accumulators); k steps by 4.
// - Operands are panel-packed (zero-padded to whole tiles, so the inner loop has no branches)
//   and each k-step reads one contiguous run of texels: 8 texels of A (rows × 4 k, shared by
//   the lanes) and, per lane, 16 f32 texels of B (4 k × 16 columns) or 8 `rgba32uint` texels
//   holding the same values as bf16/f16 (half the fetches; unpacked with shifts).
// - Packed textures are allocated at ≥ 4096 texels so their width is 4096 or 16384: a texel
//   index turns into coordinates with a shift and a mask instead of a division.
// - Row blocks vary fastest across the grid, so consecutive workgroups share B's panel
//   (it stays in cache when K is long).
// - A is packed per call; B (usually a weight) is packed once per storage and kept while
//   the storage lives (`dev.derived`).
// - A matrix-vector product (1 row, or ≤ 4: the LM head when decoding) runs the same kernel
//   with a 1- or 4-row tile, reading the same cached panels of B (one contiguous 1 KiB run
//   per workgroup per k-step for bf16), so it streams B near memory bandwidth.
import type { Storage } from "../../device.ts";
import type { DType } from "../../dtype.ts";
import type { Meta } from "../../op.ts";
import type { GpuStorage, WebGpuDevice } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { perTexel } from "../layout.ts";
import { copy, elementwise } from "./elementwise.ts";
import { batchIndexWgsl, type MatmulPlan } from "./matmul_plan.ts";

/** Rows and columns of a workgroup's output tile. */
const tileRows = 8, tileCols = 128;
/** Lanes per workgroup and columns per lane. */
const lanes = 8, laneCols = 16;
/** Fewest elements of a packed texture, so its width is a power of two (4096 texels). */
const minPackedTexels = 4096;
/** Largest row count served by the short (matrix-vector) tile. */
const gemvMaxRows = 4;

type Half = "bf16" | "f16";
const isHalf = (d: DType): d is Half => d === "bf16" || d === "f16";

/** Texels of B per lane per k-step: 16 f32 texels, or 8 holding bf16/f16 pairs. */
const runOf = (d: DType) => (isHalf(d) ? 8 : 16);

/** WGSL vec4<f32> of 4 bf16/f16 values held in two 32-bit words. */
function unpack4(d: Half, w0: string, w1: string): string {
  if (d === "f16") return `vec4<f32>(unpack2x16float(${w0}), unpack2x16float(${w1}))`;
  const lo = (w: string) => `bitcast<f32>(${w} << 16u)`;
  const hi = (w: string) => `bitcast<f32>(${w} & 0xffff0000u)`;
  return `vec4<f32>(${lo(w0)}, ${hi(w0)}, ${lo(w1)}, ${hi(w1)})`;
}

const coordWgsl =
  `fn at(t: u32, sh: u32) -> vec2<u32> { return vec2<u32>(t & ((1u << sh) - 1u), t >> sh); }`;

// ------------------------------------------------------------------ packing

/**
 * Pack A into [batch][row block][k-step][8 rows] texels of 4 k values (f32), zero-padded.
 * Uniform words: 0 M, 1 K, 2 k-steps, 3 transA, 4 row blocks.
 */
const packACode = `
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let ks = u(2u); let o = gid.x;
  if (o >= ks * 8u) { return; }
  let M = u(0u); let K = u(1u); let transA = u(3u) == 1u;
  let row = gid.y * 8u + (o & 7u); let k0 = (o >> 3u) * 4u;
  var v = vec4<f32>();
  if (row < M) {
    let base = gid.z * M * K;
    for (var j = 0u; j < 4u; j++) {
      let p = k0 + j;
      if (p < K) { v[j] = ld_x(base + select(row * K + p, p * M + row, transA)); }
    }
  }
  st_out((gid.z * u(4u) + gid.y) * ks * 8u + o, v);
}`;

/**
 * Pack B into [batch][column block][k-step][lane][4 k][16 columns]: f32 texels of 4 columns
 * or, for bf16/f16, texels of 8 columns. Uniform words: 0 N, 1 K, 2 k-steps, 3 transB,
 * 4 column blocks.
 */
function packBCode(d: DType): string {
  const half = isHalf(d);
  const per = half ? 8 : 4;
  // texel o of a panel: (s · 8 + lane) · run + kk · (16 / per) + q
  const split = half
    ? `let q = o & 1u; let kk = (o >> 1u) & 3u; let lane = (o >> 3u) & 7u; let s = o >> 6u;`
    : `let q = o & 3u; let kk = (o >> 2u) & 3u; let lane = (o >> 4u) & 7u; let s = o >> 7u;`;
  const store = half
    ? `st8_out(dst, vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));`
    : `st_out(dst, vec4<f32>(v[0], v[1], v[2], v[3]));`;
  const run = runOf(d);
  return `
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let ks = u(2u); let o = gid.x;
  if (o >= ks * ${8 * run}u) { return; }
  let N = u(0u); let K = u(1u); let transB = u(3u) == 1u;
  ${split}
  let p = s * 4u + kk;
  let col0 = gid.y * ${tileCols}u + lane * ${laneCols}u + q * ${per}u;
  var v: array<f32, ${per}>;
  if (p < K) {
    let base = gid.z * K * N;
    for (var j = 0u; j < ${per}u; j++) {
      let col = col0 + j;
      if (col < N) { v[j] = ld_x(base + select(p * N + col, col * K + p, transB)); }
    }
  }
  let dst = (gid.z * u(4u) + gid.y) * ks * ${8 * run}u + o;
  ${store}
}`;
}

/**
 * A storage of at least `n` elements whose texture width is a power of two, and its log2;
 * `exact` (a weight's panels, kept while the weight lives) without size-class slack.
 */
function allocPacked(
  dev: WebGpuDevice,
  n: number,
  dtype: DType,
  exact = false,
): [GpuStorage, number] {
  const s = dev.alloc(Math.max(n, minPackedTexels * perTexel(dtype)), dtype, exact);
  const width = s.texture!.width;
  const shift = Math.log2(width);
  if (!Number.isInteger(shift)) throw new Error(`matmul: packed texture width ${width}`);
  return [s, shift];
}

interface Packed {
  storage: GpuStorage;
  shift: number;
  /** Texels per batch. */
  panel: number;
}

function packA(dev: WebGpuDevice, a: GpuTensor, plan: MatmulPlan, rowBlocks: number): Packed {
  const ks = Math.ceil(plan.k / 4);
  const panel = rowBlocks * ks * 8;
  const [storage, shift] = allocPacked(dev, plan.aBatches * panel * 4, "f32");
  dev.dispatch({
    code: packACode,
    inputs: [{ name: "x", tensor: a }],
    outputs: [{ name: "out", storage }],
    uniforms: [plan.m, plan.k, ks, plan.transA ? 1 : 0, rowBlocks],
    workgroups: [Math.max(1, Math.ceil((ks * 8) / 64)), rowBlocks, plan.aBatches],
  });
  return { storage, shift, panel };
}

function packB(dev: WebGpuDevice, b: GpuTensor, plan: MatmulPlan): Packed {
  const d: DType = isHalf(b.dtype) ? b.dtype : "f32";
  const ks = Math.ceil(plan.k / 4);
  const colBlocks = Math.ceil(plan.n / tileCols);
  const panel = colBlocks * ks * 8 * runOf(d);
  const key = `matmul-b:${plan.transB}:${plan.bBatches}x${plan.k}x${plan.n}:${d}`;
  let shift = 0;
  const storage = dev.derived(b.storage, key, () => {
    const [s] = allocPacked(dev, plan.bBatches * panel * perTexel(d), d, true);
    dev.dispatch({
      code: packBCode(d),
      inputs: [{ name: "x", tensor: b }],
      outputs: [{ name: "out", storage: s }],
      uniforms: [plan.n, plan.k, ks, plan.transB ? 1 : 0, colBlocks],
      workgroups: [Math.max(1, Math.ceil((ks * 8 * runOf(d)) / 64)), colBlocks, plan.bBatches],
    });
    // a weight kept packed (keepLinearWeightPacked) had its plain layout rebuilt to be read
    // here: once it is packed this way too, the rebuilt copy is not kept beside both
    if (plan.transB === false) dev.dropRebuiltPlain(b.storage);
    return s;
  });
  shift = Math.log2(storage.texture!.width);
  return { storage, shift, panel };
}

// ------------------------------------------------------------------ the tiled kernel

/**
 * Uniform words: 0 k-steps, 1 log2 width of packed A, 2 of packed B, 3 rows to store,
 * 4 texel columns to store, 5 output row stride (texels), 6 output batch stride (texels),
 * 7 packed-A texels per batch, 8 packed-B texels per batch, 9… batch map.
 */
function tiledCode(d: DType, tileM: number): string {
  const run = runOf(d);
  const rows = [...Array(tileM).keys()], cols = [0, 1, 2, 3], ks = [0, 1, 2, 3];
  const acc = (r: number, c: number) => `c${r}${c}`;
  const decls = rows.map((r) => cols.map((c) => `var ${acc(r, c)} = vec4<f32>();`).join(" "));
  // b{kk}{c}: k-row kk of the lane's 16 columns, 4 columns per vec4
  const bLoads = isHalf(d)
    ? ks.map((kk) => {
      const w0 = `w${kk}0`, w1 = `w${kk}1`;
      return `let ${w0} = textureLoad(t_b, vec2<u32>(pb.x + ${2 * kk}u, pb.y));
    let ${w1} = textureLoad(t_b, vec2<u32>(pb.x + ${2 * kk + 1}u, pb.y));
    let b${kk}0 = ${unpack4(d, `${w0}.x`, `${w0}.y`)};
    let b${kk}1 = ${unpack4(d, `${w0}.z`, `${w0}.w`)};
    let b${kk}2 = ${unpack4(d, `${w1}.x`, `${w1}.y`)};
    let b${kk}3 = ${unpack4(d, `${w1}.z`, `${w1}.w`)};`;
    })
    : ks.flatMap((kk) =>
      cols.map((c) => `let b${kk}${c} = textureLoad(t_b, vec2<u32>(pb.x + ${kk * 4 + c}u, pb.y));`)
    );
  const fmas = rows.map((r) => {
    const sums = cols.map((c) =>
      `${acc(r, c)} += a${r}.x * b0${c} + a${r}.y * b1${c} + a${r}.z * b2${c} + a${r}.w * b3${c};`
    );
    return `let a${r} = textureLoad(t_a, vec2<u32>(pa.x + ${r}u, pa.y));\n    ${
      sums.join("\n    ")
    }`;
  });
  const stores = rows.map((r) => {
    const s = cols.map((c) =>
      `if (col4 + ${c}u < u(4u)) { st_out(o${r} + col4 + ${c}u, ${acc(r, c)}); }`
    );
    return `if (row0 + ${r}u < u(3u)) { let o${r} = ob + (row0 + ${r}u) * u(5u);
    ${s.join(" ")} }`;
  });
  return `
${batchIndexWgsl(9)}
${coordWgsl}
@compute @workgroup_size(${lanes})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let ks = u(0u); let sha = u(1u); let shb = u(2u);
  let bi = batchIndex(wg.z);
  let rb = wg.x; let cb = wg.y;
  var ta = bi.x * u(7u) + rb * ks * 8u;
  var tb = bi.y * u(8u) + (cb * ks * 8u + lane) * ${run}u;
  ${decls.join("\n  ")}
  for (var s = 0u; s < ks; s++) {
    let pa = at(ta, sha); let pb = at(tb, shb);
    ${bLoads.join("\n    ")}
    ${fmas.join("\n    ")}
    ta += 8u; tb += ${8 * run}u;
  }
  let row0 = rb * ${tileRows}u; let col4 = cb * ${tileCols / 4}u + lane * 4u;
  let ob = wg.z * u(6u);
  ${stores.join("\n  ")}
}`;
}

// ------------------------------------------------------------------ entry

/** The texture-strategy matmul: matrix-vector for ≤ 4 rows of a, packed tiles otherwise. */
export function matmulTexture(
  dev: WebGpuDevice,
  a: GpuTensor,
  b: GpuTensor,
  plan: MatmulPlan,
  out: Meta,
): Storage {
  const { m, n, k, batches } = plan;
  // a matrix-vector product (1, or ≤ 4 rows) computes only those rows of the 8-row tile
  // (few variants: each is a pipeline to compile)
  const tileM = m === 1 ? 1 : m <= gemvMaxRows ? gemvMaxRows : tileRows;
  const rowBlocks = Math.ceil(m / tileRows), colBlocks = Math.ceil(n / tileCols);
  const A = packA(dev, a, plan, rowBlocks);
  const B = packB(dev, b, plan);
  // Rows of N texels need N % 4 == 0; otherwise write padded rows and copy them out.
  const direct = n % 4 === 0;
  const rowTexels = direct ? n / 4 : colBlocks * (tileCols / 4);
  const rowsOut = direct ? m : rowBlocks * tileRows;
  const target = direct ? dev.allocFor(out) : dev.alloc(batches * rowsOut * rowTexels * 4, "f32");
  const d = isHalf(b.dtype) ? b.dtype : "f32";
  dev.dispatch({
    code: tiledCode(d, tileM),
    inputs: [
      { name: "a", tensor: { storage: A.storage, shape: [], dtype: "f32" } },
      { name: "b", tensor: { storage: B.storage, shape: [], dtype: d } },
    ],
    outputs: [{ name: "out", storage: target }],
    uniforms: [
      Math.ceil(k / 4),
      A.shift,
      B.shift,
      rowsOut,
      rowTexels,
      rowTexels,
      rowsOut * rowTexels,
      A.panel,
      B.panel,
      ...plan.batchWords,
    ],
    workgroups: [rowBlocks, colBlocks, batches],
  });
  dev.release(A.storage);
  if (direct) return target;
  const padded = rowTexels * 4;
  const result = copy(dev, { storage: target, shape: [batches * rowsOut * padded], dtype: "f32" }, {
    shape: [batches, m, n],
    dtype: "f32",
  }, {
    stride: [rowsOut * padded, padded, 1],
    shift: [0, 0, 0],
    limit: [2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1],
  });
  dev.release(target);
  return result;
}

// ------------------------------------------------------------------ weights kept packed

/**
 * Pack a Linear weight w [N, K] (used as `x · wᵀ`) into B panels now and drop its plain
 * texture, so a checkpoint's weights are held once, packed. Anything other than matmul that
 * reads w later gets the plain layout rebuilt from the panels (`unpackB`).
 */
export function keepLinearWeightPacked(dev: WebGpuDevice, w: GpuTensor): void {
  if (w.shape.length !== 2) return;
  const [n, k] = w.shape as [number, number];
  const plan = { k, n, transB: true, bBatches: 1 } as MatmulPlan;
  packB(dev, w, plan);
  dev.dropPlainLayout(w.storage, () => unpackB(dev, w, plan));
}

/** The plain [N, K] layout of a weight rebuilt from its packed panels (the inverse of packB). */
function unpackB(dev: WebGpuDevice, w: GpuTensor, plan: MatmulPlan): GpuStorage {
  const d: DType = isHalf(w.dtype) ? w.dtype : "f32";
  const packed = packB(dev, w, plan);
  const per = isHalf(d) ? 8 : 4, run = runOf(d);
  const body = `let N = u(X); let K = u(X + 1u); let ks = u(X + 2u);
  let col = e / K; let p = e % K;
  let lane = (col % ${tileCols}u) / ${laneCols}u; let q = (col % ${laneCols}u) / ${per}u;
  let o = ((p / 4u) * 8u + lane) * ${run}u + (p % 4u) * ${laneCols / per}u + q;
  let texel = (col / ${tileCols}u) * ks * ${8 * run}u + o;
  return ld_x0(texel * ${per}u + col % ${per}u);`;
  return elementwise(dev, {
    name: "unpack-b",
    inputs: [{ storage: packed.storage, shape: [packed.storage.capacity], dtype: d }],
    out: { shape: w.shape, dtype: w.dtype },
    body,
    extra: [plan.n, plan.k, Math.ceil(plan.k / 4)],
    raw: true,
  }) as GpuStorage;
}
