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
}

/**
 * The generic elementwise kernel. In `body`, `x{k}(e)` reads input k at the position that
 * output element e broadcasts from, `ld_x{k}(i)` reads any element, and `X` is the index of
 * the first extra uniform word.
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
    if (sameShape(x.shape, out.shape)) {
      readers.push(`fn bx${k}(e: u32) -> ${ty} { return ld_x${k}(e); }`);
      return;
    }
    const base = words.length;
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
  const texels = Math.ceil(n / per);
  const lanes = half
    ? `var lo = vec4<f32>(0.0); var hi = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (t * 8u + j < n) { lo[j] = f32(elem(t * 8u + j)); } }
  for (var j = 0u; j < 4u; j++) { if (t * 8u + 4u + j < n) { hi[j] = f32(elem(t * 8u + 4u + j)); } }
  st8_out(t, lo, hi);`
    : `var v = vec4<${ty}>();
  for (var j = 0u; j < 4u; j++) { if (t * 4u + j < n) { v[j] = elem(t * 4u + j); } }
  st_out(t, v);`;
  const code = `
const X = ${extraBase}u;
${readers.join("\n")}
${spec.helpers ?? ""}
fn elem(e: u32) -> ${half ? "f32" : ty} {
  ${spec.body}
}
${entry()} {
  let n = u(0u);
  ${invocationIndex(`${texels}u`)}
  let t = id;
  ${lanes}
}`;
  dev.dispatch({
    code,
    inputs: inputs.map((tensor, k) => ({ name: `x${k}`, tensor })),
    outputs: [{ name: "out", storage }],
    uniforms: words,
    workgroups: grid(texels),
  });
  return storage;
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
  const loads = inputs.map((_, k) => `let x${k} = bx${k}(e);`).join(" ");
  return elementwise(dev, { name: "map", inputs, out, body: `${loads}\n  return ${expr};` });
}

/** The strided copy (permute / slice / pad / broadcastTo). */
export function copy(dev: WebGpuDevice, x: GpuTensor, out: Meta, plan: StridedCopy): Storage {
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
