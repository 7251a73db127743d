// The storage abstraction of the WebGPU backend (DESIGN 5.1). A tensor lives either in
// storage buffers (real GPUs) or in read-only storage textures (lavapipe and other CPU
// adapters, where a buffer load costs ~40× a storage-texture load). Kernels never touch
// the bindings directly: they call the accessors generated here,
//   ld_X(i) -> f32|i32        element i of input X (bf16/f16 upcast on load)
//   ld4_X(t) -> vec4          elements 4t..4t+3 of input X (f32/i32 only)
//   st_X(t, v: vec4)          write elements 4t..4t+3 of output X
//   st8_X(t, lo, hi: vec4f)   write elements 8t..8t+7 of a bf16/f16 output X
// so one kernel source serves both strategies.
import type { DType } from "../dtype.ts";

/** Where tensors live on a WebGPU device. */
export type StorageStrategy = "texture" | "buffer";

/** Elements per texel: 4 f32/i32 (rgba32), 8 bf16/f16 (two per 32-bit channel). */
export function perTexel(dtype: DType): number {
  return dtype === "bf16" || dtype === "f16" ? 8 : 4;
}

/** Widest texture row used, in texels (a multiple of 16 keeps read-back rows 256-byte aligned). */
export const maxTextureWidth = 16384;

/** Texture size holding `n` elements: rows of up to 4096 texels, wider when very tall. */
export function textureExtent(n: number, dtype: DType): { width: number; height: number } {
  const texels = Math.max(1, Math.ceil(n / perTexel(dtype)));
  let width = Math.min(4096, Math.ceil(texels / 16) * 16);
  if (Math.ceil(texels / width) > maxTextureWidth) width = maxTextureWidth;
  const height = Math.ceil(texels / width);
  if (height > maxTextureWidth) {
    throw new Error(
      `webgpu: tensor of ${n} ${dtype} elements exceeds the largest texture (16384×16384 texels)`,
    );
  }
  return { width, height };
}

/** The texel format of a dtype. */
export function textureFormat(dtype: DType): GPUTextureFormat {
  return dtype === "f32" ? "rgba32float" : dtype === "i32" ? "rgba32sint" : "rgba32uint";
}

/** WGSL scalar type a dtype computes in. */
export function wgslType(dtype: DType): "f32" | "i32" {
  return dtype === "i32" ? "i32" : "f32";
}

/** Bytes of a buffer holding `n` elements, padded so whole-texel writes stay in bounds. */
export function bufferBytes(n: number, dtype: DType): number {
  const group = perTexel(dtype);
  return Math.max(16, Math.ceil(n / group) * 16);
}

/** How a binding is declared and accessed. */
export interface BindingSpec {
  name: string;
  dtype: DType;
  access: "read" | "write";
  /** Buffer strategy: how many buffers hold the tensor (large tensors are chunked). */
  chunks: number;
  /** Buffer strategy: elements per chunk (a multiple of 8). */
  chunkElements: number;
}

/** WGSL declarations and accessors for bindings starting at `firstBinding`. */
export function bindingCode(
  strategy: StorageStrategy,
  specs: readonly BindingSpec[],
  firstBinding: number,
): string {
  let binding = firstBinding;
  const out: string[] = [];
  for (const s of specs) {
    if (strategy === "texture") {
      out.push(textureBinding(s, binding++));
    } else {
      out.push(bufferBinding(s, binding));
      binding += s.chunks;
    }
  }
  return out.join("\n");
}

/** How many bind-group entries the specs need. */
export function bindingCount(strategy: StorageStrategy, specs: readonly BindingSpec[]): number {
  return strategy === "texture" ? specs.length : specs.reduce((n, s) => n + s.chunks, 0);
}

function textureBinding(s: BindingSpec, binding: number): string {
  const { name, dtype } = s;
  const fmt = textureFormat(dtype);
  const coord = (t: string, tex: string) =>
    `vec2<u32>(${t} % textureDimensions(${tex}).x, ${t} / textureDimensions(${tex}).x)`;
  if (s.access === "read") {
    const tex = `t_${name}`;
    const decl = `@group(0) @binding(${binding}) var ${tex}: texture_storage_2d<${fmt}, read>;`;
    if (dtype === "f32" || dtype === "i32") {
      const ty = wgslType(dtype);
      return `${decl}
fn ld4_${name}(t: u32) -> vec4<${ty}> { return textureLoad(${tex}, ${coord("t", tex)}); }
fn ld_${name}(i: u32) -> ${ty} { return ld4_${name}(i >> 2u)[i & 3u]; }`;
    }
    return `${decl}
fn ldw_${name}(i: u32) -> u32 { let t = i >> 3u; return textureLoad(${tex}, ${
      coord("t", tex)
    })[(i >> 1u) & 3u]; }
fn ld_${name}(i: u32) -> f32 { ${unpack(dtype, `ldw_${name}(i)`, "i")} }`;
  }
  const tex = `o_${name}`;
  const decl = `@group(0) @binding(${binding}) var ${tex}: texture_storage_2d<${fmt}, write>;`;
  if (dtype === "f32" || dtype === "i32") {
    const ty = wgslType(dtype);
    return `${decl}
fn st_${name}(t: u32, v: vec4<${ty}>) { textureStore(${tex}, ${coord("t", tex)}, v); }`;
  }
  return `${decl}
fn st8_${name}(t: u32, lo: vec4<f32>, hi: vec4<f32>) { textureStore(${tex}, ${coord("t", tex)}, ${
    pack(dtype)
  }); }`;
}

function bufferBinding(s: BindingSpec, first: number): string {
  const { name, dtype, chunks, chunkElements } = s;
  const half = dtype === "bf16" || dtype === "f16";
  const elem = half ? "u32" : wgslType(dtype);
  const mode = s.access === "read" ? "read" : "read_write";
  const decls: string[] = [];
  for (let c = 0; c < chunks; c++) {
    decls.push(
      `@group(0) @binding(${first + c}) var<storage, ${mode}> b_${name}_${c}: array<${elem}>;`,
    );
  }
  // element (or word, for 16-bit dtypes) j of the chunked tensor
  const perWord = half ? 2 : 1;
  const chunkWords = chunkElements / perWord;
  const pick = (j: string, body: (buf: string, k: string) => string) => {
    if (chunks === 1) return body(`b_${name}_0`, j);
    let code = "";
    for (let c = 0; c < chunks; c++) {
      const k = `(${j} - ${c * chunkWords}u)`;
      code += c < chunks - 1
        ? `if (${j} < ${(c + 1) * chunkWords}u) { ${body(`b_${name}_${c}`, k)} }\n  `
        : body(`b_${name}_${c}`, k);
    }
    return code;
  };
  if (s.access === "read") {
    if (!half) {
      const ty = wgslType(dtype);
      return `${decls.join("\n")}
fn ld_${name}(i: u32) -> ${ty} {
  ${pick("i", (b, k) => `return ${b}[${k}];`)}
}
fn ld4_${name}(t: u32) -> vec4<${ty}> {
  let i = t * 4u;
  return vec4<${ty}>(ld_${name}(i), ld_${name}(i + 1u), ld_${name}(i + 2u), ld_${name}(i + 3u));
}`;
    }
    return `${decls.join("\n")}
fn ldw_${name}(i: u32) -> u32 {
  let j = i >> 1u;
  ${pick("j", (b, k) => `return ${b}[${k}];`)}
}
fn ld_${name}(i: u32) -> f32 { ${unpack(dtype, `ldw_${name}(i)`, "i")} }`;
  }
  if (!half) {
    const ty = wgslType(dtype);
    return `${decls.join("\n")}
fn st1_${name}(i: u32, v: ${ty}) {
  ${pick("i", (b, k) => `${b}[${k}] = v; return;`)}
}
fn st_${name}(t: u32, v: vec4<${ty}>) {
  let i = t * 4u;
  st1_${name}(i, v.x); st1_${name}(i + 1u, v.y); st1_${name}(i + 2u, v.z); st1_${name}(i + 3u, v.w);
}`;
  }
  return `${decls.join("\n")}
fn stw_${name}(j: u32, v: u32) {
  ${pick("j", (b, k) => `${b}[${k}] = v; return;`)}
}
fn st8_${name}(t: u32, lo: vec4<f32>, hi: vec4<f32>) {
  let w = ${pack(dtype)};
  let j = t * 4u;
  stw_${name}(j, w.x); stw_${name}(j + 1u, w.y); stw_${name}(j + 2u, w.z); stw_${name}(j + 3u, w.w);
}`;
}

/** WGSL that returns the f32 value of element `i` from the 32-bit word holding it. */
function unpack(dtype: DType, word: string, i: string): string {
  if (dtype === "f16") return `return unpack2x16float(${word})[${i} & 1u];`;
  return `let w = ${word}; if ((${i} & 1u) == 0u) { return bitcast<f32>(w << 16u); } return bitcast<f32>(w & 0xffff0000u);`;
}

/** WGSL vec4<u32> packing the 8 values lo, hi into bf16/f16 pairs (round to nearest even). */
function pack(dtype: DType): string {
  if (dtype === "f16") {
    return `vec4<u32>(pack2x16float(lo.xy), pack2x16float(lo.zw), pack2x16float(hi.xy), pack2x16float(hi.zw))`;
  }
  return `vec4<u32>(bf16pair(lo.x, lo.y), bf16pair(lo.z, lo.w), bf16pair(hi.x, hi.y), bf16pair(hi.z, hi.w))`;
}

/** Helpers every kernel may use. */
export const commonWgsl = `
fn bf16bits(x: f32) -> u32 {
  let u = bitcast<u32>(x);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0u) { return (u >> 16u) | 0x40u; }
  return ((u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u) & 0xffffu;
}
fn bf16pair(a: f32, b: f32) -> u32 { return bf16bits(a) | (bf16bits(b) << 16u); }
`;
