// The mask side of the fused attention kernels (DESIGN 2.4): the mask expression compiled to
// WGSL with key padding and token arrays, and a bound on the allowed keys derived from the
// expression, so that kernels skip key blocks no query of a tile can attend.
import type { DType } from "../../dtype.ts";
import { type MaskNode, maskToWgsl } from "../../mask.ts";
import type { AttentionAttrs } from "../../ops/attention.ts";
import type { StorageStrategy } from "../layout.ts";

/**
 * WGSL `key_live(b, k, s) -> bool`: key k exists and is not padding. The key-padding input is
 * `x{first}`, always bound (a placeholder when there is none, the uniform word `hasPad`
 * saying so), so that padded and unpadded calls share a pipeline.
 */
export function keyLiveWgsl(first: number, hasPad: number): string {
  return `
fn key_padded(b: u32, k: u32, s: u32) -> bool { return u(${hasPad}u) != 0u && ld_x${first}(b * s + k) == 0i; }
fn key_live(b: u32, k: u32, s: u32) -> bool { return k < s && !key_padded(b, k, s); }`;
}

/**
 * WGSL `allowed(b, q, k, s) -> bool`: the mask expression compiled, plus key padding (see
 * `keyLiveWgsl`; `key_live` comes along); the token arrays follow the key-padding input.
 */
export function allowedWgsl(attrs: AttentionAttrs, first: number, hasPad: number): string {
  const token = (array: number, pos: string) =>
    `token_at(ld_x${first + 1 + array}(b * s + clamp_pos(${pos}, s)), ${pos}, s)`;
  const pad = `if (key_padded(b, u32(k), s)) { return false; }`;
  return `${keyLiveWgsl(first, hasPad)}
fn clamp_pos(pos: i32, s: u32) -> u32 { return u32(clamp(pos, 0i, i32(s) - 1i)); }
fn token_at(value: i32, pos: i32, s: u32) -> i32 { return select(-1i, value, pos >= 0i && u32(pos) < s); }
fn allowed(b: u32, q: i32, k: i32, s: u32) -> bool {
  ${pad}
  let n = i32(s);
  return ${maskToWgsl(attrs.mask.node, token)};
}
fn allowed_in(b: u32, q: i32, k: u32, s: u32) -> bool { return k < s && allowed(b, q, i32(k), s); }
${keyBoundWgsl(attrs.mask.node)}`;
}

/**
 * WGSL `key_bound(q, n) -> i32`: a key index no allowed key of query q exceeds, non-decreasing
 * in q (so the bound of a tile's last query covers the tile). Derived from comparisons of `k`
 * with expressions in q, n and constants (`k.le(q)` gives q); n − 1 when nothing bounds k.
 */
export function keyBoundWgsl(node: MaskNode): string {
  return `fn key_bound(q: i32, n: i32) -> i32 { return ${keyBound(node) ?? "n - 1i"}; }`;
}

/** WGSL for the largest allowed k as a non-decreasing function of q, or null if unknown. */
function keyBound(x: MaskNode): string | null {
  const w = (y: MaskNode) => maskToWgsl(y);
  switch (x.op) {
    case "bool":
      return x.value ? null : "(-1i)";
    case "and": {
      const a = keyBound(x.a), b = keyBound(x.b);
      return a === null ? b : b === null ? a : `min(${a}, ${b})`;
    }
    case "or": {
      const a = keyBound(x.a), b = keyBound(x.b);
      return a === null || b === null ? null : `max(${a}, ${b})`;
    }
    case "le":
    case "lt":
    case "eq":
    case "ge":
    case "gt": {
      // normalise to k ⋈ rhs
      const flip = { le: "ge", lt: "gt", eq: "eq", ge: "le", gt: "lt" } as const;
      const [op, rhs] = x.a.op === "k" ? [x.op, x.b] : x.b.op === "k" ? [flip[x.op], x.a] : [];
      if (!op || !rhs || !rising(rhs)) return null;
      if (op === "le" || op === "eq") return w(rhs);
      return op === "lt" ? `(${w(rhs)} - 1i)` : null;
    }
    default:
      return null;
  }
}

/** Whether an integer expression is non-decreasing in q and independent of k and tokens. */
function rising(x: MaskNode): boolean {
  switch (x.op) {
    case "q":
    case "n":
    case "const":
      return true;
    case "add":
      return rising(x.a) && rising(x.b);
    case "sub":
      return rising(x.a) && constant(x.b);
    default:
      return false;
  }
}

function constant(x: MaskNode): boolean {
  switch (x.op) {
    case "n":
    case "const":
      return true;
    case "add":
    case "sub":
    case "mul":
      return constant(x.a) && constant(x.b);
    default:
      return false;
  }
}

/**
 * WGSL to walk the rows of input `x` (rows of `n` texels): `at_{name}(t)` locates texel t,
 * `step_{name}(p, n)` moves a location on by n ≤ row-length texels, and
 * `l{name}(p, c) -> vec4<f32>` reads texel c after location p (bf16/f16 upcast). On the
 * texture strategy an f32 input is read straight from its texture, locating a texel
 * (t % width, t / width) once and then stepping: a division per load would otherwise cost
 * as much as the arithmetic (DESIGN 5.1). A row is never wider than the texture (a tensor
 * of one texture row fits it; taller ones are 4096+ texels wide), so a step wraps at most
 * once.
 */
export function rowReader(name: string, x: string, dtype: DType, strategy: StorageStrategy) {
  if (strategy === "texture" && dtype === "f32") {
    const tex = `t_${x}`; // the binding layout.ts declares for input x
    return `fn at_${name}(t: u32) -> vec2<u32> {
  let w = textureDimensions(${tex}).x;
  return vec2<u32>(t % w, t / w);
}
fn step_${name}(p: vec2<u32>, n: u32) -> vec2<u32> {
  let w = textureDimensions(${tex}).x;
  let x = p.x + n;
  let wrap = x >= w;
  return vec2<u32>(select(x, x - w, wrap), p.y + select(0u, 1u, wrap));
}
fn l${name}(p: vec2<u32>, c: u32) -> vec4<f32> { return textureLoad(${tex}, step_${name}(p, c)); }`;
  }
  const load = dtype === "f32"
    ? `ld4_${x}(p.x + c)`
    : `vec4<f32>(ld_${x}(i), ld_${x}(i + 1u), ld_${x}(i + 2u), ld_${x}(i + 3u))`;
  return `fn at_${name}(t: u32) -> vec2<u32> { return vec2<u32>(t, 0u); }
fn step_${name}(p: vec2<u32>, n: u32) -> vec2<u32> { return vec2<u32>(p.x + n, 0u); }
fn l${name}(p: vec2<u32>, c: u32) -> vec4<f32> {
  let i = (p.x + c) * 4u;
  return ${load};
}`;
}

/**
 * WGSL: locations t0…t3 of 4 consecutive rows starting at cursor `cur` (a `var`), the rows
 * past `last` repeating row `last` (so nothing past a tensor's end is read); `cur` moves on
 * to the row after them.
 */
export function quadRows(reader: string, t: string, cur: string, pastLast: (r: number) => string) {
  return `let ${t}0 = ${cur};
    let ${t}1 = select(step_${reader}(${t}0, D4), ${t}0, ${pastLast(1)});
    let ${t}2 = select(step_${reader}(${t}1, D4), ${t}1, ${pastLast(2)});
    let ${t}3 = select(step_${reader}(${t}2, D4), ${t}2, ${pastLast(3)});
    ${cur} = step_${reader}(${t}3, D4);`;
}
