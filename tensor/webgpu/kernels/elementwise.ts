// Elementwise kernels: one invocation writes one output texel (4 elements, or 8 for a
// bf16/f16 output), since on lavapipe a texel store costs 10–20× a load (DESIGN 5.1).
import type { Storage } from "../../device.ts";
import type { DType } from "../../dtype.ts";
import type { Meta } from "../../op.ts";
import type { StridedCopy } from "../../ops/layout.ts";
import { sameShape, stridesOf } from "../../shape.ts";
import { sizeOf } from "../../tensor.ts";
import type { WebGpuDevice } from "../device.ts";
import { f32Word } from "../device.ts";
import type { GpuTensor } from "../gpu.ts";
import { wgslType } from "../layout.ts";

/** Largest rank the generic kernels index. */
export const maxRank = 8;
const workgroup = 64;

/** Workgroup counts for `n` invocations of `size` lanes, split over y beyond 65535. */
export function grid(n: number, size = workgroup): [number, number] {
  const groups = Math.max(1, Math.ceil(n / size));
  const x = Math.min(groups, 65535);
  return [x, Math.ceil(groups / x)];
}

/** WGSL: the linear invocation index `id` (returns early past `count`). */
export function invocationIndex(count: string, size = workgroup): string {
  return `let id = gid.x + gid.y * nwg.x * ${size}u;
  if (id >= ${count}) { return; }`;
}

/** Entry-point signature with global id and workgroup count. */
export const entry = (size = workgroup) =>
  `@compute @workgroup_size(${size})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`;

interface ElementwiseSpec {
  /** Cache-stable kernel name (documentation only; the pipeline cache keys on the code). */
  name: string;
  inputs: readonly GpuTensor[];
  out: Meta;
  /** WGSL statements computing element `e` of the output; must `return` a value of its type. */
  body: string;
  /** Extra uniform words, read in `body` as `u(X + i)`, `uf(X + i)`. */
  extra?: readonly number[];
  /** Inputs are read only through `ld_x{k}` (no broadcast readers `bx{k}`). */
  raw?: boolean;
  /** Module-scope WGSL (functions) the body calls. */
  helpers?: string;
  /** Inputs (same shape as the output, 32-bit) whose texel is loaded once into `p{k}`. */
  preloaded?: readonly number[];
  /**
   * For a 32-bit output: WGSL statements returning output texel `t` (elements 4t … 4t+3) as
   * a vec4, used instead of `body` when a texel's elements share work (a row index, say:
   * integer division is scalar on llvmpipe). Elements past the end are not stored.
   */
  texel?: string;
}

/**
 * The generic elementwise kernel. In `body`, `bx{k}(e)` reads input k at the position that
 * output element e broadcasts from, `ld_x{k}(i)` reads any element, `X` is the index of the
 * first extra uniform word, and for inputs listed in `preloaded` (same shape as the output,
 * 32-bit), `p{k}[texel_lane]` is element e, loaded with its whole texel (texel_lane = e mod 4). Sizes are
 * uniforms, so one pipeline serves every shape.
 */
export function elementwise(dev: WebGpuDevice, spec: ElementwiseSpec): Storage {
  const { inputs, out } = spec;
  const n = sizeOf(out.shape);
  const rank = out.shape.length;
  if (rank > maxRank) throw new Error(`${spec.name}: rank ${rank} exceeds the kernels' ${maxRank}`);
  const storage = dev.allocFor(out);
  if (n === 0) return storage;
  const words: number[] = [n, rank, ...pad8(out.shape)];
  const readers: string[] = [];
  inputs.forEach((x, k) => {
    if (spec.raw) return;
    const ty = wgslType(x.dtype);
    const kind = broadcastKind(x.shape, out.shape);
    if (kind.kind === "same") {
      readers.push(`fn bx${k}(e: u32) -> ${ty} { return ld_x${k}(e); }`);
      return;
    }
    const base = words.length;
    if (kind.kind === "suffix" || kind.kind === "prefix") {
      words.push(kind.size);
      const index = kind.kind === "suffix" ? `e % u(${base}u)` : `e / u(${base}u)`;
      readers.push(`fn bx${k}(e: u32) -> ${ty} { return ld_x${k}(${index}); }`);
      return;
    }
    words.push(...pad8(broadcastStrides(x.shape, out.shape)));
    readers.push(`fn bx${k}(e: u32) -> ${ty} {
  var rem = e; var off = 0u;
  for (var d = i32(u(1u)) - 1; d >= 0; d--) {
    let dim = u(2u + u32(d));
    off += (rem % dim) * u(${base}u + u32(d));
    rem /= dim;
  }
  return ld_x${k}(off);
}`);
  });
  const extraBase = words.length;
  words.push(...(spec.extra ?? []));
  const ty = wgslType(out.dtype);
  const half = out.dtype === "bf16" || out.dtype === "f16";
  const per = half ? 8 : 4;
  const preloaded = half ? [] : (spec.preloaded ?? []);
  const params = preloaded.map((k) => `, p${k}: vec4<${wgslType(inputs[k]!.dtype)}>`).join("");
  const args = preloaded.map((k) => `, p${k}`).join("");
  if (spec.texel && half) throw new Error(`${spec.name}: a texel body needs a 32-bit output`);
  const lanes = spec.texel
    ? "st_out(t, texel(t));"
    : half
    ? `var lo = vec4<f32>(0.0); var hi = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (t * 8u + j < n) { lo[j] = f32(elem(t * 8u + j, j)); } }
  for (var j = 0u; j < 4u; j++) { if (t * 8u + 4u + j < n) { hi[j] = f32(elem(t * 8u + 4u + j, j)); } }
  st8_out(t, lo, hi);`
    : `${preloaded.map((k) => `let p${k} = ld4_x${k}(t);`).join(" ")}
  var v = vec4<${ty}>();
  for (var j = 0u; j < 4u; j++) { if (t * 4u + j < n) { v[j] = elem(t * 4u + j, j${args}); } }
  st_out(t, v);`;
  const code = `
const X = ${extraBase}u;
${readers.join("\n")}
${spec.helpers ?? ""}
${
    spec.texel
      ? `fn texel(t: u32) -> vec4<${ty}> {
  ${spec.texel}
}`
      : `fn elem(e: u32, texel_lane: u32${params}) -> ${half ? "f32" : ty} {
  ${spec.body}
}`
  }
${entry()} {
  let n = u(0u);
  ${invocationIndex(`(n + ${per - 1}u) / ${per}u`)}
  let t = id;
  ${lanes}
}`;
  dev.dispatch({
    code,
    inputs: inputs.map((tensor, k) => ({ name: `x${k}`, tensor })),
    outputs: [{ name: "out", storage }],
    uniforms: words,
    workgroups: grid(Math.ceil(n / per)),
  });
  return storage;
}

/**
 * How an input broadcasts to the output: the same shape; a suffix (e.g. a bias [N] over
 * [M, N]: element e reads e mod size); a prefix (e.g. row statistics [M, 1] over [M, N]:
 * element e reads e / size); or anything else (per-dimension strides).
 */
function broadcastKind(
  inShape: readonly number[],
  outShape: readonly number[],
): { kind: "same" | "general" } | { kind: "suffix" | "prefix"; size: number } {
  if (sameShape(inShape, outShape)) return { kind: "same" };
  const rank = outShape.length;
  const aligned = [...new Array(rank - inShape.length).fill(1), ...inShape];
  // suffix: leading dims 1, then equal to the output's trailing dims
  let first = 0;
  while (first < rank && aligned[first] === 1 && outShape[first] !== 1) first++;
  if (aligned.slice(first).every((d, i) => d === outShape[first + i])) {
    return { kind: "suffix", size: sizeOf(outShape.slice(first)) };
  }
  // prefix: equal to the output's leading dims, then 1
  let last = rank;
  while (last > 0 && aligned[last - 1] === 1 && outShape[last - 1] !== 1) last--;
  if (aligned.slice(0, last).every((d, i) => d === outShape[i])) {
    return { kind: "prefix", size: sizeOf(outShape.slice(last)) };
  }
  return { kind: "general" };
}

function pad8(values: readonly number[]): number[] {
  return [...values, ...new Array(maxRank - values.length).fill(0)];
}

function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const lead = outShape.length - inShape.length;
  const s = stridesOf(inShape);
  return outShape.map((_, d) => (d < lead || inShape[d - lead] === 1 ? 0 : s[d - lead]!));
}

/** out = expr(x0, x1, …), inputs broadcast. */
export function map(
  dev: WebGpuDevice,
  expr: string,
  inputs: readonly GpuTensor[],
  out: Meta,
): Storage {
  const preloaded = inputs.flatMap((x, k) =>
    sameShape(x.shape, out.shape) && (x.dtype === "f32" || x.dtype === "i32") ? [k] : []
  );
  const halfOut = out.dtype === "bf16" || out.dtype === "f16";
  const loads = inputs.map((_, k) =>
    !halfOut && preloaded.includes(k) ? `let x${k} = p${k}[texel_lane];` : `let x${k} = bx${k}(e);`
  ).join(" ");
  return elementwise(dev, {
    name: "map",
    inputs,
    out,
    body: `${loads}\n  return ${expr};`,
    preloaded,
  });
}

/** The strided copy (permute / slice / pad / broadcastTo). */
export function copy(dev: WebGpuDevice, x: GpuTensor, out: Meta, plan: StridedCopy): Storage {
  if (movesWholeTexels(x, out, plan)) return copyTexels(dev, x, out, plan);
  const extra = [
    ...pad8(plan.stride),
    ...pad8(plan.shift.map((s) => s >>> 0)),
    ...pad8(plan.limit),
  ];
  const zero = wgslType(x.dtype) === "i32" ? "0i" : "0.0";
  const body = `var rem = e; var off = 0i;
  for (var d = i32(u(1u)) - 1; d >= 0; d--) {
    let dim = u(2u + u32(d));
    let c = i32(rem % dim) + ui(X + 8u + u32(d));
    rem /= dim;
    if (c < 0 || c >= i32(u(X + 16u + u32(d)))) { return ${zero}; }
    off += c * i32(u(X + u32(d)));
  }
  return ld_x0(u32(off));`;
  return elementwise(dev, { name: "copy", inputs: [x], out, body, extra });
}

/**
 * True when every output texel is one aligned input texel (or zero padding): 32-bit data,
 * the last axis kept whole and contiguous with a multiple-of-4 length, every other stride a
 * multiple of 4. Head splits and merges ([B, T, H, D] ↔ [B, H, T, D]) are of this kind.
 */
function movesWholeTexels(x: GpuTensor, out: Meta, plan: StridedCopy): boolean {
  const r = out.shape.length;
  if (r === 0 || (x.dtype !== "f32" && x.dtype !== "i32") || out.dtype !== x.dtype) return false;
  const inner = out.shape[r - 1]!, shift = plan.shift[r - 1]!;
  return inner % 4 === 0 && plan.stride[r - 1] === 1 && shift % 4 === 0 && shift >= 0 &&
    shift + inner <= plan.limit[r - 1]! && plan.stride.slice(0, -1).every((s) => s % 4 === 0);
}

/** The strided copy one texel per invocation (see `movesWholeTexels`): 1 load, 1 store. */
function copyTexels(dev: WebGpuDevice, x: GpuTensor, out: Meta, plan: StridedCopy): Storage {
  const n = sizeOf(out.shape), rank = out.shape.length;
  const storage = dev.allocFor(out);
  if (n === 0) return storage;
  const words = [
    n,
    rank,
    ...pad8(out.shape),
    ...pad8(plan.stride),
    ...pad8(plan.shift.map((s) => s >>> 0)),
    ...pad8(plan.limit),
  ];
  const zero = x.dtype === "i32" ? "vec4<i32>()" : "vec4<f32>()";
  const code = `
const X = 10u;
${entry()} {
  ${invocationIndex("u(0u) / 4u")}
  var rem = id * 4u; var off = 0i;
  for (var d = i32(u(1u)) - 1; d >= 0; d--) {
    let dim = u(2u + u32(d));
    let c = i32(rem % dim) + ui(X + 8u + u32(d));
    rem /= dim;
    if (c < 0 || c >= i32(u(X + 16u + u32(d)))) { st_out(id, ${zero}); return; }
    off += c * i32(u(X + u32(d)));
  }
  st_out(id, ld4_x0(u32(off) / 4u));
}`;
  dev.dispatch({
    code,
    inputs: [{ name: "x0", tensor: x }],
    outputs: [{ name: "out", storage }],
    uniforms: words,
    workgroups: grid(n / 4),
  });
  return storage;
}

/** A constant. */
export function fill(dev: WebGpuDevice, out: Meta, value: number): Storage {
  const body = out.dtype === "i32" ? "return ui(X);" : "return uf(X);";
  const word = out.dtype === "i32" ? value | 0 : f32Word(value);
  return elementwise(dev, { name: "fill", inputs: [], out, body, extra: [word] });
}

/** dtype conversion. */
export function cast(dev: WebGpuDevice, x: GpuTensor, out: Meta, dtype: DType): Storage {
  const body = dtype === "i32" ? `return i32(bx0(e));` : `return f32(bx0(e));`;
  return elementwise(dev, { name: "cast", inputs: [x], out, body });
}
